"""Comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual) → the TFLite comparison, a bool output."""

from __future__ import annotations

import numpy as np
import onnx

from edgecnn.lowering.tflite.context import OP, LoweringContext
from edgecnn.lowering.tflite.ops.dtypes import declare_typed
from edgecnn.lowering.tflite.registry import register

COMPARISONS = {
    "GreaterOrEqual": OP.GREATER_EQUAL,
    "LessOrEqual": OP.LESS_EQUAL,
    "Greater": OP.GREATER,
    "Less": OP.LESS,
    "Equal": OP.EQUAL,
}


@register(*COMPARISONS)
def lower_comparison(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """GreaterOrEqual/LessOrEqual/Greater/Less/Equal → the TFLite comparison (bool output, broadcasting)."""
    out_name = node.output[0]
    inputs = ctx.broadcast_operands(node)
    ctx.op(COMPARISONS[node.op_type], inputs, [declare_typed(ctx, node, out_name, dtype=np.bool_)])
