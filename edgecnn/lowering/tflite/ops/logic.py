"""Boolean logic (And, Or, Not) → LOGICAL_AND/OR/NOT, and Where → SELECT_V2."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext
from edgecnn.lowering.tflite.ops.dtypes import declare_typed
from edgecnn.lowering.tflite.registry import register

LOGICAL = {
    "And": (OP.LOGICAL_AND, schema.LogicalAndOptionsT),
    "Or": (OP.LOGICAL_OR, schema.LogicalOrOptionsT),
}


@register(*LOGICAL)
def lower_logical(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """And/Or → LOGICAL_AND/LOGICAL_OR (broadcasting)."""
    out_name = node.output[0]
    inputs = ctx.broadcast_operands(node)
    builtin, options = LOGICAL[node.op_type]
    ctx.op(builtin, inputs, [declare_typed(ctx, node, out_name, dtype=np.bool_)], options())


@register("Not")
def lower_not(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Not → LOGICAL_NOT."""
    source = ctx.canonical_tensor(node.input[0])
    ctx.op(OP.LOGICAL_NOT, [source], [declare_typed(ctx, node, node.output[0], dtype=np.bool_)])


@register("Where")
def lower_where(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Where(cond, x, y) → SELECT_V2 (broadcasting; constant operands shaped for the output's layout)."""
    out_name = node.output[0]
    inputs = ctx.broadcast_operands(node)
    ctx.op(OP.SELECT_V2, inputs, [declare_typed(ctx, node, out_name)], schema.SelectV2OptionsT())
