"""Gather → GATHER and GatherND → GATHER_ND (data of any element type, int32/int64 indices)."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.ops.dtypes import declare_typed, value_dtype
from edgecnn.lowering.tflite.registry import register


@register("Gather")
def lower_gather(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Gather → GATHER on the input in ONNX axis order (indices int32/int64; constant ones may be negative)."""
    data, indices, out_name = node.input[0], node.input[1], node.output[0]
    rank = ctx.rank(data)
    axis = int(attribute(node, "axis", 0)) % rank
    if ctx.is_constant(indices):
        values = ctx.constant(indices).astype(np.int64)
        values = np.where(values < 0, values + ctx.shape(data)[axis], values)
        dtype = np.int32 if values.size == 0 or values.max() < 2**31 else np.int64
        index_tensor = ctx.const(f"{out_name}/indices", values.astype(dtype))
    else:
        if value_dtype(ctx, node, indices) not in (np.int32, np.int64):
            raise ctx.reject(node, "the indices must be int32 or int64")
        index_tensor = ctx.tensor_in(indices, tuple(range(ctx.rank(indices))))
    source, out = _data_and_out(node, ctx, data, rank, out_name)
    ctx.op(OP.GATHER, [source, index_tensor], [out], schema.GatherOptionsT(axis=axis, batchDims=0))
    ctx.canonicalize(out_name)


def _data_and_out(node: onnx.NodeProto, ctx: LoweringContext, data: str, rank: int, out_name: str) -> tuple[int, int]:
    """The data of a gather in ONNX axis order (a constant as a buffer) and its output, of the data's type."""
    if ctx.is_constant(data):
        source = ctx.const(f"{out_name}/data", ctx.constant(data))
    else:
        source = ctx.tensor_in(data, tuple(range(rank)))
    dtype = value_dtype(ctx, node, data)
    return source, declare_typed(ctx, node, out_name, layout=tuple(range(ctx.rank(out_name))), dtype=dtype)


@register("GatherND")
def lower_gather_nd(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """GatherND with batch_dims=0 → GATHER_ND on the data in ONNX axis order (the dynamo exporter writes
    ``nearest-exact`` interpolation as one, with constant indices)."""
    data, indices, out_name = node.input[0], node.input[1], node.output[0]
    if int(attribute(node, "batch_dims", 0)):
        raise ctx.reject(node, "batch_dims > 0 is not lowered")
    if ctx.is_constant(indices):
        values = ctx.constant(indices).astype(np.int64)
        dims = np.asarray(ctx.shape(data)[: values.shape[-1]], np.int64)
        index_tensor = ctx.const(f"{out_name}/indices", np.where(values < 0, values + dims, values).astype(np.int32))
    else:
        if value_dtype(ctx, node, indices) not in (np.int32, np.int64):
            raise ctx.reject(node, "the indices must be int32 or int64")
        index_tensor = ctx.tensor_in(indices, tuple(range(ctx.rank(indices))))
    rank = ctx.rank(data)
    source, out = _data_and_out(node, ctx, data, rank, out_name)
    ctx.op(OP.GATHER_ND, [source, index_tensor], [out], schema.GatherNdOptionsT())
