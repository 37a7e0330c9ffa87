"""LayerNormalization, InstanceNormalization and GroupNormalization as MEAN/SUB/MUL/MEAN/ADD/RSQRT/MUL (+ scale, bias).

Every op of the decomposition has an int8 rule in ai-edge-quantizer (MEAN, SUB, MUL, ADD, RSQRT), so a
normalization quantizes with the rest of the graph. The statistics are taken over the TFLite axes that
hold the normalized ONNX axes, in the layout the input is held in: no TRANSPOSE is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import canonical_layout
from edgecnn.lowering.tflite.registry import register


def standardize(ctx: LoweringContext, source: int, axes: Sequence[int], eps: float, prefix: str, out: int) -> None:
    """``out = (x - mean) · rsqrt(mean((x - mean)²) + eps)`` over TFLite ``axes`` of tensor ``source``."""
    shape = ctx.builder.shape(source)
    reduced = [1 if j in axes else d for j, d in enumerate(shape)]
    axes_tensor = ctx.const(f"{prefix}/axes", np.asarray(sorted(axes), np.int32))
    keep = schema.ReducerOptionsT(keepDims=True)
    mean = ctx.temp(f"{prefix}/mean", reduced)
    ctx.op(OP.MEAN, [source, axes_tensor], [mean], keep)
    centred = ctx.temp(f"{prefix}/centred", shape)
    ctx.op(OP.SUB, [source, mean], [centred], schema.SubOptionsT())
    squared = ctx.temp(f"{prefix}/squared", shape)
    ctx.op(OP.MUL, [centred, centred], [squared], schema.MulOptionsT())
    variance = ctx.temp(f"{prefix}/variance", reduced)
    ctx.op(OP.MEAN, [squared, axes_tensor], [variance], keep)
    shifted = ctx.temp(f"{prefix}/variance_eps", reduced)
    ctx.op(OP.ADD, [variance, ctx.const(f"{prefix}/eps", np.array([eps], np.float32))], [shifted], schema.AddOptionsT())
    inverse = ctx.temp(f"{prefix}/rsqrt", reduced)
    ctx.op(OP.RSQRT, [shifted], [inverse])
    ctx.op(OP.MUL, [centred, inverse], [out], schema.MulOptionsT())


def affine(ctx: LoweringContext, source: int, scale: int | None, bias: int | None, prefix: str, out: int) -> None:
    """``out = source · scale + bias`` (either may be None, not both)."""
    if scale is not None:
        scaled = out if bias is None else ctx.temp(f"{prefix}/scaled", ctx.builder.shape(source))
        ctx.op(OP.MUL, [source, scale], [scaled], schema.MulOptionsT())
        source = scaled
    if bias is not None:
        ctx.op(OP.ADD, [source, bias], [out], schema.AddOptionsT())


def _is_filled(ctx: LoweringContext, name: str | None, value: float) -> bool:
    """Whether ``name`` is absent or a constant with every element equal to ``value`` (a no-op scale or bias)."""
    return name is None or (ctx.is_constant(name) and bool(np.all(ctx.constant(name) == value)))


def _reject_extra_outputs(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    for name in node.output[1:]:
        if name and (ctx.consumers.get(name) or name in ctx.graph_outputs):
            raise ctx.reject(node, "the Mean / InvStdDev outputs are not lowered")


@register("LayerNormalization")
def lower_layer_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Normalize over ONNX axes ``axis``… (last axis of ViT tokens, channels of ConvNeXt); scale and bias broadcast."""
    _reject_extra_outputs(node, ctx)
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    axis = int(attribute(node, "axis", -1)) % rank
    scale_name, bias_name = node.input[1], optional_input(node, 2)
    constant = all(name is None or ctx.is_constant(name) for name in (scale_name, bias_name))
    layout = ctx.layout(x) if constant else canonical_layout(rank)  # a value scale or bias: canonical operands
    source = ctx.tensor_in(x, layout)
    axes = [layout.index(a) for a in range(axis, rank)]
    out = ctx.declare(out_name, layout)
    scale = None if _is_filled(ctx, scale_name, 1.0) else ctx.operand(scale_name, rank, layout)
    bias = None if _is_filled(ctx, bias_name, 0.0) else ctx.operand(bias_name, rank, layout)  # type: ignore[arg-type]
    _normalize(ctx, source, axes, float(attribute(node, "epsilon", 1e-5)), scale, bias, out_name, out)


def _normalize(
    ctx: LoweringContext, source: int, axes: list[int], eps: float, scale: Any, bias: Any, out_name: str, out: int
) -> None:
    """``source`` standardized over ``axes`` into ``out``, then scaled and shifted unless both are no-ops."""
    if scale is None and bias is None:
        standardize(ctx, source, axes, eps, out_name, out)
        return
    normalized = ctx.temp(f"{out_name}/normalized", ctx.builder.shape(source))
    standardize(ctx, source, axes, eps, out_name, normalized)
    affine(ctx, normalized, scale, bias, out_name, out)


