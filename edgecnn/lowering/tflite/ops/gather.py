"""Gather, Slice and the integer/bool ops around them (Cast, Floor, comparisons, logic, Where).

These are the ops the ``DeformConv`` rewrite (``edgecnn.lowering.onnx.deform_gather``)
produces besides the arithmetic. Unlike the other lowerings they also carry
int32/int64/bool values: such a value is declared with its ONNX element type
(``LoweringContext.declare`` takes float32 only), in the canonical layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import canonical_layout, permute
from edgecnn.lowering.tflite.registry import register

COMPARISONS = {
    "GreaterOrEqual": OP.GREATER_EQUAL,
    "LessOrEqual": OP.LESS_EQUAL,
    "Greater": OP.GREATER,
    "Less": OP.LESS,
    "Equal": OP.EQUAL,
}
LOGICAL = {
    "And": (OP.LOGICAL_AND, schema.LogicalAndOptionsT),
    "Or": (OP.LOGICAL_OR, schema.LogicalOrOptionsT),
}
# The ONNX element types a TFLite tensor can hold here (float16/uint8/int8 have no use in these ops).
DTYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.BOOL: np.bool_,
}


def _dtype(ctx: LoweringContext, node: onnx.NodeProto, name: str) -> type:
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
    dtype = dtype or _dtype(ctx, node, name)
    if dtype is np.float32:
        return ctx.declare(name, layout)
    layout = tuple(layout) if layout is not None else canonical_layout(ctx.rank(name))
    index = ctx.builder.add_tensor(name, permute(ctx.shape(name), layout), dtype)
    ctx.bind(name, index, layout)
    return index


def _canonical(ctx: LoweringContext, name: str) -> int:
    return ctx.tensor_in(name, canonical_layout(ctx.rank(name)))


@register("Floor")
def lower_floor(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Floor → FLOOR."""
    source = _canonical(ctx, node.input[0])
    ctx.op(OP.FLOOR, [source], [ctx.declare(node.output[0])])


