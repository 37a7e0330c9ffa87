"""Tile → TILE and Expand → BROADCAST_TO, in the input's layout."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext
from edgecnn.lowering.tflite.layout import canonical_layout, permute
from edgecnn.lowering.tflite.ops.dtypes import declare_typed
from edgecnn.lowering.tflite.registry import register


def _constant_input(ctx: LoweringContext, node: onnx.NodeProto, what: str) -> np.ndarray:
    if not ctx.is_constant(node.input[1]):
        raise ctx.reject(node, f"the {what} are not a constant")
    return ctx.constant(node.input[1]).reshape(-1).astype(np.int64)


@register("Tile")
def lower_tile(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """TILE with the constant repeats reordered to the TFLite axes of the input's layout."""
    x, out_name = node.input[0], node.output[0]
    repeats = _constant_input(ctx, node, "repeats")
    if ctx.is_constant(x):
        ctx.initializers[out_name] = np.tile(ctx.constant(x), repeats)
        return
    layout = ctx.layout(x)
    multiples = ctx.const(f"{out_name}/multiples", np.array([repeats[a] for a in layout], np.int32))
    out = declare_typed(ctx, node, out_name, layout=layout)
    ctx.op(OP.TILE, [ctx.tensor(x), multiples], [out], schema.TileOptionsT())


@register("Expand")
def lower_expand(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """BROADCAST_TO the inferred output shape (a lower-rank input first gets leading 1s)."""
    x, out_name = node.input[0], node.output[0]
    _constant_input(ctx, node, "shape")
    out_shape = ctx.shape(out_name)
    if ctx.is_constant(x):
        ctx.initializers[out_name] = np.broadcast_to(ctx.constant(x), out_shape).copy()
        return
    rank = len(out_shape)
    if ctx.shape(x) == out_shape:
        ctx.bind(out_name, ctx.tensor(x), ctx.layout(x))
        return
    if ctx.rank(x) == rank:
        layout, source = ctx.layout(x), ctx.tensor(x)
    else:
        layout, source = canonical_layout(rank), ctx.operand(x, rank)
    shape = ctx.const(f"{out_name}/shape", np.array(permute(out_shape, layout), np.int32))
    out = declare_typed(ctx, node, out_name, layout=layout)
    ctx.op(OP.BROADCAST_TO, [source, shape], [out], schema.BroadcastToOptionsT(), version=2)
