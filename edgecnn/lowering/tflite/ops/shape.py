"""Flatten/Reshape/Squeeze/Unsqueeze, Transpose, Concat and Pad, with axes remapped from ONNX order to the layout."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema
from onnx import numpy_helper

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import canonical_layout, permute, reshape_source_layout, reshaped_layout
from edgecnn.lowering.tflite.ops.cut import readers_cost
from edgecnn.lowering.tflite.ops.dtypes import declare_typed
from edgecnn.lowering.tflite.ops.normalization import fuse_group_norm
from edgecnn.lowering.tflite.registry import register


@register("Constant")
def lower_constant(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """A Constant node becomes one more initializer (a TFLite constant where it is used)."""
    for attr in node.attribute:
        if attr.name == "value":
            value = numpy_helper.to_array(attr.t)
        elif attr.name in ("value_float", "value_floats"):
            value = np.asarray(onnx.helper.get_attribute_value(attr), np.float32)
        elif attr.name in ("value_int", "value_ints"):
            value = np.asarray(onnx.helper.get_attribute_value(attr), np.int64)
        else:
            continue
        ctx.initializers[node.output[0]] = value
        return
    raise ctx.reject(node, "only dense tensor, float and int constants are lowered")


@register("Identity")
def lower_identity(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Identity: the output is the input's tensor."""
    ctx.bind(node.output[0], ctx.tensor(node.input[0]), ctx.layout(node.input[0]))


