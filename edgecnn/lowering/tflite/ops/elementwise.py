"""Binary and variadic arithmetic with broadcasting, activations, Floor, Softmax/LogSoftmax, BatchNormalization (as a
1×1 depthwise convolution)."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.ops.activation import fuse_gelu
from edgecnn.lowering.tflite.ops.window import Window, depthwise_conv
from edgecnn.lowering.tflite.registry import register

BINARY = {
    "Add": (OP.ADD, schema.AddOptionsT),
    "Sub": (OP.SUB, schema.SubOptionsT),
    "Mul": (OP.MUL, schema.MulOptionsT),
    "Div": (OP.DIV, schema.DivOptionsT),
}
UNARY = {"Relu": OP.RELU, "Sigmoid": OP.LOGISTIC, "Tanh": OP.TANH, "HardSwish": OP.HARD_SWISH, "Floor": OP.FLOOR}
CLIPS = {(0.0, 6.0): OP.RELU6, (0.0, None): OP.RELU, (-1.0, 1.0): OP.RELU_N1_TO_1, (0.0, 1.0): OP.RELU_0_TO_1}


def _channel_constant(ctx: LoweringContext, name: str, values: np.ndarray, layout: tuple[int, ...]) -> int:
    """A per-channel constant (ONNX axis 1) shaped to broadcast against a value held in ``layout``."""
    shape = [1] * len(layout)
    shape[1] = values.size
    return ctx.const(name, values.reshape(shape).transpose(layout))


@register(*BINARY)
def lower_binary(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Add/Sub/Mul/Div; constants (e.g. NCHW [1,C,1,1]) are laid out to broadcast in NHWC ([1,1,1,C]).

    A Div by √2 (or Mul by 1/√2) that starts the exporters' Erf form of GELU lowers the whole pattern.
    """
    if fuse_gelu(node, ctx):
        return
    layout = ctx.broadcast_layout(node)
    inputs = ctx.broadcast_operands(node, layout)
    act, out_name = ctx.fuse_activation(node)
    builtin, options = BINARY[node.op_type]
    ctx.op(builtin, inputs, [ctx.declare(out_name, layout)], options(fusedActivationFunction=act))


VARIADIC = {"Max": OP.MAXIMUM, "Min": OP.MINIMUM, "Sum": OP.ADD, "Mean": OP.ADD}


@register(*VARIADIC)
def lower_variadic(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Max/Min/Sum/Mean of any number of broadcasting inputs → a chain of MAXIMUM / MINIMUM / ADD (Mean: then a
    MUL by 1/n); one input is the input itself."""
    out_name, names = node.output[0], [name for name in node.input if name]
    if len(names) == 1:
        ctx.bind(out_name, ctx.tensor(names[0]), ctx.layout(names[0]))
        return
    layout = ctx.broadcast_layout(node)
    operands = ctx.broadcast_operands(node, layout)
    builtin = VARIADIC[node.op_type]
    options = schema.AddOptionsT() if builtin == OP.ADD else schema.MaximumMinimumOptionsT()
    out = ctx.declare(out_name, layout)
    steps = len(operands) - 1 + (node.op_type == "Mean")
    result = operands[0]
    for i, operand in enumerate(operands[1:], start=1):
        shape = np.broadcast_shapes(ctx.builder.shape(result), ctx.builder.shape(operand))
        target = out if i == steps else ctx.temp(f"{out_name}/{i}", shape)
        ctx.op(builtin, [result, operand], [target], options)
        result = target
    if node.op_type == "Mean":
        factor = ctx.const(f"{out_name}/reciprocal_count", np.array([1 / len(operands)], np.float32))
        ctx.op(OP.MUL, [result, factor], [out], schema.MulOptionsT())


@register(*UNARY)
def lower_unary(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Relu → RELU, Sigmoid → LOGISTIC, Tanh → TANH, HardSwish → HARD_SWISH, Floor → FLOOR (in the input's layout)."""
    x = node.input[0]
    ctx.op(UNARY[node.op_type], [ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))])


@register("LeakyRelu")
def lower_leaky_relu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """LeakyRelu → LEAKY_RELU with the same alpha."""
    x = node.input[0]
    options = schema.LeakyReluOptionsT(alpha=float(attribute(node, "alpha", 0.01)))
    ctx.op(OP.LEAKY_RELU, [ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))], options)


