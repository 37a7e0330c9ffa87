"""The layout Split and Slice cut a value in, chosen by looking at what the parts' readers need.

A cut keeps its input's layout in every part. Moving the input once before the cut (one TRANSPOSE)
can spare one per part after it: q, k and v cut from an attention block's qkv reach BATCH_MATMUL
free only in ONNX order (or with their last two axes swapped, read with adj_x/adj_y). The choice
is between the input's layout, ONNX order and the canonical layout, by the TRANSPOSEs each is
expected to cost along the chains of Transpose, Reshape and one-input elementwise ops below the parts.
"""

from __future__ import annotations

import onnx

from edgecnn.lowering.tflite.context import LoweringContext, attribute
from edgecnn.lowering.tflite.layout import NHWC, canonical_layout, reshaped_layout
from edgecnn.lowering.tflite.ops.einsum import matmul_plan

RESHAPES = ("Reshape", "Squeeze", "Unsqueeze", "Flatten")
NEEDS_NHWC = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "Resize", "DepthToSpace", "SpaceToDepth")
FOLLOWED = (  # ops that work in their input's layout
    *("Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Clip", "Add", "Sub", "Mul", "Div"),
    *("Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Pow", "Erf", "Gelu", "Elu", "Softplus", "Mish", "Floor"),
    *("Ceil", "Round", "Sign", "Sin", "Cos"),
)
DEPTH = 8  # readers followed below each part


def readers_cost(ctx: LoweringContext, name: str, layout: tuple[int, ...], depth: int = DEPTH) -> int:
    """The TRANSPOSEs value ``name``, held in ``layout``, is expected to cost its readers."""
    cost = int(name in ctx.graph_outputs and layout != canonical_layout(len(layout)))
    if depth:
        cost += sum(_reader_cost(ctx, user, name, layout, depth - 1) for user in ctx.consumers.get(name, []))
    return cost


def _reader_cost(ctx: LoweringContext, user: onnx.NodeProto, name: str, layout: tuple[int, ...], depth: int) -> int:
    rank, op = len(layout), user.op_type
    if op == "Transpose":
        perm = [int(p) % rank for p in attribute(user, "perm", list(reversed(range(rank))))]
        return readers_cost(ctx, user.output[0], tuple(perm.index(a) for a in layout), depth)
    if op in RESHAPES:
        out_shape = ctx.shapes.get(user.output[0])
        carried = None if out_shape is None else reshaped_layout(ctx.shape(name), layout, out_shape)
        return 1 if carried is None else readers_cost(ctx, user.output[0], carried, depth)
    if op == "MatMul":
        identity = tuple(range(rank))
        return int(layout not in (identity, (*identity[:-2], identity[-1], identity[-2])))
    if op == "Einsum":
        plan = matmul_plan(str(attribute(user, "equation", "")))
        if plan is None or len(user.input) != 2:
            return 0
        a, b, _, batch, (i, j), k = plan
        term, letters = (a, batch + i + k) if user.input[0] == name else (b, batch + k + j)
        axes = tuple(term.index(c) for c in letters)
        return int(layout not in (axes, (*axes[:-2], axes[-1], axes[-2])))
    if op in NEEDS_NHWC:
        return int(rank == 4 and layout != NHWC)
    others = [n for n in user.input if n and n != name and not ctx.is_constant(n)]
    if op in FOLLOWED and not others and ctx.shapes.get(user.output[0]) == ctx.shape(name):
        return readers_cost(ctx, user.output[0], layout, depth)
    return 0


def cut_layout(ctx: LoweringContext, node: onnx.NodeProto) -> tuple[int, ...]:
    """The layout ``node`` (a Split or Slice of ``node.input[0]``) cuts its input in."""
    x = node.input[0]
    current, rank = ctx.layout(x), ctx.rank(x)
    cutters = sum(user.op_type in ("Split", "Slice") for user in ctx.consumers.get(x, [])) or 1
    candidates: list[tuple[float, int, tuple[int, ...]]] = []
    for order, layout in enumerate(dict.fromkeys([current, tuple(range(rank)), canonical_layout(rank)])):
        move = 0.0 if layout == current else 1 / cutters  # one TRANSPOSE shared by all the cuts of x
        parts = sum(readers_cost(ctx, out, layout, DEPTH) for out in node.output if out)
        candidates.append((move + parts, order, layout))
    return min(candidates)[2]
