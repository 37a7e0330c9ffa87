"""Gemm and MatMul: FULLY_CONNECTED for constant weights (stored [out, in], as TFLite wants), else BATCH_MATMUL.

The output stays in ONNX order (a 4-D one is moved to NHWC only by a reader that needs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.registry import register


def _fully_connected(ctx: LoweringContext, node: onnx.NodeProto, a: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """FULLY_CONNECTED of value ``a`` (any rank ≥ 2, features last in ONNX order) with ``weight`` [out, in]."""
    rank = ctx.rank(a)
    identity = tuple(range(rank))
    source = ctx.tensor_in(a, identity)
    act, out_name = ctx.fuse_activation(node)
    keep = rank > 2
    out = ctx.declare(out_name, layout=identity)
    name = ctx.builder.name(out)
    inputs = [source, ctx.const(f"{name}/weights", weight), ctx.const(f"{name}/bias", bias)]
    options = schema.FullyConnectedOptionsT(fusedActivationFunction=act, keepNumDims=keep)
    ctx.op(OP.FULLY_CONNECTED, inputs, [out], options, version=5 if keep else 1)  # keep_num_dims needs version 5


@register("Gemm")
def lower_gemm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Y = alpha·A·B' + beta·C with a constant B and a C that broadcasts along the output features."""
    a, b, c = node.input[0], node.input[1], optional_input(node, 2)
    if attribute(node, "transA", 0):
        raise ctx.reject(node, "transA=1 is not lowered")
    if not ctx.is_constant(b):
        raise ctx.reject(node, "B is not a constant (only FULLY_CONNECTED with constant weights is lowered)")
    weight = ctx.constant(b).astype(np.float32)
    weight = weight if attribute(node, "transB", 0) else weight.T  # -> [N, K]
    weight = np.float32(attribute(node, "alpha", 1.0)) * weight
    features = weight.shape[0]
    bias = np.zeros(features, np.float32)
    if c is not None:
        if not ctx.is_constant(c):
            raise ctx.reject(node, "C is not a constant")
        value = ctx.constant(c).astype(np.float32)
        if value.size not in (1, features) or (value.ndim and value.shape[-1] != value.size):
            raise ctx.reject(node, f"C of shape {list(value.shape)} does not broadcast along the {features} outputs")
        bias = bias + np.float32(attribute(node, "beta", 1.0)) * value.reshape(-1)
    _fully_connected(ctx, node, a, weight, bias)


def matmul_operand(ctx: LoweringContext, name: str, axes: Sequence[int], label: str) -> tuple[int, bool]:
    """(tensor, adjoint) of value ``name`` as a BATCH_MATMUL operand whose TFLite axes hold its ONNX ``axes``.

    A value already held with its last two of those axes swapped is used as it
    is, with adj_x / adj_y set (a Transpose of K before Q·Kᵀ costs nothing).
    """
    axes = tuple(axes)
    if ctx.is_constant(name):
        return ctx.const(label, ctx.constant(name).astype(np.float32).transpose(axes)), False
    if ctx.layout(name) == (*axes[:-2], axes[-1], axes[-2]):
        return ctx.tensor(name), True
    return ctx.tensor_in(name, axes), False


def batch_matmul(ctx: LoweringContext, a: tuple[int, bool], b: tuple[int, bool], out: int) -> None:
    """BATCH_MATMUL of two operands from :func:`matmul_operand` into tensor ``out``."""
    options = schema.BatchMatMulOptionsT(adjX=a[1], adjY=b[1], asymmetricQuantizeInputs=False)
    ctx.op(OP.BATCH_MATMUL, [a[0], b[0]], [out], options, version=1)


@register("MatMul")
def lower_matmul(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """A·B: FULLY_CONNECTED for a constant B of one matrix (leading dims 1), else BATCH_MATMUL (broadcasting).

    The output stays in ONNX order ([B, heads, N, N] scores are not moved to NHWC).
    """
    a, b = node.input
    out_name = node.output[0]
    rank_a, rank_b, rank = ctx.rank(a), ctx.rank(b), ctx.rank(out_name)
    if rank_a < 2 or rank_b < 2:
        raise ctx.reject(node, "1-D operands are not lowered")
    if ctx.is_constant(b) and rank_a >= rank_b and all(d == 1 for d in ctx.shape(b)[:-2]):
        weight = ctx.constant(b).astype(np.float32).reshape(ctx.shape(b)[-2:]).T
        _fully_connected(ctx, node, a, weight, np.zeros(weight.shape[0], np.float32))
        return
    operands = []
    for name in (a, b):
        shape = ctx.shape(name)
        label = f"{out_name}/{'ab'[len(operands)]}"
        if len(shape) == rank:
            operands.append(matmul_operand(ctx, name, range(rank), label))
        elif ctx.is_constant(name):
            full = (1,) * (rank - len(shape)) + tuple(shape)
            operands.append((ctx.const(label, ctx.constant(name).reshape(full)), False))
        else:
            full = (1,) * (rank - len(shape)) + tuple(shape)
            source = ctx.tensor_in(name, tuple(range(len(shape))))
            operands.append((ctx.reshape(source, full, label), False))
    batch_matmul(ctx, operands[0], operands[1], ctx.declare(out_name, layout=tuple(range(rank))))
