"""The element types of the non-float values (int32, int64, bool) that the deformable "gather" decomposition uses.

These values come from the ops the ``DeformConv`` rewrite (``edgecnn.lowering.onnx.deform_gather``)
produces besides the arithmetic: Cast, comparisons, logic, Where, Gather, Slice. Such a value is
declared with its ONNX element type (``LoweringContext.declare`` takes float32 only), in the
canonical layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from edgecnn.lowering.tflite.context import LoweringContext
from edgecnn.lowering.tflite.layout import canonical_layout, permute

# The ONNX element types a TFLite tensor can hold here (float16/uint8/int8 have no use in these ops).
DTYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.BOOL: np.bool_,
}


def value_dtype(ctx: LoweringContext, node: onnx.NodeProto, name: str) -> type:
    """The numpy type of ONNX value ``name``'s TFLite tensor, or a rejection of ``node``."""
    if ctx.is_constant(name):
        kind = helper.np_dtype_to_tensor_dtype(ctx.constant(name).dtype)
    else:
        kind = ctx.elem_types.get(name, onnx.TensorProto.FLOAT)
    if kind == onnx.TensorProto.DOUBLE:
        kind = onnx.TensorProto.FLOAT  # constants only: ctx.const stores floats as float32
    if kind not in DTYPES:
        raise ctx.reject(node, f"'{name}' has element type {helper.tensor_dtype_to_string(kind)}")
    return DTYPES[kind]


def declare_typed(
    ctx: LoweringContext,
    node: onnx.NodeProto,
    name: str,
    layout: Sequence[int] | None = None,
    dtype: type | None = None,
) -> int:
    """Create the TFLite tensor of ONNX value ``name`` with its own element type (or ``dtype``)."""
    dtype = dtype or value_dtype(ctx, node, name)
    if dtype is np.float32:
        return ctx.declare(name, layout)
    layout = tuple(layout) if layout is not None else canonical_layout(ctx.rank(name))
    index = ctx.builder.add_tensor(name, permute(ctx.shape(name), layout), dtype)
    ctx.bind(name, index, layout)
    return index
