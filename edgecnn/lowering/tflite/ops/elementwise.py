"""Binary arithmetic with broadcasting, activations, Floor, Softmax and inference BatchNormalization."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.layout import canonical_layout
from edgecnn.lowering.tflite.registry import register

BINARY = {
    "Add": (OP.ADD, schema.AddOptionsT),
    "Sub": (OP.SUB, schema.SubOptionsT),
    "Mul": (OP.MUL, schema.MulOptionsT),
    "Div": (OP.DIV, schema.DivOptionsT),
}
UNARY = {"Relu": OP.RELU, "Sigmoid": OP.LOGISTIC, "Tanh": OP.TANH, "HardSwish": OP.HARD_SWISH, "Floor": OP.FLOOR}
CLIPS = {(0.0, 6.0): OP.RELU6, (0.0, None): OP.RELU, (-1.0, 1.0): OP.RELU_N1_TO_1, (0.0, 1.0): OP.RELU_0_TO_1}


def _channel_constant(ctx: LoweringContext, name: str, values: np.ndarray, rank: int) -> int:
    """A per-channel constant (ONNX axis 1) shaped to broadcast against a value of ``rank`` in its layout."""
    shape = [1] * rank
    shape[1] = values.size
    return ctx.const(name, values.reshape(shape).transpose(canonical_layout(rank)))


@register(*BINARY)
def lower_binary(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Add/Sub/Mul/Div; constants (e.g. NCHW [1,C,1,1]) are laid out to broadcast in NHWC ([1,1,1,C])."""
    layout = ctx.broadcast_layout(node)
    inputs = ctx.broadcast_operands(node, layout)
    act, out_name = ctx.fuse_activation(node)
    builtin, options = BINARY[node.op_type]
    ctx.op(builtin, inputs, [ctx.declare(out_name, layout)], options(fusedActivationFunction=act))


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
    source = ctx.canonical_tensor(x)
    if bounds in CLIPS:
        ctx.op(CLIPS[bounds], [source], [ctx.declare(out_name)])
        return
    low, high = bounds
    if low is None and high is None:
        ctx.bind(out_name, source, ctx.layout(x))
        return
    steps = [(OP.MAXIMUM, low), (OP.MINIMUM, high)]
    steps = [(builtin, value) for builtin, value in steps if value is not None]
    for i, (builtin, value) in enumerate(steps):
        last = i == len(steps) - 1
        out = ctx.declare(out_name) if last else ctx.temp(f"{out_name}/max", ctx.builder.shape(source))
        bound = ctx.const(f"{out_name}/bound{i}", np.array([value], np.float32))
        ctx.op(builtin, [source, bound], [out], schema.MaximumMinimumOptionsT())
        source = out


@register("HardSigmoid")
def lower_hard_sigmoid(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """max(0, min(1, alpha·x + beta)) as MUL, ADD and RELU_0_TO_1, in ONNX Runtime's order of operations."""
    alpha = float(attribute(node, "alpha", 0.2))
    beta = float(attribute(node, "beta", 0.5))
    x, out_name = node.input[0], node.output[0]
    source = ctx.canonical_tensor(x)
    shape = ctx.builder.shape(source)
    scaled = ctx.temp(f"{out_name}/scaled", shape)
    alpha_tensor = ctx.const(f"{out_name}/alpha", np.array([alpha], np.float32))
    ctx.op(OP.MUL, [source, alpha_tensor], [scaled], schema.MulOptionsT())
    shifted = ctx.temp(f"{out_name}/shifted", shape)
    beta_tensor = ctx.const(f"{out_name}/beta", np.array([beta], np.float32))
    ctx.op(OP.ADD, [scaled, beta_tensor], [shifted], schema.AddOptionsT())
    ctx.op(OP.RELU_0_TO_1, [shifted], [ctx.declare(out_name)])


@register("Softmax")
def lower_softmax(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """SOFTMAX over the TFLite axis that holds the ONNX axis; TRANSPOSEs around it when that axis is not last."""
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    axis = int(attribute(node, "axis", -1 if ctx.opset >= 13 else 1)) % rank
    if ctx.opset < 13 and axis != rank - 1:
        raise ctx.reject(node, f"opset {ctx.opset} Softmax flattens from axis {axis}; only the last axis is lowered")
    source = ctx.tensor(x)
    layout = ctx.layout(x)
    tfl_axis = layout.index(axis)
    options = schema.SoftmaxOptionsT(beta=1.0)
    if tfl_axis == rank - 1:
        ctx.op(OP.SOFTMAX, [source], [ctx.declare(out_name, layout)], options)
    else:
        perm = [a for a in range(rank) if a != tfl_axis] + [tfl_axis]
        moved = ctx.transpose(source, perm, f"{out_name}/axis_last")
        ctx.op(OP.SOFTMAX, [moved], [ctx.declare(out_name, [layout[p] for p in perm])], options)
    ctx.canonicalize(out_name)


@register("BatchNormalization")
def lower_batch_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Inference BatchNormalization → MUL and ADD by per-channel constants (a following Relu is fused)."""
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
    rank = ctx.rank(x)
    source = ctx.canonical_tensor(x)
    act, out_name = ctx.fuse_activation(node)
    scaled = ctx.temp(f"{out_name}/scaled", ctx.builder.shape(source))
    ctx.op(OP.MUL, [source, _channel_constant(ctx, f"{out_name}/scale", factor, rank)], [scaled], schema.MulOptionsT())
    out = ctx.declare(out_name)
    shift_tensor = _channel_constant(ctx, f"{out_name}/shift", shift, rank)
    ctx.op(OP.ADD, [scaled, shift_tensor], [out], schema.AddOptionsT(fusedActivationFunction=act))
