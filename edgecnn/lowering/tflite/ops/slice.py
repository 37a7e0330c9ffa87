"""Slice with constant starts/ends/axes/steps → STRIDED_SLICE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.ops.cut import cut_layout
from edgecnn.lowering.tflite.ops.dtypes import declare_typed
from edgecnn.lowering.tflite.registry import register


def _slice_params(node: onnx.NodeProto, ctx: LoweringContext, shape: Sequence[int]) -> list[tuple[int, int, int]]:
    """(start, end, step) per ONNX axis, clamped as ONNX does; end -1 with a negative step means 'past the start'."""
    rank = len(shape)
    if ctx.opset < 10:
        starts, ends = attribute(node, "starts"), attribute(node, "ends")
        axes = attribute(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        names = [optional_input(node, i) for i in (1, 2, 3, 4)]
        if any(name is not None and not ctx.is_constant(name) for name in names):
            raise ctx.reject(node, "starts, ends, axes and steps must be constants")
        starts, ends = (ctx.constant(n).reshape(-1).tolist() for n in names[:2])
        axes = ctx.constant(names[2]).reshape(-1).tolist() if names[2] else list(range(len(starts)))
        steps = ctx.constant(names[3]).reshape(-1).tolist() if names[3] else [1] * len(starts)
    params = [(0, int(d), 1) for d in shape]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis, step = int(axis) % rank, int(step)
        if step == 0:
            raise ctx.reject(node, "a step of 0")
        dim = int(shape[axis])
        start, end = int(start), int(end)
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        params[axis] = (start, end, step)
    return params


@register("Slice")
def lower_slice(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Slice with constant starts/ends/axes/steps → STRIDED_SLICE on the TFLite axes that hold the ONNX axes.

    The input is cut in the layout :func:`cut_layout` picks for what the slice's readers need.
    """
    x, out_name = node.input[0], node.output[0]
    params = _slice_params(node, ctx, ctx.shape(x))
    layout = cut_layout(ctx, node)
    begin, end, strides, end_mask = [], [], [], 0
    for j, axis in enumerate(layout):
        start, stop, step = params[axis]
        if stop < 0:  # a negative step running past index 0: TFLite reads -1 as the last element
            end_mask |= 1 << j
            stop = 0
        begin.append(start)
        end.append(stop)
        strides.append(step)
    source = ctx.tensor_in(x, layout)
    out = declare_typed(ctx, node, out_name, layout=layout)
    tensors = [ctx.const(f"{out_name}/{k}", np.array(v, np.int32)) for k, v in (("begin", begin), ("end", end))]
    tensors.append(ctx.const(f"{out_name}/strides", np.array(strides, np.int32)))
    options = schema.StridedSliceOptionsT(beginMask=0, endMask=end_mask, offset=False)
    ctx.op(OP.STRIDED_SLICE, [source, *tensors], [out], options)
    ctx.canonicalize(out_name)