def _per_channel(ctx: LoweringContext, prefix: str, values: list[np.ndarray], layout: tuple[int, ...]) -> list:
    """Scale and bias tensors (None when a no-op) of per-channel (ONNX axis 1) values, to broadcast in ``layout``."""
    shape = [1] * len(layout)
    shape[1] = values[0].size
    tensors = []
    for kind, value, neutral in zip(("scale", "bias"), values, (1.0, 0.0), strict=True):
        if np.all(value == neutral):
            tensors.append(None)
        else:
            tensors.append(ctx.const(f"{prefix}/{kind}", value.reshape(shape).transpose(layout)))
    return tensors


def _constants(node: onnx.NodeProto, ctx: LoweringContext) -> list[np.ndarray]:
    names = node.input[1:3]
    if len(names) != 2 or not all(ctx.is_constant(n) for n in names):
        raise ctx.reject(node, "scale and bias must be constants")
    return [ctx.constant(n).astype(np.float32).reshape(-1) for n in names]


@register("InstanceNormalization")
def lower_instance_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Normalize each channel of each sample over the spatial axes; per-channel scale and bias."""
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    if rank < 3:
        raise ctx.reject(node, "the input has no spatial axes")
    channels = ctx.shape(x)[1]
    scale, bias = _constants(node, ctx)
    if scale.size != channels or bias.size != channels:
        raise ctx.reject(node, f"scale and bias need {channels} values")
    source, layout = ctx.tensor(x), ctx.layout(x)
    axes = [layout.index(a) for a in range(2, rank)]
    scale_t, bias_t = _per_channel(ctx, out_name, [scale, bias], layout)
    out = ctx.declare(out_name, layout)
    _normalize(ctx, source, axes, float(attribute(node, "epsilon", 1e-5)), scale_t, bias_t, out_name, out)


def _group_norm(ctx: LoweringContext, node: onnx.NodeProto, x: str, out_name: str, groups: int, params: list) -> None:
    """Normalize value ``x`` per sample and group of channels, then per-channel scale and bias ``params``."""
    channels = ctx.shape(x)[1]
    source, layout = ctx.tensor(x), ctx.layout(x)
    shape = list(ctx.builder.shape(source))
    k = layout.index(1)
    split = [*shape[:k], groups, channels // groups, *shape[k + 1 :]]
    grouped = ctx.reshape(source, split, f"{out_name}/grouped")
    axes = [j for j in range(1, len(split)) if j != k]
    normalized = ctx.temp(f"{out_name}/normalized", split)
    standardize(ctx, grouped, axes, float(attribute(node, "epsilon", 1e-5)), out_name, normalized)
    scale_t, bias_t = _per_channel(ctx, out_name, params, layout)
    out = ctx.declare(out_name, layout)
    if scale_t is None and bias_t is None:
        ctx.reshape(normalized, shape, out=out)
        return
    merged = ctx.reshape(normalized, shape, f"{out_name}/merged")
    affine(ctx, merged, scale_t, bias_t, out_name, out)


@register("GroupNormalization")
def lower_group_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """RESHAPE the channel axis into (groups, channels per group), normalize per group, RESHAPE back, scale, bias.

    Opset 18 has one scale and bias per group, opset 21 one per channel.
    """
    x, out_name = node.input[0], node.output[0]
    rank = ctx.rank(x)
    if rank < 2:
        raise ctx.reject(node, "the input has no channel axis")
    channels = ctx.shape(x)[1]
    groups = int(attribute(node, "num_groups"))
    if groups <= 0 or channels % groups:
        raise ctx.reject(node, f"{channels} channels do not split into {groups} groups")
    scale, bias = _constants(node, ctx)
    per = groups if ctx.opset < 21 else channels
    if scale.size != per or bias.size != per:
        raise ctx.reject(node, f"opset {ctx.opset} wants {per} scale and bias values, not {scale.size}, {bias.size}")
    if per == groups:
        scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
    _group_norm(ctx, node, x, out_name, groups, [scale, bias])


def fuse_group_norm(reshape: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """Lower PyTorch's export of GroupNorm, Reshape [N, G, -1] → InstanceNormalization → Reshape back, as one
    group normalization of the N×C×… input in its own layout (no TRANSPOSE); False when ``reshape`` starts none."""
    x = reshape.input[0]
    if ctx.is_constant(x) or ctx.rank(x) < 3:
        return False
    shape, flat = ctx.shape(x), ctx.shape(reshape.output[0])
    norm = ctx.sole_consumer(reshape.output[0])
    if norm is None or norm.op_type != "InstanceNormalization" or len(flat) != 3 or flat[0] != shape[0]:
        return False
    channels, groups = shape[1], flat[1]
    back = ctx.sole_consumer(norm.output[0])
    if channels % groups or back is None or back.op_type != "Reshape" or ctx.shape(back.output[0]) != shape:
        return False
    names = norm.input[1:3]
    if len(names) != 2 or not all(ctx.is_constant(n) and ctx.constant(n).size == groups for n in names):
        return False
    params = [np.repeat(ctx.constant(n).astype(np.float32).reshape(-1), channels // groups) for n in names]
    ctx.absorb(norm)
    ctx.absorb(back)
    _group_norm(ctx, norm, x, back.output[0], groups, params)
    return True