@register("Cast")
def lower_cast(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Cast between float32, int32, int64 and bool → CAST (float → int truncates toward zero, as ONNX)."""
    x, out_name = node.input[0], node.output[0]
    to = int(attribute(node, "to"))
    if to not in DTYPES:
        raise ctx.reject(node, f"cast to {helper.tensor_dtype_to_string(to)} is not lowered")
    in_type, out_type = _dtype(ctx, node, x), DTYPES[to]
    if ctx.is_constant(x):
        ctx.initializers[out_name] = ctx.constant(x).astype(out_type)
        return
    if in_type is out_type:
        ctx.bind(out_name, ctx.tensor(x), ctx.layout(x))
        return
    source = _canonical(ctx, x)
    out = declare_typed(ctx, node, out_name, dtype=out_type)
    types = ctx.builder.tensors
    options = schema.CastOptionsT(inDataType=types[source].type, outDataType=types[out].type)
    ctx.op(OP.CAST, [source], [out], options)


def _operands(ctx: LoweringContext, node: onnx.NodeProto, names: Sequence[str], rank: int) -> list[int]:
    if all(ctx.is_constant(name) for name in names):
        raise ctx.reject(node, "all inputs are constants (simplify the model first)")
    return [ctx.operand(name, rank) for name in names]


@register(*COMPARISONS)
def lower_comparison(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """GreaterOrEqual/LessOrEqual/Greater/Less/Equal → the TFLite comparison (bool output, broadcasting)."""
    out_name = node.output[0]
    inputs = _operands(ctx, node, node.input, ctx.rank(out_name))
    ctx.op(COMPARISONS[node.op_type], inputs, [declare_typed(ctx, node, out_name, dtype=np.bool_)])


@register(*LOGICAL)
def lower_logical(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """And/Or → LOGICAL_AND/LOGICAL_OR (broadcasting)."""
    out_name = node.output[0]
    inputs = _operands(ctx, node, node.input, ctx.rank(out_name))
    builtin, options = LOGICAL[node.op_type]
    ctx.op(builtin, inputs, [declare_typed(ctx, node, out_name, dtype=np.bool_)], options())


@register("Not")
def lower_not(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Not → LOGICAL_NOT."""
    source = _canonical(ctx, node.input[0])
    ctx.op(OP.LOGICAL_NOT, [source], [declare_typed(ctx, node, node.output[0], dtype=np.bool_)])


@register("Where")
def lower_where(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Where(cond, x, y) → SELECT_V2 (broadcasting; constant operands shaped for the output's layout)."""
    out_name = node.output[0]
    inputs = _operands(ctx, node, node.input, ctx.rank(out_name))
    ctx.op(OP.SELECT_V2, inputs, [declare_typed(ctx, node, out_name)], schema.SelectV2OptionsT())


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
        if _dtype(ctx, node, indices) not in (np.int32, np.int64):
            raise ctx.reject(node, "the indices must be int32 or int64")
        index_tensor = ctx.tensor_in(indices, tuple(range(ctx.rank(indices))))
    if ctx.is_constant(data):
        source = ctx.const(f"{out_name}/data", ctx.constant(data))
    else:
        source = ctx.tensor_in(data, tuple(range(rank)))
    out = declare_typed(ctx, node, out_name, layout=tuple(range(ctx.rank(out_name))), dtype=_dtype(ctx, node, data))
    ctx.op(OP.GATHER, [source, index_tensor], [out], schema.GatherOptionsT(axis=axis, batchDims=0))
    ctx.canonicalize(out_name)


def _slice_params(node: onnx.NodeProto, ctx: LoweringContext, shape: Sequence[int]) -> list[tuple[int, int, int]]:
    """(start, end, step) per ONNX axis, clamped as ONNX does; end -1 with a negative step means 'past the start'."""
    rank = len(shape)
    if ctx.opset < 10:
        starts, ends = attribute(node, "starts"), attribute(node, "ends")
        axes = attribute(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        names = [optional_input(node, i) for i in (1, 2, 3, 4)]
        if any(name is not None and not ctx.is_constant(name) for name in names):
            raise ctx.reject(node, "starts, ends, axes and steps must be constants")
        starts, ends = (ctx.constant(n).reshape(-1).tolist() for n in names[:2])
        axes = ctx.constant(names[2]).reshape(-1).tolist() if names[2] else list(range(len(starts)))
        steps = ctx.constant(names[3]).reshape(-1).tolist() if names[3] else [1] * len(starts)
    params = [(0, int(d), 1) for d in shape]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis, step = int(axis) % rank, int(step)
        if step == 0:
            raise ctx.reject(node, "a step of 0")
        dim = int(shape[axis])
        start, end = int(start), int(end)
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        params[axis] = (start, end, step)
    return params


@register("Slice")
def lower_slice(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Slice with constant starts/ends/axes/steps → STRIDED_SLICE on the TFLite axes that hold the ONNX axes."""
    x, out_name = node.input[0], node.output[0]
    params = _slice_params(node, ctx, ctx.shape(x))
    layout = ctx.layout(x)
    begin, end, strides, end_mask = [], [], [], 0
    for j, axis in enumerate(layout):
        start, stop, step = params[axis]
        if stop < 0:  # a negative step running past index 0: TFLite reads -1 as the last element
            end_mask |= 1 << j
            stop = 0
        begin.append(start)
        end.append(stop)
        strides.append(step)
    source = ctx.tensor(x)
    out = declare_typed(ctx, node, out_name, layout=layout)
    tensors = [ctx.const(f"{out_name}/{k}", np.array(v, np.int32)) for k, v in (("begin", begin), ("end", end))]
    tensors.append(ctx.const(f"{out_name}/strides", np.array(strides, np.int32)))
    options = schema.StridedSliceOptionsT(beginMask=0, endMask=end_mask, offset=False)
    ctx.op(OP.STRIDED_SLICE, [source, *tensors], [out], options)
    ctx.canonicalize(out_name)