@register("Clip")
def lower_clip(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Clip → RELU6 / RELU / RELU_N1_TO_1 / RELU_0_TO_1 for those bounds, else MAXIMUM and MINIMUM."""
    bounds = ctx.clip_bounds(node)
    if bounds is None:
        raise ctx.reject(node, "the bounds are not constants")
    x, out_name = node.input[0], node.output[0]
    source, layout = ctx.tensor(x), ctx.layout(x)
    if bounds in CLIPS:
        ctx.op(CLIPS[bounds], [source], [ctx.declare(out_name, layout)])
        return
    low, high = bounds
    if low is None and high is None:
        ctx.bind(out_name, source, ctx.layout(x))
        return
    steps = [(OP.MAXIMUM, low), (OP.MINIMUM, high)]
    steps = [(builtin, value) for builtin, value in steps if value is not None]
    # The bound has the input's rank: ai-edge-quantizer gives MAXIMUM/MINIMUM's constant the output's quantization,
    # whose scale has the output's rank, and refuses a constant of another rank.
    rank = len(ctx.builder.shape(source))
    for i, (builtin, value) in enumerate(steps):
        last = i == len(steps) - 1
        out = ctx.declare(out_name, layout) if last else ctx.temp(f"{out_name}/max", ctx.builder.shape(source))
        bound = ctx.const(f"{out_name}/bound{i}", np.full((1,) * max(rank, 1), value, np.float32))
        ctx.op(builtin, [source, bound], [out], schema.MaximumMinimumOptionsT())
        source = out


def _hard_swish_mul(node: onnx.NodeProto, ctx: LoweringContext, alpha: float, beta: float) -> onnx.NodeProto | None:
    """The Mul that makes HardSigmoid(1/6, 0.5) ``node`` a HardSwish (x · HardSigmoid(x), as quant_pre_process
    writes it), or None."""
    if not (np.isclose(alpha, 1 / 6) and beta == 0.5):
        return None
    mul = ctx.sole_consumer(node.output[0])
    if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([node.input[0], node.output[0]]):
        return None
    return mul


def hard_sigmoid_params(node: onnx.NodeProto) -> tuple[float, float]:
    """(alpha, beta) of a HardSigmoid node, ONNX's defaults where unset."""
    return float(attribute(node, "alpha", 0.2)), float(attribute(node, "beta", 0.5))


def foldable_hard_sigmoid(node: onnx.NodeProto, ctx: LoweringContext) -> onnx.NodeProto | None:
    """The HardSigmoid that alone reads ``node``'s first output, or None. A producer linear in its weights and
    bias (Conv) takes ``6·alpha`` into them, leaving ADD 6·beta (RELU6 fused) and MUL 1/6: a squeeze-and-excitation
    gate is then three ops, not four, all of them int8. (x · HardSigmoid(x) has two readers of x: it stays
    HARD_SWISH.)"""
    hard = ctx.sole_consumer(node.output[0])
    return hard if hard is not None and hard.op_type == "HardSigmoid" and hard.domain in ("", "ai.onnx") else None


@register("HardSigmoid")
def lower_hard_sigmoid(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """max(0, min(1, alpha·x + beta)) as MUL, ADD and RELU_0_TO_1, in ONNX Runtime's order of operations;
    HardSigmoid(1/6, 1/2) times its own input → one HARD_SWISH. (After a Conv it is folded there: see
    :func:`foldable_hard_sigmoid`.)"""
    alpha, beta = hard_sigmoid_params(node)
    x, out_name = node.input[0], node.output[0]
    source, layout = ctx.tensor(x), ctx.layout(x)
    mul = _hard_swish_mul(node, ctx, alpha, beta)
    if mul is not None:
        ctx.absorb(mul)
        ctx.op(OP.HARD_SWISH, [source], [ctx.declare(mul.output[0], layout)])
        return
    shape = ctx.builder.shape(source)
    scaled = ctx.temp(f"{out_name}/scaled", shape)
    alpha_tensor = ctx.const(f"{out_name}/alpha", np.array([alpha], np.float32))
    ctx.op(OP.MUL, [source, alpha_tensor], [scaled], schema.MulOptionsT())
    shifted = ctx.temp(f"{out_name}/shifted", shape)
    beta_tensor = ctx.const(f"{out_name}/beta", np.array([beta], np.float32))
    ctx.op(OP.ADD, [scaled, beta_tensor], [shifted], schema.AddOptionsT())
    ctx.op(OP.RELU_0_TO_1, [shifted], [ctx.declare(out_name, layout)])


@register("Softmax", "LogSoftmax")
def lower_softmax(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """SOFTMAX / LOG_SOFTMAX over the TFLite axis that holds the ONNX axis, with a TRANSPOSE before it when that
    axis is not last. Before opset 13 the op works on the input flattened to 2-D at ``axis``: RESHAPEs around it."""
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    axis = int(attribute(node, "axis", -1 if ctx.opset >= 13 else 1)) % rank
    if node.op_type == "Softmax":
        builtin, options = OP.SOFTMAX, schema.SoftmaxOptionsT(beta=1.0)
    else:
        builtin, options = OP.LOG_SOFTMAX, schema.LogSoftmaxOptionsT()
    if ctx.opset < 13 and axis != rank - 1:
        shape = ctx.shape(x)
        identity = tuple(range(rank))
        flat = [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))]
        rows = ctx.reshape(ctx.tensor_in(x, identity), flat, f"{out_name}/rows")
        done = ctx.temp(f"{out_name}/rows_out", flat)
        ctx.op(builtin, [rows], [done], options)
        ctx.reshape(done, shape, out=ctx.declare(out_name, identity))
        return
    source = ctx.tensor(x)
    layout = ctx.layout(x)
    tfl_axis = layout.index(axis)
    if tfl_axis == rank - 1:
        ctx.op(builtin, [source], [ctx.declare(out_name, layout)], options)
    else:
        perm = [a for a in range(rank) if a != tfl_axis] + [tfl_axis]
        moved = ctx.transpose(source, perm, f"{out_name}/axis_last")
        ctx.op(builtin, [moved], [ctx.declare(out_name, [layout[p] for p in perm])], options)


# a shift over this many times its channel's factor: kept as MUL + ADD (below). The int32 bias holds the shift in
# units of input scale × |factor| / 127, and overflows past 2^31 of them: at an input scale of 1e-4 from 1,690 times
MAX_SHIFT_OVER_FACTOR = 1e3


@register("BatchNormalization")
def lower_batch_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Inference BatchNormalization (one that no conv before it absorbed: DenseNet's, after a concatenation) → a
    1×1 DEPTHWISE_CONV_2D by the per-channel factor with the shift as its bias, a following Relu fused.

    In int8 that is one requantization with exact per-channel factors and an int32 shift, which XNNPACK runs: the
    MUL + ADD it replaces rounds twice, holds factor and shift in per-tensor int8, and an ADD of a shift far smaller
    than its output (all zeros in a fresh network) is refused by XNNPACK (62 of DenseNet-121's ADDs, 66
    partitions). Other ranks, and a channel whose shift dwarfs its factor (a gamma shrunk to ~0: its int32 bias
    would overflow, and the op would stay float), keep MUL and ADD by per-channel constants."""
    if attribute(node, "training_mode", 0):
        raise ctx.reject(node, "training_mode=1 is not lowered")
    if any(name for name in node.output[1:]):
        raise ctx.reject(node, "the running mean/var outputs are not lowered")
    params = node.input[1:5]
    if len(params) != 4 or not all(ctx.is_constant(p) for p in params):
        raise ctx.reject(node, "scale, bias, mean and var must be constants")
    scale, bias, mean, var = (ctx.constant(p).astype(np.float64).reshape(-1) for p in params)
    factor = scale / np.sqrt(var + float(attribute(node, "epsilon", 1e-5)))
    shift = bias - mean * factor
    x = node.input[0]
    source, layout = ctx.tensor(x), ctx.layout(x)
    act, out_name = ctx.fuse_activation(node)
    magnitude = np.abs(factor)
    fits = magnitude.min() > 0 and float(np.max(np.abs(shift) / magnitude)) <= MAX_SHIFT_OVER_FACTOR
    if layout == NHWC and fits:
        weight = factor.astype(np.float32).reshape(-1, 1, 1, 1)
        window = Window((1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
        out = ctx.declare(out_name, layout)
        depthwise_conv(ctx, source, weight, shift.astype(np.float32), window, schema.Padding.VALID, act, out)
        return
    scaled = ctx.temp(f"{out_name}/scaled", ctx.builder.shape(source))
    scale_tensor = _channel_constant(ctx, f"{out_name}/scale", factor, layout)
    ctx.op(OP.MUL, [source, scale_tensor], [scaled], schema.MulOptionsT())
    out = ctx.declare(out_name, layout)
    shift_tensor = _channel_constant(ctx, f"{out_name}/shift", shift, layout)
    ctx.op(OP.ADD, [scaled, shift_tensor], [out], schema.AddOptionsT(fusedActivationFunction=act))
