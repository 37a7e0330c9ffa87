"""What a lowering sees: the ONNX graph being lowered and the TFLite graph being built (:class:`LoweringContext`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema
from onnx import numpy_helper

from edgecnn.errors import UsageError
from edgecnn.lowering.onnx.nodes import attribute
from edgecnn.lowering.tflite.builder import GraphBuilder
from edgecnn.lowering.tflite.layout import canonical_layout, layout_tag, permute, same_memory_order

OP = schema.BuiltinOperator
ACT = schema.ActivationFunctionType


def node_label(node: onnx.NodeProto) -> str:
    """The node's name, or its first output when it has none."""
    return node.name or f"<{node.output[0] if node.output else node.op_type}>"


def optional_input(node: onnx.NodeProto, index: int) -> str | None:
    """Input ``index`` of ``node``, or None when absent or empty."""
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _static_shapes(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """The static shape and element type of every value of the graph, from ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, int] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
            types[value.name] = tensor_type.elem_type
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        types[init.name] = init.data_type
    return shapes, types


class LoweringContext:
    """What a lowering sees: the ONNX graph (shapes, constants, consumers) and the TFLite graph being built."""

    def __init__(self, model: onnx.ModelProto, builder: GraphBuilder) -> None:
        self.model = model
        self.builder = builder
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.initializers: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.shapes, self.elem_types = _static_shapes(model)
        self.tensors: dict[str, int] = {}  # ONNX value -> TFLite tensor, held in layouts[value]
        self.layouts: dict[str, tuple[int, ...]] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producers: dict[str, onnx.NodeProto] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            self.producers.update((name, node) for name in node.output if name)
        self.graph_outputs = {o.name for o in model.graph.output}
        self._absorbed: set[int] = set()
        self._cache: dict[tuple[Any, ...], int] = {}

    # --- the ONNX side
    def shape(self, name: str) -> tuple[int, ...]:
        """The static ONNX shape of value ``name``."""
        if name in self.initializers:
            return tuple(self.initializers[name].shape)
        if name not in self.shapes:
            raise UsageError(f"the TFLite lowering needs static shapes; '{name}' has none (simplify the model first)")
        return self.shapes[name]

    def rank(self, name: str) -> int:
        """The rank of value ``name``."""
        return len(self.shape(name))

    def is_constant(self, name: str) -> bool:
        """Whether ``name`` is an initializer (or a Constant node's output)."""
        return name in self.initializers

    def constant(self, name: str) -> np.ndarray:
        """The value of constant ``name``."""
        return self.initializers[name]

    def reject(self, node: onnx.NodeProto, why: str) -> UsageError:
        """The error for a node whose attributes or inputs have no TFLite lowering."""
        return UsageError(f"cannot lower {node.op_type} node '{node_label(node)}' to TFLite: {why}")

    # --- tensors
    def layout(self, name: str) -> tuple[int, ...]:
        """The layout value ``name`` is held in (canonical for constants)."""
        return self.layouts.get(name, canonical_layout(self.rank(name)))

    def bind(self, name: str, index: int, layout: Sequence[int] | None = None) -> None:
        """Record that TFLite tensor ``index`` holds ONNX value ``name`` in ``layout``."""
        self.tensors[name] = index
        self.layouts[name] = tuple(layout) if layout is not None else canonical_layout(self.rank(name))

    def declare(self, name: str, layout: Sequence[int] | None = None) -> int:
        """Create the TFLite tensor of ONNX value ``name`` (canonical layout unless told); returns its index."""
        if self.elem_types.get(name, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            raise UsageError(f"the TFLite lowering handles float32 values only; '{name}' is not float32")
        layout = tuple(layout) if layout is not None else canonical_layout(self.rank(name))
        index = self.builder.add_tensor(name, permute(self.shape(name), layout))
        self.bind(name, index, layout)
        return index

    def temp(self, name: str, shape: Sequence[int], dtype: Any = np.float32) -> int:
        """An intermediate TFLite tensor of no ONNX value."""
        return self.builder.add_tensor(name, shape, dtype)

    def const(self, name: str, data: Any, dtype: Any = None) -> int:
        """A new constant TFLite tensor (floats stored as float32)."""
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        return self.builder.add_constant(name, array)

    def op(
        self, builtin: int, inputs: Sequence[int], outputs: Sequence[int], options: Any = None, version: int = 1
    ) -> int:
        """Append a TFLite operator."""
        return self.builder.add_operator(builtin, inputs, outputs, options, version)

    def tensor(self, name: str) -> int:
        """The TFLite tensor of value ``name`` in its layout; a constant is added in its canonical layout."""
        if name in self.tensors:
            return self.tensors[name]
        if self.is_constant(name):
            key = ("constant", name)
            if key not in self._cache:
                array = self.constant(name)
                self._cache[key] = self.const(name, array.transpose(canonical_layout(array.ndim)))
            return self._cache[key]
        raise UsageError(f"the TFLite lowering met '{name}' before the node that produces it")

    def tensor_in(self, name: str, layout: Sequence[int]) -> int:
        """The TFLite tensor of value ``name`` held in ``layout`` (a TRANSPOSE when needed, made once)."""
        layout = tuple(layout)
        current = self.layout(name)
        index = self.tensor(name)
        if current == layout:
            return index
        key = ("layout", name, layout)
        if key not in self._cache:
            perm = [current.index(a) for a in layout]
            self._cache[key] = self.transpose(index, perm, f"{name}/{layout_tag(layout)}")
        return self._cache[key]

    def canonical_tensor(self, name: str) -> int:
        """The TFLite tensor of value ``name`` in its canonical layout (a TRANSPOSE when needed, made once)."""
        return self.tensor_in(name, canonical_layout(self.rank(name)))

    def operand(self, name: str, rank: int, layout: Sequence[int] | None = None) -> int:
        """Value ``name`` as an input of a broadcasting op of output ``rank`` held in ``layout`` (canonical unless
        told; a value of lower rank only in the canonical layout)."""
        layout = tuple(layout) if layout is not None else canonical_layout(rank)
        if self.is_constant(name):
            key = ("operand", name, rank, layout)
            if key not in self._cache:
                array = self.constant(name)
                array = array.reshape((1,) * (rank - array.ndim) + array.shape).transpose(layout)
                self._cache[key] = self.const(name, array)
            return self._cache[key]
        shape = self.shape(name)
        if len(shape) == rank:
            return self.tensor_in(name, layout)
        if layout != canonical_layout(rank):
            raise ValueError(f"'{name}' of rank {len(shape)} broadcasts only in the canonical layout of rank {rank}")
        return self.reshape_value(name, (1,) * (rank - len(shape)) + shape)

    def broadcast_layout(self, node: onnx.NodeProto) -> tuple[int, ...]:
        """The layout a broadcasting ``node`` works in: that of its non-constant inputs when they all have the
        output's rank and one layout (no TRANSPOSE needed), else the canonical one."""
        rank = self.rank(node.output[0])
        values = [name for name in node.input if name and not self.is_constant(name)]
        layouts = {self.layout(name) for name in values}
        if len(layouts) == 1 and all(self.rank(name) == rank for name in values):
            return layouts.pop()
        return canonical_layout(rank)

    def broadcast_operands(self, node: onnx.NodeProto, layout: Sequence[int] | None = None) -> list[int]:
        """The inputs of broadcasting ``node`` as operands of its output's rank in ``layout`` (canonical unless
        told); rejects all-constant inputs."""
        if all(self.is_constant(name) for name in node.input):
            raise self.reject(node, "all inputs are constants (simplify the model first)")
        rank = self.rank(node.output[0])
        return [self.operand(name, rank, layout) for name in node.input]

    def transpose(self, index: int, perm: Sequence[int], name: str | None = None, out: int | None = None) -> int:
        """TRANSPOSE tensor ``index`` (output axis j = input axis perm[j]); returns the output tensor.

        A RESHAPE instead when only axes of size 1 move (the elements keep their order).
        """
        shape = self.builder.shape(index)
        if out is None:
            out = self.temp(
                name or f"{self.builder.name(index)}/transpose", [shape[p] for p in perm], self.builder.dtype(index)
            )
        moved = [p for p in perm if shape[p] != 1]
        if moved == sorted(moved):
            return self.reshape(index, [shape[p] for p in perm], out=out)
        perm_tensor = self.const(f"{self.builder.name(out)}/perm", np.asarray(perm, np.int32))
        self.op(OP.TRANSPOSE, [index, perm_tensor], [out], schema.TransposeOptionsT())
        return out

    def reshape(self, index: int, shape: Sequence[int], name: str | None = None, out: int | None = None) -> int:
        """RESHAPE tensor ``index`` (its raw element order) to ``shape``; returns the output tensor."""
        if out is None:
            out = self.temp(name or f"{self.builder.name(index)}/reshape", shape, self.builder.dtype(index))
        shape_tensor = self.const(f"{self.builder.name(out)}/shape", np.asarray(shape, np.int32))
        self.op(OP.RESHAPE, [index, shape_tensor], [out], schema.ReshapeOptionsT(newShape=[int(d) for d in shape]))
        return out

    def reshape_value(self, name: str, shape: Sequence[int], out_name: str | None = None) -> int:
        """Value ``name`` reshaped in ONNX element order to ``shape``, held in the canonical layout of that rank.

        With ``out_name`` the result is declared as that ONNX value, and held in ONNX order when the canonical
        layout would cost a TRANSPOSE. A TRANSPOSE is inserted before the RESHAPE where the element orders
        differ (an NHWC tensor with H·W > 1 flattens differently from NCHW).
        """
        if same_memory_order(self.shape(name), self.layout(name)):
            source = self.tensor(name)
        else:
            source = self.tensor_in(name, tuple(range(self.rank(name))))
        target = canonical_layout(len(shape))
        if same_memory_order(shape, target):
            out = self.declare(out_name) if out_name else self.temp(f"{name}/reshape", permute(shape, target))
            return self.reshape(source, permute(shape, target), out=out)
        if out_name:  # a declared value may stay in ONNX order: its readers move it only if they need NHWC
            return self.reshape(source, shape, out=self.declare(out_name, tuple(range(len(shape)))))
        middle = self.reshape(source, shape, f"{out_name or name}/reshape")
        out = self.declare(out_name) if out_name else None
        return self.transpose(middle, target, out=out)

    def canonicalize(self, name: str) -> int:
        """Leave value ``name`` in the layout its op wrote; returns its tensor.

        Lowerings whose output is not in the canonical layout call this. The
        TRANSPOSE is not made here but by the consumers that need another
        layout (:meth:`tensor_in`, once per layout), so none is made for an
        attention block's [B, heads, N, N] scores that only MatMul and Softmax read.
        """
        return self.tensor(name)

    def tfl_axis(self, name: str, axis: int) -> int:
        """The TFLite axis of value ``name`` that holds ONNX ``axis`` (negative axes allowed)."""
        return self.layout(name).index(axis % self.rank(name))

    # --- fusion
    def activation_code(self, node: onnx.NodeProto) -> int | None:
        """The fused-activation code equal to ``node`` (Relu, Clip(0,6), Clip(-1,1), Clip(0,∞)), or None."""
        if node.op_type == "Relu":
            return ACT.RELU
        if node.op_type == "Clip":
            bounds = self.clip_bounds(node)
            return {(0.0, 6.0): ACT.RELU6, (-1.0, 1.0): ACT.RELU_N1_TO_1, (0.0, None): ACT.RELU}.get(bounds)
        return None

    def non_negative(self, name: str) -> bool:
        """True when value ``name`` is never negative: a Relu's output, or a Clip's with a constant minimum ≥ 0."""
        node = self.producers.get(name)
        if node is None:
            return False
        if node.op_type == "Relu":
            return True
        bounds = self.clip_bounds(node) if node.op_type == "Clip" else None
        if bounds is None or bounds[0] is None or bounds[0] < 0:
            return False
        return bounds[1] is None or bounds[1] >= bounds[0]  # Clip(0, -1) gives its maximum, -1

    def clip_bounds(self, node: onnx.NodeProto) -> tuple[float | None, float | None] | None:
        """The constant (min, max) of a Clip (None for an open side), or None when a bound is not constant."""
        if self.opset < 11:
            low, high = attribute(node, "min"), attribute(node, "max")
            return (None if low is None else float(low), None if high is None else float(high))
        bounds: list[float | None] = []
        for index in (1, 2):
            name = optional_input(node, index)
            if name is None:
                bounds.append(None)
            elif self.is_constant(name):
                bounds.append(float(self.constant(name).reshape(-1)[0]))
            else:
                return None
        low, high = bounds
        if low is not None and np.isneginf(low):
            low = None
        if high is not None and np.isposinf(high):
            high = None
        return low, high

    def fuse_activation(self, node: onnx.NodeProto) -> tuple[int, str]:
        """(fused activation code, ONNX value the op should write) for ``node``'s first output.

        When that output's only consumer is an activation TFLite can fuse, the
        activation node is absorbed and its output is written instead.
        """
        name = node.output[0]
        users = self.consumers.get(name, [])
        if name in self.graph_outputs or len(users) != 1:
            return ACT.NONE, name
        code = self.activation_code(users[0])
        if code is None:
            return ACT.NONE, name
        self._absorbed.add(id(users[0]))
        return code, users[0].output[0]

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The only node reading value ``name``, or None (several readers, none, or a graph output)."""
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def scalar(self, name: str) -> float | None:
        """The value of ``name`` when it is a constant of one element, else None."""
        if not name or not self.is_constant(name) or self.constant(name).size != 1:
            return None
        return float(self.constant(name).reshape(-1)[0])

    def absorb(self, node: onnx.NodeProto) -> None:
        """Mark a later ``node`` as lowered by a fused pattern (the engine then skips it)."""
        self._absorbed.add(id(node))

    def is_absorbed(self, node: onnx.NodeProto) -> bool:
        """Whether ``node`` was fused into the op before it."""
        return id(node) in self._absorbed