@register("Flatten", "Reshape", "Squeeze", "Unsqueeze")
def lower_reshape(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """RESHAPE to the inferred ONNX output shape, in ONNX element order, with as few TRANSPOSEs as possible.

    None when the input's layout keeps each run of merged or split axes together
    (ShuffleNet's NHWC [1, C, H, W] → [1, g, C/g, H, W] is [1, H, W, g, C/g]);
    else one, into the layout from which a RESHAPE gives the canonical output
    (an NHWC map is TRANSPOSEd to NCHW before the Flatten of a classifier); else
    a RESHAPE in ONNX order, the output left in it. A Reshape that starts
    PyTorch's GroupNorm pattern lowers the whole pattern.
    """
    if node.op_type == "Reshape" and fuse_group_norm(node, ctx):
        return
    x, out_name = node.input[0], node.output[0]
    in_shape, out_shape = ctx.shape(x), ctx.shape(out_name)
    if ctx.is_constant(x):
        ctx.initializers[out_name] = ctx.constant(x).reshape(out_shape)
        return
    layout = reshaped_layout(in_shape, ctx.layout(x), out_shape)
    if layout is not None:
        source = ctx.tensor(x)
    else:
        layout = canonical_layout(len(out_shape))
        source_layout = reshape_source_layout(in_shape, out_shape, layout)
        if source_layout is None:
            source_layout, layout = tuple(range(len(in_shape))), tuple(range(len(out_shape)))
        source = ctx.tensor_in(x, source_layout)
    out = declare_typed(ctx, node, out_name, layout=layout)
    ctx.reshape(source, permute(out_shape, layout), out=out)


@register("Transpose")
def lower_transpose(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Usually no op: the output is the input's tensor with its axes relabelled (TFLite axis j holds the
    output axis o with perm[o] = the input axis it held), and a reader TRANSPOSEs it only if it needs
    another layout. An output with several readers that would each pay for that (a Relu and an Exp that
    both end as NHWC graph outputs) is moved to its canonical layout here, once."""
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    perm = [int(p) % rank for p in attribute(node, "perm", list(reversed(range(rank))))]
    if ctx.is_constant(x):
        ctx.initializers[out_name] = ctx.constant(x).transpose(perm)
        return
    relabelled, canonical = tuple(perm.index(a) for a in ctx.layout(x)), canonical_layout(rank)
    ctx.bind(out_name, ctx.tensor(x), relabelled)
    several = len(ctx.consumers.get(out_name, [])) > 1 and relabelled != canonical
    if several and 1 + readers_cost(ctx, out_name, canonical) < readers_cost(ctx, out_name, relabelled):
        ctx.bind(out_name, ctx.tensor_in(out_name, canonical), canonical)


@register("Concat")
def lower_concat(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """CONCATENATION on the TFLite axis of the ONNX axis (channels of a 4-D value: axis 3), in the inputs' layout
    when they share one (:meth:`LoweringContext.broadcast_layout`)."""
    out_name = node.output[0]
    rank = ctx.rank(out_name)
    axis = int(attribute(node, "axis")) % rank
    layout = ctx.broadcast_layout(node)
    inputs = [ctx.operand(name, rank, layout) for name in node.input if name]
    # No fused activation: the builtin float kernel rejects one (XNNPACK would take it).
    options = schema.ConcatenationOptionsT(axis=layout.index(axis))
    ctx.op(OP.CONCATENATION, inputs, [ctx.declare(out_name, layout)], options)


def _pad_amounts(node: onnx.NodeProto, ctx: LoweringContext, rank: int) -> tuple[list[int], list[int], float]:
    """(begin, end) per ONNX axis and the constant value of a Pad node, for any opset."""
    if ctx.opset < 11:
        pads, value, axes = list(attribute(node, "pads")), float(attribute(node, "value", 0.0)), list(range(rank))
    else:
        names = [optional_input(node, i) for i in (1, 2, 3)]
        if any(name is not None and not ctx.is_constant(name) for name in names):
            raise ctx.reject(node, "pads, constant_value and axes must be constants")
        pads_name, value_name, axes_name = names
        pads = ctx.constant(pads_name).reshape(-1).tolist()
        value = float(ctx.constant(value_name).reshape(-1)[0]) if value_name else 0.0
        axes = ctx.constant(axes_name).reshape(-1).tolist() if axes_name else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begin[int(axis) % rank], end[int(axis) % rank] = int(pads[i]), int(pads[i + len(axes)])
    return begin, end, value


@register("Pad")
def lower_pad(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Pad → PAD / PADV2 (constant), MIRROR_PAD (reflect) or GATHERs (edge, wrap), with pads remapped to the layout;
    negative pads crop first (a SLICE)."""
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    mode = attribute(node, "mode", "constant")
    begin, end, value = _pad_amounts(node, ctx, rank)
    layout = ctx.layout(x)
    source, out = ctx.tensor(x), ctx.declare(out_name, layout)
    if min(begin + end) < 0:
        shape = ctx.builder.shape(source)
        first = [max(-begin[a], 0) for a in layout]
        size = [shape[j] - first[j] - max(-end[a], 0) for j, a in enumerate(layout)]
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
        cropped = ctx.temp(f"{out_name}/cropped", size) if any(begin + end) else out
        offsets = [ctx.const(f"{out_name}/{k}", np.array(v, np.int32)) for k, v in (("begin", first), ("size", size))]
        ctx.op(OP.SLICE, [source, *offsets], [cropped], schema.SliceOptionsT())
        if cropped == out:
            return
        source = cropped
    paddings = np.array([[begin[a], end[a]] for a in layout], np.int32)
    paddings_tensor = ctx.const(f"{out_name}/paddings", paddings)
    if mode == "constant" and value == 0.0:
        ctx.op(OP.PAD, [source, paddings_tensor], [out], schema.PadOptionsT())
    elif mode == "constant":
        fill = ctx.const(f"{out_name}/value", np.array(value, np.float32))
        ctx.op(OP.PADV2, [source, paddings_tensor, fill], [out], schema.PadV2OptionsT())
    elif mode == "reflect":
        options = schema.MirrorPadOptionsT(mode=schema.MirrorPadMode.REFLECT)
        ctx.op(OP.MIRROR_PAD, [source, paddings_tensor], [out], options)
    elif mode in ("edge", "wrap"):
        _gather_pad(ctx, node, mode, source, begin, end, out)
    else:
        raise ctx.reject(node, f"mode '{mode}' is not lowered (constant, reflect, edge and wrap are)")


def _gather_pad(
    ctx: LoweringContext, node: onnx.NodeProto, mode: str, source: int, begin: list[int], end: list[int], out: int
) -> None:
    """Edge / wrap padding of tensor ``source`` (held in the layout of ``node.input[0]``), one GATHER of source
    rows per padded axis."""
    layout, shape = ctx.layout(node.input[0]), list(ctx.builder.shape(source))
    padded = [j for j, a in enumerate(layout) if begin[a] or end[a]]
    for j in padded:
        a, n = layout[j], shape[j]
        positions = np.arange(-begin[a], n + end[a])
        rows = np.clip(positions, 0, n - 1) if mode == "edge" else positions % n
        shape[j] = len(rows)
        target = out if j == padded[-1] else ctx.temp(f"{node.output[0]}/pad{j}", shape)
        indices = ctx.const(f"{node.output[0]}/rows{j}", rows.astype(np.int32))
        ctx.op(OP.GATHER, [source, indices], [target], schema.GatherOptionsT(axis=j, batchDims=0))
        source = target
