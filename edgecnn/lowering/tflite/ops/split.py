"""Split → SPLIT (equal parts) or SPLIT_V on the TFLite axis that holds the ONNX axis."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.ops.cut import cut_layout
from edgecnn.lowering.tflite.ops.dtypes import declare_typed, value_dtype
from edgecnn.lowering.tflite.registry import register


@register("Split")
def lower_split(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Split (``split`` as attribute or input, or opset-18 ``num_outputs``); part sizes come from the inferred shapes.

    The input is cut in the layout :func:`cut_layout` picks for what the parts'
    readers need (a channel split of an NHWC map splits TFLite axis 3; an
    attention block's qkv is moved once before the split, not per part after).
    """
    x = node.input[0]
    rank = ctx.rank(x)
    axis = int(attribute(node, "axis", 0)) % rank
    layout = cut_layout(ctx, node)
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
