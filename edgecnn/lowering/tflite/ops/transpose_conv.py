"""ConvTranspose → TRANSPOSE_CONV with bias (per group: SPLIT, one TRANSPOSE_CONV each, CONCATENATION)."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import ACT, OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.registry import register


def _pads_begin(node: onnx.NodeProto, ctx: LoweringContext, kernel: list[int], strides: list[int]) -> list[int]:
    """The pads ONNX crops from the top and left of the full transposed-convolution output."""
    in_hw, out_hw = ctx.shape(node.input[0])[2:], ctx.shape(node.output[0])[2:]
    auto_pad = attribute(node, "auto_pad", "NOTSET")
    if attribute(node, "output_shape") is None and auto_pad in ("NOTSET", "", "VALID"):
        pads = [int(p) for p in attribute(node, "pads", [0, 0, 0, 0])] if auto_pad != "VALID" else [0, 0, 0, 0]
        return pads[:2]
    output_padding = [int(p) for p in attribute(node, "output_padding", [0, 0])]
    begin = []
    for a in range(2):
        total = strides[a] * (in_hw[a] - 1) + output_padding[a] + kernel[a] - out_hw[a]
        begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    return begin


def _tf_same_offset(out_size: int, stride: int, kernel: int) -> int:
    """The top/left offset TRANSPOSE_CONV uses with SAME padding for an output of ``out_size``."""
    steps = (out_size + stride - 1) // stride
    return max((steps - 1) * stride + kernel - out_size, 0) // 2


def _transpose_conv(
    ctx: LoweringContext,
    source: int,
    weight: np.ndarray,
    bias: np.ndarray,
    strides: list[int],
    padding: int,
    act: int,
    out: int,
) -> None:
    """One TRANSPOSE_CONV of NHWC ``source`` with ONNX weights [C, M, kh, kw] into ``out`` (of the output's shape)."""
    name = ctx.builder.name(out)
    shape = ctx.const(f"{name}/output_shape", np.asarray(ctx.builder.shape(out), np.int32))
    filters = ctx.const(f"{name}/weights", weight.transpose(1, 2, 3, 0))  # [C, M, kh, kw] -> [M, kh, kw, C]
    options = schema.TransposeConvOptionsT(
        padding=padding, strideH=strides[0], strideW=strides[1], fusedActivationFunction=act
    )
    inputs = [shape, filters, source, ctx.const(f"{name}/bias", bias)]
    version = 4 if act != ACT.NONE else 3  # TFLite's op versioning: a bias input needs 3, an activation 4
    ctx.op(OP.TRANSPOSE_CONV, inputs, [out], options, version=version)


@register("ConvTranspose")
def lower_conv_transpose(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """2-D ConvTranspose with constant weights: SAME or VALID TRANSPOSE_CONV, plus a SLICE for other pads."""
    x, weight_name, out_name = node.input[0], node.input[1], node.output[0]
    if not ctx.is_constant(weight_name):
        raise ctx.reject(node, "the weights are not a constant")
    weight = ctx.constant(weight_name).astype(np.float32)
    if weight.ndim != 4:
        raise ctx.reject(node, f"only 2-D transposed convolutions are lowered (weight shape {list(weight.shape)})")
    if any(int(d) != 1 for d in attribute(node, "dilations", [1, 1])):
        raise ctx.reject(node, "TRANSPOSE_CONV has no dilation")
    groups = int(attribute(node, "group", 1))
    channels, per_out = weight.shape[0], weight.shape[1]
    bias_name = optional_input(node, 2)
    if bias_name is not None and not ctx.is_constant(bias_name):
        raise ctx.reject(node, "the bias is not a constant")
    bias = ctx.constant(bias_name).astype(np.float32) if bias_name else np.zeros(per_out * groups, np.float32)
    kernel = [int(k) for k in weight.shape[2:]]
    strides = [int(s) for s in attribute(node, "strides", [1, 1])]
    begin = _pads_begin(node, ctx, kernel, strides)
    if min(begin) < 0:
        raise ctx.reject(node, f"negative pads {begin}")
    n, _, out_h, out_w = ctx.shape(out_name)
    in_hw = ctx.shape(x)[2:]
    same = [_tf_same_offset(o, s, k) for o, s, k in zip((out_h, out_w), strides, kernel, strict=True)]
    if begin == same and all(-(-o // s) == i for o, s, i in zip((out_h, out_w), strides, in_hw, strict=True)):
        padding, full = schema.Padding.SAME, (out_h, out_w)
    else:  # VALID writes at least s·(in-1)+k rows (TFLite checks), then a SLICE crops what ONNX pads away
        least = [s * (i - 1) + k for s, i, k in zip(strides, in_hw, kernel, strict=True)]
        padding = schema.Padding.VALID
        full = (max(out_h + begin[0], least[0]), max(out_w + begin[1], least[1]))
    cropped = full != (out_h, out_w)
    act, out_name = ctx.fuse_activation(node)  # on every TRANSPOSE_CONV: it commutes with the SLICE and the concat
    out = ctx.temp(f"{out_name}/uncropped", [n, *full, per_out * groups]) if cropped else ctx.declare(out_name)
    source = ctx.tensor_in(x, NHWC)
    if groups == 1:
        _transpose_conv(ctx, source, weight, bias, strides, padding, act, out)
    else:
        h, w = in_hw
        per_in = channels // groups
        parts = [ctx.temp(f"{out_name}/split{g}", [n, h, w, per_in]) for g in range(groups)]
        axis = ctx.const(f"{out_name}/split_axis", np.array(3, np.int32))
        ctx.op(OP.SPLIT, [axis, source], parts, schema.SplitOptionsT(numSplits=groups))
        results = []
        for g, part in enumerate(parts):
            result = ctx.temp(f"{out_name}/group{g}", [n, *full, per_out])
            span = slice(g * per_out, (g + 1) * per_out)
            group_weight = weight[g * per_in : (g + 1) * per_in]
            _transpose_conv(ctx, part, group_weight, bias[span], strides, padding, act, result)
            results.append(result)
        ctx.op(OP.CONCATENATION, results, [out], schema.ConcatenationOptionsT(axis=3))
    if cropped:
        begin_tensor = ctx.const(f"{out_name}/begin", np.array([0, begin[0], begin[1], 0], np.int32))
        size_tensor = ctx.const(f"{out_name}/size", np.array([n, out_h, out_w, per_out * groups], np.int32))
        ctx.op(OP.SLICE, [out, begin_tensor, size_tensor], [ctx.declare(out_name)], schema.SliceOptionsT())
