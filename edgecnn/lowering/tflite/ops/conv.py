"""Conv → CONV_2D, DEPTHWISE_CONV_2D, or SPLIT + CONV_2D per group + CONCATENATION, with fused Relu/Relu6;
a HardSigmoid after it takes 6·alpha and 6·beta into the weights and bias, RELU6 fused (then MUL 1/6)."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import ACT, OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.ops.elementwise import foldable_hard_sigmoid, hard_sigmoid_params
from edgecnn.lowering.tflite.ops.window import Window, depthwise_conv, pad_nhwc, padding_mode, read_window
from edgecnn.lowering.tflite.registry import register


def _conv2d(
    ctx: LoweringContext,
    source: int,
    weight: np.ndarray,
    bias: np.ndarray,
    window: Window,
    mode: int,
    act: int,
    out: int,
) -> None:
    name = ctx.builder.name(out)
    options = schema.Conv2DOptionsT(
        padding=mode,
        strideH=window.strides[0],
        strideW=window.strides[1],
        dilationHFactor=window.dilations[0],
        dilationWFactor=window.dilations[1],
        fusedActivationFunction=act,
    )
    filters = ctx.const(f"{name}/weights", weight.transpose(0, 2, 3, 1))  # OIHW -> OHWI
    ctx.op(OP.CONV_2D, [source, filters, ctx.const(f"{name}/bias", bias)], [out], options)


def _grouped(
    ctx: LoweringContext,
    source: int,
    weight: np.ndarray,
    bias: np.ndarray,
    window: Window,
    mode: int,
    act: int,
    out: int,
    groups: int,
) -> None:
    """SPLIT the input channels, one CONV_2D per group (activation fused there), CONCATENATION of the outputs.

    The builtin float CONCATENATION kernel rejects a fused activation, so it goes on the convolutions.
    """
    name = ctx.builder.name(out)
    n, h, w, channels = ctx.builder.shape(source)
    _, oh, ow, _ = ctx.builder.shape(out)
    per_in, per_out = channels // groups, weight.shape[0] // groups
    parts = [ctx.temp(f"{name}/split{g}", [n, h, w, per_in]) for g in range(groups)]
    axis = ctx.const(f"{name}/split_axis", np.array(3, np.int32))
    ctx.op(OP.SPLIT, [axis, source], parts, schema.SplitOptionsT(numSplits=groups))
    results = []
    for g, part in enumerate(parts):
        result = ctx.temp(f"{name}/group{g}", [n, oh, ow, per_out])
        span = slice(g * per_out, (g + 1) * per_out)
        _conv2d(ctx, part, weight[span], bias[span], window, mode, act, result)
        results.append(result)
    ctx.op(OP.CONCATENATION, results, [out], schema.ConcatenationOptionsT(axis=3))


@register("Conv")
def lower_conv(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """2-D Conv with constant weights; pads that are not TF's SAME become an explicit PAD before a VALID conv."""
    x, weight_name = node.input[0], node.input[1]
    if not ctx.is_constant(weight_name):
        raise ctx.reject(node, "the weights are not a constant")
    weight = ctx.constant(weight_name).astype(np.float32)
    if weight.ndim != 4:
        raise ctx.reject(node, f"only 2-D convolutions are lowered (weight shape {list(weight.shape)})")
    bias_name = optional_input(node, 2)
    if bias_name is not None and not ctx.is_constant(bias_name):
        raise ctx.reject(node, "the bias is not a constant")
    bias = ctx.constant(bias_name).astype(np.float32) if bias_name else np.zeros(weight.shape[0], np.float32)
    window = read_window(node, ctx, attribute(node, "kernel_shape", weight.shape[2:]))
    groups = int(attribute(node, "group", 1))
    in_shape = ctx.shape(x)
    channels = in_shape[1]
    if channels % groups or weight.shape[0] % groups or weight.shape[1] * groups != channels:
        raise ctx.reject(node, f"group={groups} does not divide {channels} input / {weight.shape[0]} output channels")

    source = ctx.tensor_in(x, NHWC)
    mode = padding_mode(in_shape[2:], window)
    if mode is None:
        source = pad_nhwc(ctx, source, window.pads)
        mode = schema.Padding.VALID
    hard = foldable_hard_sigmoid(node, ctx)
    if hard is not None:  # RELU6(6·alpha·conv(x) + 6·beta) is a conv with its weights and bias changed
        alpha, beta = hard_sigmoid_params(hard)
        weight, bias = weight * np.float32(6 * alpha), bias * np.float32(6 * alpha) + np.float32(6 * beta)
        ctx.absorb(hard)
        shape = ctx.shape(node.output[0])
        act = ACT.RELU6
        out = ctx.temp(f"{hard.output[0]}/folded", [shape[axis] for axis in NHWC])
    else:
        act, out_name = ctx.fuse_activation(node)
        out = ctx.declare(out_name)
    if groups == 1:
        _conv2d(ctx, source, weight, bias, window, mode, act, out)
    elif groups == channels:  # weight [C·mult, 1, kh, kw]
        depthwise_conv(ctx, source, weight, bias, window, mode, act, out)
    else:
        _grouped(ctx, source, weight, bias, window, mode, act, out, groups)
    if hard is not None:
        _scale_by_a_sixth(ctx, out, hard.output[0])


def _scale_by_a_sixth(ctx: LoweringContext, clamped: int, out_name: str) -> None:
    """HardSigmoid = RELU6(6·alpha·x + 6·beta) / 6: MUL 1/6 after the conv that took 6·alpha, 6·beta and RELU6 —
    ops ai-edge-quantizer keeps int8 (RELU_0_TO_1 it leaves float, between a DEQUANTIZE and a QUANTIZE). beta in
    the bias, as litert-torch folds it: where a near-zero input (an untrained squeeze-and-excitation) makes the
    int32 bias overflow, the int8 quantization keeps that conv float (lowering/tflite/quantize.py)."""
    sixth = ctx.const(f"{out_name}/sixth", np.array([1 / 6], np.float32))
    ctx.op(OP.MUL, [clamped, sixth], [ctx.declare(out_name)], schema.MulOptionsT())
