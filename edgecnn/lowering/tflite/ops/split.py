"""Split → SPLIT (equal parts) or SPLIT_V on the TFLite axis that holds the ONNX axis, in the canonical layout."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.layout import canonical_layout
from edgecnn.lowering.tflite.ops.dtypes import declare_typed, value_dtype
from edgecnn.lowering.tflite.registry import register


@register("Split")
def lower_split(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Split (``split`` as attribute or input, or opset-18 ``num_outputs``); part sizes come from the inferred shapes.

    The parts are held in the input's canonical layout (a channel split of an
    NHWC value splits TFLite axis 3). An input held elsewhere is moved there
    first: one TRANSPOSE before the split instead of one per part after it (an
    attention block's [3, B, heads, N, d] qkv before q, k and v).
    """
    x = node.input[0]
    rank = ctx.rank(x)
    axis = int(attribute(node, "axis", 0)) % rank
    layout = canonical_layout(rank)
    sizes = [ctx.shape(name)[axis] for name in node.output if name]
    if len(sizes) != len(node.output):
        raise ctx.reject(node, "an output without a name")
    if sum(sizes) != ctx.shape(x)[axis]:
        raise ctx.reject(node, f"parts {sizes} do not add up to the {ctx.shape(x)[axis]} elements of axis {axis}")
    dtype = value_dtype(ctx, node, x)
    parts = [declare_typed(ctx, node, name, layout=layout, dtype=dtype) for name in node.output]
    source, tfl_axis = ctx.tensor_in(x, layout), layout.index(axis)
    axis_tensor = ctx.const(f"{node.output[0]}/split_axis", np.array(tfl_axis, np.int32))
    if len(set(sizes)) == 1:
        ctx.op(OP.SPLIT, [axis_tensor, source], parts, schema.SplitOptionsT(numSplits=len(parts)))
    else:
        size_tensor = ctx.const(f"{node.output[0]}/split_sizes", np.array(sizes, np.int32))
        ctx.op(OP.SPLIT_V, [source, size_tensor, axis_tensor], parts, schema.SplitVOptionsT(numSplits=len(parts)))
