"""Cast between float32, int32, int64 and bool → CAST."""

from __future__ import annotations

import onnx
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.ops.dtypes import DTYPES, declare_typed, value_dtype
from edgecnn.lowering.tflite.registry import register


@register("Cast")
def lower_cast(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Cast between float32, int32, int64 and bool → CAST (float → int truncates toward zero, as ONNX)."""
    x, out_name = node.input[0], node.output[0]
    to = int(attribute(node, "to"))
    if to not in DTYPES:
        raise ctx.reject(node, f"cast to {helper.tensor_dtype_to_string(to)} is not lowered")
    in_type, out_type = value_dtype(ctx, node, x), DTYPES[to]
    if ctx.is_constant(x):
        ctx.initializers[out_name] = ctx.constant(x).astype(out_type)
        return
    if in_type is out_type:
        ctx.bind(out_name, ctx.tensor(x), ctx.layout(x))
        return
    source = ctx.canonical_tensor(x)
    out = declare_typed(ctx, node, out_name, dtype=out_type)
    types = ctx.builder.tensors
    options = schema.CastOptionsT(inDataType=types[source].type, outDataType=types[out].type)
    ctx.op(OP.CAST, [source], [out], options)
