"""Lower a simplified fp32 ONNX graph to a TFLite flatbuffer, each node by the lowering registered for its op type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from edgecnn.errors import UsageError
from edgecnn.lowering.tflite.builder import GraphBuilder
from edgecnn.lowering.tflite.context import LoweringContext, node_label
from edgecnn.lowering.tflite.layout import canonical_layout, layout_tag
from edgecnn.lowering.tflite.registry import lowering_for, op_key, supported_ops


def unsupported_nodes(model: onnx.ModelProto) -> dict[str, list[str]]:
    """The op types without a lowering, each with the labels of its nodes, in graph order."""
    known = set(supported_ops())
    found: dict[str, list[str]] = {}
    for node in model.graph.node:
        key = op_key(node)
        if key not in known:
            found.setdefault(key, []).append(node_label(node))
    return found


def check_supported(model: onnx.ModelProto) -> None:
    """Raise one UsageError naming every unsupported op type and its nodes."""
    found = unsupported_nodes(model)
    if found:
        parts = [f"{op} ({len(nodes)}: {', '.join(nodes)})" for op, nodes in found.items()]
        raise UsageError(f"the TFLite lowering does not support {len(found)} ONNX op type(s): {'; '.join(parts)}")


@dataclass(frozen=True)
class LoweredModel:
    """A lowered model: the flatbuffer and what a caller writes to the manifest about its inputs and outputs."""

    data: bytes
    input_layout: str  # "NHWC" or "NCHW": the layout of every 4-D input (and output) of the .tflite
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    op_counts: dict[str, int]


def _read(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def _graph_inputs(ctx: LoweringContext, nchw_io: bool) -> dict[str, int]:
    inputs: dict[str, int] = {}
    for value in ctx.model.graph.input:
        name = value.name
        if name in ctx.initializers:
            continue
        shape = ctx.shapes.get(name)
        if shape is None:
            raise UsageError(f"the TFLite lowering needs a static input shape; '{name}' has none")
        if len(shape) == 4 and nchw_io:
            index = ctx.declare(name, layout=tuple(range(4)))
            ctx.canonicalize(name)
        else:
            index = ctx.declare(name)
        inputs[name] = index
    return inputs


def _graph_outputs(ctx: LoweringContext, nchw_io: bool) -> dict[str, int]:
    outputs: dict[str, int] = {}
    for value in ctx.model.graph.output:
        name = value.name
        layout = tuple(range(ctx.rank(name))) if nchw_io else canonical_layout(ctx.rank(name))
        index = ctx.tensor_in(name, layout)
        if ctx.builder.name(index) != name:
            if ctx.builder.name(ctx.tensors[name]) == name:
                ctx.builder.rename(ctx.tensors[name], f"{name}/{layout_tag(ctx.layout(name))}")
            ctx.builder.rename(index, name)
        outputs[name] = index
    return outputs


def convert(model: onnx.ModelProto | str | Path, nchw_io: bool = False) -> LoweredModel:
    """Lower a simplified fp32 ONNX model; 4-D inputs are NHWC unless ``nchw_io`` (then a leading TRANSPOSE)."""
    model = _read(model)
    check_supported(model)
    ctx = LoweringContext(model, GraphBuilder())
    inputs = _graph_inputs(ctx, nchw_io)
    for node in model.graph.node:
        if not ctx.is_absorbed(node):
            lowering_for(op_key(node))(node, ctx)
    outputs = _graph_outputs(ctx, nchw_io)
    ctx.builder.set_io(list(inputs.values()), list(outputs.values()))
    ctx.builder.set_signature(inputs, outputs)
    return LoweredModel(
        data=ctx.builder.to_bytes(),
        input_layout="NCHW" if nchw_io else "NHWC",
        inputs={name: ctx.builder.shape(i) for name, i in inputs.items()},
        outputs={name: ctx.builder.shape(i) for name, i in outputs.items()},
        op_counts=ctx.builder.op_counts(),
    )


def lower(model: onnx.ModelProto | str | Path, nchw_io: bool = False) -> bytes:
    """The ``.tflite`` flatbuffer of a simplified fp32 ONNX model (see :func:`convert`)."""
    return convert(model, nchw_io).data
