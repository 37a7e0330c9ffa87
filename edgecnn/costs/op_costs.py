"""What each operator of a network costs: its op class, work and bytes moved — the latency model's input.

A network becomes a list of :class:`OpCost`, one per operator that a runtime executes as its own kernel:

- ``conv``, ``pointwise`` (1×1), ``depthwise`` and ``fc`` count multiply-accumulates;
- ``elementwise``, ``pool``, ``gather`` and ``data`` (concat, transpose, pad, slice …) count elements;
- every operator moves ``bytes``: its input and output activations and its weights, at the element size of
  its dtype (4 for fp32, 1 for int8).

Runtimes fuse an activation into the convolution or matrix product before it (ReLU, ReLU6/Clip, LeakyReLU)
and fold BatchNormalization into the convolution: those count once, with the operator they are fused into.
Pure shape operators (Reshape, Flatten, Squeeze …) and the Quantize/DequantizeLinear pairs of a QDQ graph
cost nothing here (a runtime fuses them into the int8 kernels); in a QDQ graph an operator is int8 when its
activation input comes from a DequantizeLinear. What a runtime cannot fuse is the network's boundary: an
int8 network quantizes each float input and dequantizes each output (:func:`boundary_costs`; on x86 ORT
the input's quantize and layout transpose are ~6% of a small MobileNet).

This module reads ONNX graphs (``onnx_op_costs``) and needs no torch; ``torch_op_costs`` reads a
PyTorch module on the meta device with the same rules, for the planner (milliseconds per candidate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAC_CLASSES = ("conv", "pointwise", "depthwise", "fc")
ELEMENT_CLASSES = ("elementwise", "pool", "gather", "data")
OP_CLASSES = MAC_CLASSES + ELEMENT_CLASSES
DTYPES = ("fp32", "int8")
ELEMENT_BYTES = {"fp32": 4, "int8": 1}

FUSIBLE_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu"})
_POOL = frozenset(
    {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum"}
)
_GATHER = frozenset({"Gather", "GatherND", "GatherElements", "GridSample"})
_DATA = frozenset({"Concat", "Transpose", "Pad", "Slice", "Split", "Resize", "Tile", "Expand"})
_FREE = frozenset(
    {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "Dropout", "ConstantOfShape"}
)
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class OpCost:
    """One executed operator: class, dtype, work (MACs or elements), bytes moved, of which weights; for the
    MAC classes also its output channels (which the latency model rounds up to a SIMD register) and its
    reduction depth (MACs per output element; recorded, not modelled: rounding it did not help on x86),
    0 when unknown or not a MAC operator."""

    name: str
    op_class: str
    dtype: str
    work: float
    bytes: float
    weight_bytes: float = 0.0
    channels: int = 0
    depth: int = 0

    def to_row(self) -> list[Any]:
        """A compact JSON row: ``[class, dtype, work, bytes, weight_bytes, channels, depth]``."""
        return [self.op_class, self.dtype, self.work, self.bytes, self.weight_bytes, self.channels, self.depth]

    @classmethod
    def from_row(cls, row: Sequence[Any], name: str = "") -> OpCost:
        """The inverse of :meth:`to_row` (5-item rows from before channels and depth are read too);
        raises ValueError on a malformed row."""
        if len(row) not in (5, 7) or row[0] not in OP_CLASSES or row[1] not in DTYPES:
            raise ValueError(f"not an op-cost row [class, dtype, work, bytes, weight_bytes, channels, depth]: {row!r}")
        shape = (int(row[5]), int(row[6])) if len(row) == 7 else (0, 0)
        work, moved, weights = float(row[2]), float(row[3]), float(row[4])
        if not all(math.isfinite(v) and v >= 0 for v in (work, moved, weights)):
            raise ValueError(f"op-cost row with a negative or non-finite figure: {row!r}")
        return cls(name, str(row[0]), str(row[1]), work, moved, weights, *shape)


def conv_class(kernel: Sequence[int], groups: int, in_channels: int) -> str:
    """``depthwise``, ``pointwise`` or ``conv`` for a convolution."""
    if groups > 1 and groups == in_channels:
        return "depthwise"
    if groups == 1 and all(k == 1 for k in kernel):
        return "pointwise"
    return "conv"


def element_class(op_type: str) -> str | None:
    """The class of a non-MAC ONNX operator; None for the free ones (shape ops, Q/DQ)."""
    if op_type in _FREE or op_type in _QDQ:
        return None
    if op_type in _POOL:
        return "pool"
    if op_type in _GATHER:
        return "gather"
    if op_type in _DATA:
        return "data"
    return "elementwise"


def summarize(costs: Iterable[OpCost]) -> dict[str, Any]:
    """Totals: operators, MACs, bytes, weight bytes, and peak activation bytes of one operator."""
    costs = list(costs)
    return {
        "ops": len(costs),
        "macs": sum(c.work for c in costs if c.op_class in MAC_CLASSES),
        "bytes": sum(c.bytes for c in costs),
        "weight_bytes": sum(c.weight_bytes for c in costs),
        "peak_activation_bytes": max((c.bytes - c.weight_bytes for c in costs), default=0.0),
    }


def boundary_costs(input_elements: Iterable[int], output_elements: Iterable[int]) -> list[OpCost]:
    """The conversions at an int8 network's boundary: quantize each float input, dequantize each output
    (elementwise, int8; reading one dtype and writing the other)."""
    both = ELEMENT_BYTES["fp32"] + ELEMENT_BYTES["int8"]
    return [
        *(OpCost("quantize_input", "elementwise", "int8", float(n), float(n * both)) for n in input_elements),
        *(OpCost("dequantize_output", "elementwise", "int8", float(n), float(n * both)) for n in output_elements),
    ]


def _numel(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape else 0


def onnx_op_costs(model: Any, dtype: str | None = None) -> list[OpCost]:
    """The op costs of an ONNX model (a ModelProto or a path). Shapes must be static after inference.

    ``dtype`` forces every operator to fp32 or int8 (predicting an int8 export from its fp32 graph);
    by default a QDQ graph's quantized operators are int8 and the rest fp32.
    """
    import onnx

    from edgecnn.errors import UsageError

    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    if not graph.output:
        raise UsageError("the ONNX graph has no outputs: there is nothing to predict")
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        bad = [d.dim_value for d in dims if d.HasField("dim_value") and d.dim_value <= 0]
        if bad:
            raise UsageError(f"the ONNX input '{value.name}' has a dimension of {bad[0]}: every dimension must be ≥ 1")
        free = [d.dim_param or f"axis {i}" for i, d in enumerate(dims) if not d.HasField("dim_value")]
        shapeless = not value.type.tensor_type.HasField("shape")
        if value.name not in initializers and (free or shapeless):
            what, fix = (
                ("has no shape", "re-export the model with its input's shape")
                if shapeless
                else (
                    f"has free dimensions ({', '.join(free)})",
                    "edgecnn export MODEL.onnx --input-shape N,C,H,W --format onnx --no-quantize fixes them",
                )
            )
            raise UsageError(
                f"the ONNX input '{value.name}' {what}: its ops have no size to cost; give a graph with static "
                f"shapes ({fix})"
            )
    shapes: dict[str, list[int] | None] = {t.name: list(t.dims) for t in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        known = all(d.HasField("dim_value") for d in dims)
        shapes[info.name] = [d.dim_value for d in dims] if known and dims else None
    weights = {t.name for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}

    def source(tensor: str) -> str:
        """The tensor behind any chain of Quantize/DequantizeLinear."""
        while tensor in producers and producers[tensor].op_type in _QDQ:
            tensor = producers[tensor].input[0]
        return tensor

    def is_weight(tensor: str) -> bool:
        return source(tensor) in weights

    def quantized(tensor: str) -> bool:
        node = producers.get(tensor)
        return node is not None and node.op_type == "DequantizeLinear" and not is_weight(tensor)

    fused_into: set[str] = set()  # tensors whose producer is a conv/fc (activations after it fuse)
    costs: list[OpCost] = []
    for node in graph.node:
        inputs = [t for t in node.input if t]
        activations = [t for t in inputs if not is_weight(t)]
        node_dtype = dtype or ("int8" if any(quantized(t) for t in activations) else "fp32")
        size = ELEMENT_BYTES[node_dtype]
        op = node.op_type
        out_elements = sum(_numel(shapes.get(o)) for o in node.output if o)
        if op in ("BatchNormalization", *FUSIBLE_ACTIVATIONS) and activations and source(activations[0]) in fused_into:
            fused_into.update(node.output)
            continue
        weight_elements = sum(_numel(shapes.get(source(t))) for t in inputs if is_weight(t))
        in_elements = sum(_numel(shapes.get(t)) for t in activations)
        if op in ("Conv", "DeformConv"):
            weight_shape = shapes.get(source(node.input[1])) or []
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            in_shape = shapes.get(node.input[0]) or []
            if len(weight_shape) < 3 or len(in_shape) < 2:
                raise UsageError(f"node '{node.name}' ({op}): unknown input or weight shape")
            op_class = conv_class(weight_shape[2:], groups, in_shape[1])
            channels, depth = weight_shape[0], _numel(weight_shape[1:])
            work = float(out_elements * depth)
            fused_into.update(node.output)
        elif op in ("Gemm", "MatMul"):
            a_shape = shapes.get(node.input[0]) or []
            transposed = op == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
            depth = (a_shape[-2] if transposed else a_shape[-1]) if a_shape else 0
            op_class, work = "fc", float(out_elements * depth)
            out_shape = shapes.get(node.output[0]) or [0]
            channels = out_shape[-1]
            fused_into.update(node.output)
        else:
            op_class = element_class(op)
            if op_class is None:
                continue
            work = float(in_elements if op_class == "pool" else out_elements)
            channels = depth = 0
        moved = (in_elements + out_elements + weight_elements) * size
        costs.append(
            OpCost(
                node.name or op,
                op_class,
                node_dtype,
                work,
                float(moved),
                float(weight_elements * size),
                int(channels),
                int(depth),
            )
        )
    if any(cost.dtype == "int8" for cost in costs):
        graph_inputs = [t.name for t in graph.input if t.name not in weights]
        costs += boundary_costs(
            (_numel(shapes.get(t)) for t in graph_inputs), (_numel(shapes.get(t.name)) for t in graph.output)
        )
    return costs
