"""Global pools and reductions → MEAN / REDUCE_MAX / REDUCE_MIN / SUM / REDUCE_PROD; MaxPool → MAX_POOL_2D;
AveragePool → DEPTHWISE_CONV_2D by 1 / area (AVERAGE_POOL_2D where TF's SAME pads leave the pads out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import ACT, OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.ops.window import Window, depthwise_conv, pad_nhwc, padding_mode, read_window
from edgecnn.lowering.tflite.registry import register

REDUCERS = {
    "ReduceMean": OP.MEAN,
    "ReduceMax": OP.REDUCE_MAX,
    "ReduceMin": OP.REDUCE_MIN,
    "ReduceSum": OP.SUM,
    "ReduceProd": OP.REDUCE_PROD,
    "ReduceL1": OP.SUM,  # of ABS
    "ReduceL2": OP.SUM,  # of MUL(x, x), then SQRT
    "ReduceSumSquare": OP.SUM,  # of MUL(x, x)
}
AXES_AS_INPUT_FROM = 18  # the opset from which axes is an input (ReduceSum: 13)
SQUEEZES = ("Flatten", "Reshape", "Squeeze")  # after a reduction: folded into it when they drop its axes
LOWEST = float(np.finfo(np.float32).min)  # the pad value that never wins a max


def _squeezing_reshape(node: onnx.NodeProto, ctx: LoweringContext, axes: Sequence[int]) -> onnx.NodeProto | None:
    """The Flatten/Reshape/Squeeze that alone reads the kept-dims output of reduction ``node`` and only drops its
    reduced axes (a classifier's [N, C, 1, 1] → [N, C]), or None: the reduction then writes that output itself
    (keepDims false) and no RESHAPE follows."""
    after = ctx.sole_consumer(node.output[0])
    if after is None or after.op_type not in SQUEEZES or after.domain not in ("", "ai.onnx"):
        return None
    if after.input[0] != node.output[0]:
        return None
    squeezed = tuple(size for axis, size in enumerate(ctx.shape(node.input[0])) if axis not in axes)
    return after if tuple(ctx.shape(after.output[0])) == squeezed else None


def _reduce(ctx: LoweringContext, node: onnx.NodeProto, builtin: int, axes: Sequence[int], keep: bool) -> None:
    """Reduce value ``node.input[0]`` over ONNX ``axes`` on the TFLite axes that hold them (no TRANSPOSE); a
    reshape after it that only drops those axes is taken in (:func:`_squeezing_reshape`).

    ReduceL1 / ReduceL2 / ReduceSumSquare first take ABS / the square elementwise; ReduceL2 ends with a SQRT.
    """
    x, out_name = node.input[0], node.output[0]
    squeeze = _squeezing_reshape(node, ctx, axes) if keep else None
    if squeeze is not None:
        ctx.absorb(squeeze)
        keep, out_name = False, squeeze.output[0]
    layout = ctx.layout(x)
    source = ctx.tensor(x)
    if node.op_type == "ReduceL1":
        source = _elementwise(ctx, OP.ABS, [source], f"{out_name}/abs")
    elif node.op_type in ("ReduceL2", "ReduceSumSquare"):
        source = _elementwise(ctx, OP.MUL, [source, source], f"{out_name}/square", schema.MulOptionsT())
    tfl_axes = sorted(layout.index(a) for a in axes)
    axes_tensor = ctx.const(f"{out_name}/axes", np.asarray(tfl_axes, np.int32))
    if keep:
        out_layout = layout
    else:
        kept = [a for a in range(len(layout)) if a not in axes]
        out_layout = tuple(kept.index(layout[j]) for j in range(len(layout)) if j not in tfl_axes)
    out = ctx.declare(out_name, out_layout)
    options = schema.ReducerOptionsT(keepDims=keep)
    if node.op_type == "ReduceL2":
        total = ctx.temp(f"{out_name}/sum_of_squares", ctx.builder.shape(out))
        ctx.op(builtin, [source, axes_tensor], [total], options)
        ctx.op(OP.SQRT, [total], [out])
    else:
        ctx.op(builtin, [source, axes_tensor], [out], options)


def _elementwise(ctx: LoweringContext, builtin: int, inputs: list[int], name: str, options: object = None) -> int:
    out = ctx.temp(name, ctx.builder.shape(inputs[0]))
    ctx.op(builtin, inputs, [out], options)
    return out


@register("GlobalAveragePool", "GlobalMaxPool")
def lower_global_pool(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Global pools → MEAN / REDUCE_MAX over the spatial axes (NHWC [1, 2]), keeping dims."""
    rank = ctx.rank(node.input[0])
    builtin = OP.MEAN if node.op_type == "GlobalAveragePool" else OP.REDUCE_MAX
    _reduce(ctx, node, builtin, list(range(2, rank)), keep=True)


@register(*REDUCERS)
def lower_reduce(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """ReduceMean/Max/Min/Sum/Prod/L1/L2/SumSquare with constant axes (attribute or input), with or without
    keepdims; the ONNX axes are mapped through the input's layout (NCHW axis 1 is NHWC axis 3)."""
    rank = ctx.rank(node.input[0])
    if ctx.opset >= (13 if node.op_type == "ReduceSum" else AXES_AS_INPUT_FROM):
        axes_name = optional_input(node, 1)
        if axes_name is not None and not ctx.is_constant(axes_name):
            raise ctx.reject(node, "the axes are not a constant")
        axes = ctx.constant(axes_name).reshape(-1).tolist() if axes_name else []
    else:
        axes = list(attribute(node, "axes", []))
    if not axes:
        if attribute(node, "noop_with_empty_axes", 0):
            ctx.bind(node.output[0], ctx.tensor(node.input[0]), ctx.layout(node.input[0]))
            return
        axes = list(range(rank))
    axes = sorted({int(a) % rank for a in axes})
    _reduce(ctx, node, REDUCERS[node.op_type], axes, keep=bool(attribute(node, "keepdims", 1)))


def _overflow(in_hw: Sequence[int], out_hw: Sequence[int], window: Window) -> tuple[int, int]:
    """Extra bottom/right padding that ceil_mode needs for a VALID pool to give ``out_hw``."""
    top, left, bottom, right = window.pads
    spans = (in_hw[0] + top + bottom, in_hw[1] + left + right)
    extra = [max((out_hw[a] - 1) * window.strides[a] + window.kernel[a] - spans[a], 0) for a in range(2)]
    return extra[0], extra[1]


def _divisors(in_hw: Sequence[int], out_hw: Sequence[int], window: Window, include_pad: bool) -> np.ndarray:
    """ONNX Runtime's divisor of each output of an AveragePool: window cells inside the input (and its pads)."""
    counts = []
    for a in range(2):
        begin, end = window.pads[a], window.pads[2 + a]
        starts = np.arange(out_hw[a]) * window.strides[a] - begin
        stops = np.minimum(starts + window.kernel[a], in_hw[a] + end)
        if not include_pad:
            starts, stops = np.maximum(starts, 0), np.minimum(stops, in_hw[a])
        counts.append(stops - starts)
    return np.outer(counts[0], counts[1]).astype(np.float64)


def _pool_options(window: Window, mode: int) -> object:
    return schema.Pool2DOptionsT(
        padding=mode,
        strideH=window.strides[0],
        strideW=window.strides[1],
        filterHeight=window.kernel[0],
        filterWidth=window.kernel[1],
    )


def _window(node: onnx.NodeProto, ctx: LoweringContext) -> Window:
    if len(node.output) > 1 and node.output[1]:
        raise ctx.reject(node, "the Indices output is not lowered")
    window = read_window(node, ctx, attribute(node, "kernel_shape", []))
    if window.dilations != (1, 1):
        raise ctx.reject(node, "dilated pooling has no TFLite op")
    return window


def _every_window_reads(in_hw: Sequence[int], out_hw: Sequence[int], window: Window) -> bool:
    """True when every pooling window holds an input cell (pads are smaller than the kernel, but a ceil_mode window
    may start past the input): then a max over non-negative inputs is the same whatever the pads hold."""
    return all((out_hw[a] - 1) * window.strides[a] - window.pads[a] < in_hw[a] for a in range(2))


@register("MaxPool")
def lower_max_pool(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """MAX_POOL_2D; pads other than TF's SAME (or ceil_mode) become a PADV2 with the lowest float first — or a PAD
    with zeros when the input is never negative (a ReLU's: the max is the same), which XNNPACK takes and PADV2 not
    (``edgecnn.runtime.xnnpack``: every ResNet's fp32 `.tflite` ran in two partitions)."""
    window = _window(node, ctx)
    x, out_name = node.input[0], node.output[0]
    in_hw, out_hw = ctx.shape(x)[2:], ctx.shape(out_name)[2:]
    extra = _overflow(in_hw, out_hw, window)
    source = ctx.tensor_in(x, NHWC)
    mode = padding_mode(in_hw, window) if not any(extra) else None
    if mode is None:
        top, left, bottom, right = window.pads
        fill = 0.0 if ctx.non_negative(x) and _every_window_reads(in_hw, out_hw, window) else LOWEST
        source = pad_nhwc(ctx, source, (top, left, bottom + extra[0], right + extra[1]), fill)
        mode = schema.Padding.VALID
    ctx.op(OP.MAX_POOL_2D, [source], [ctx.declare(out_name)], _pool_options(window, mode))


def _mean_by_depthwise(ctx: LoweringContext, source: int, window: Window, out: int) -> None:
    """The mean of each VALID ``window`` of NHWC tensor ``source``, as a depthwise convolution by 1 / (kh·kw)."""
    channels = ctx.builder.shape(source)[3]
    area = window.kernel[0] * window.kernel[1]
    weight = np.full((channels, 1, *window.kernel), 1.0 / area, np.float32)  # the pads, if any, are in ``source``
    depthwise_conv(ctx, source, weight, np.zeros(channels, np.float32), window, schema.Padding.VALID, ACT.NONE, out)


@register("AveragePool")
def lower_average_pool(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """AveragePool with ONNX Runtime's divisors.

    A window over the whole input: MEAN, as GlobalAveragePool. Otherwise no pads: a VALID DEPTHWISE_CONV_2D by
    1 / (kh·kw) (XNNPACK takes no int8 AVERAGE_POOL_2D: DenseNet-121's three transitions each split its int8 graph;
    the weights are exact in int8). count_include_pad=0 with TF's SAME pads:
    AVERAGE_POOL_2D SAME (TF also leaves the pads out of the count). Otherwise: PAD with zeros, the VALID
    convolution, then a MUL by kh·kw / divisor per output position where the divisor differs (pads left out of the
    count, ceil_mode windows).
    """
    window = _window(node, ctx)
    x, out_name = node.input[0], node.output[0]
    in_hw, out_hw = ctx.shape(x)[2:], ctx.shape(out_name)[2:]
    include_pad = bool(attribute(node, "count_include_pad", 0))
    extra = _overflow(in_hw, out_hw, window)
    mode = padding_mode(in_hw, window, allow_same=not include_pad) if not any(extra) else None
    if mode == schema.Padding.VALID and tuple(out_hw) == (1, 1) and tuple(window.kernel) == tuple(in_hw):
        _reduce(ctx, node, OP.MEAN, [2, 3], keep=True)  # the whole input (an old net's 7×7 head): no kh·kw·C weights
        return
    source = ctx.tensor_in(x, NHWC)
    if mode == schema.Padding.VALID:
        _mean_by_depthwise(ctx, source, window, ctx.declare(out_name))
        return
    if mode is not None:
        ctx.op(OP.AVERAGE_POOL_2D, [source], [ctx.declare(out_name)], _pool_options(window, mode))
        return
    top, left, bottom, right = window.pads
    source = pad_nhwc(ctx, source, (top, left, bottom + extra[0], right + extra[1]))
    area = window.kernel[0] * window.kernel[1]
    correction = area / _divisors(in_hw, out_hw, window, include_pad)
    if np.all(correction == 1.0):
        _mean_by_depthwise(ctx, source, window, ctx.declare(out_name))
        return
    pooled = ctx.temp(f"{out_name}/sum_over_area", [ctx.builder.shape(source)[0], *out_hw, ctx.shape(x)[1]])
    _mean_by_depthwise(ctx, source, window, pooled)
    scale = ctx.const(f"{out_name}/count_correction", correction.reshape(1, *out_hw, 1))
    ctx.op(OP.MUL, [pooled, scale], [ctx.declare(out_name)], schema.MulOptionsT())
