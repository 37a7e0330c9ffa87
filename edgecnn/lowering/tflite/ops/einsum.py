"""Einsum of the batched matrix products exporters write for attention → BATCH_MATMUL (no TRANSPOSE when the
operands are already held in the order it reads)."""

from __future__ import annotations

import onnx

from edgecnn.lowering.tflite.context import LoweringContext, attribute
from edgecnn.lowering.tflite.ops.gemm import batch_matmul, matmul_operand
from edgecnn.lowering.tflite.registry import register


def matmul_plan(equation: str) -> tuple[str, str, str, str, str, str] | None:
    """(a, b, out, batch letters, i + j, k) of a batched A[..., i, k] · B[..., k, j], or None."""
    if "..." in equation or "->" not in equation:
        return None
    inputs, out = equation.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != 2:
        return None
    a, b = terms
    if any(len(set(t)) != len(t) for t in (a, b, out)) or not set(out) <= set(a) | set(b):
        return None
    batch = "".join(c for c in out if c in a and c in b)
    rows = [c for c in a if c in out and c not in b]
    cols = [c for c in b if c in out and c not in a]
    summed = [c for c in a if c in b and c not in out]
    if len(rows) != 1 or len(cols) != 1 or len(summed) != 1 or len(out) != len(batch) + 2:
        return None
    if set(a) != set(batch) | {rows[0], summed[0]} or set(b) != set(batch) | {cols[0], summed[0]}:
        return None
    return a, b, out, batch, rows[0] + cols[0], summed[0]


@register("Einsum")
def lower_einsum(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """'bhid,bhjd->bhij', 'bij,bjk->bik', 'bhij,bhjd->bhid' and any other one-contraction batched product."""
    equation = str(attribute(node, "equation", ""))
    plan = matmul_plan(equation)
    if plan is None or len(node.input) != 2:
        raise ctx.reject(node, f"equation '{equation}' is not a batched matrix product (A[..., i, k] · B[..., k, j])")
    a, b, out, batch, (i, j), k = plan
    x, y, out_name = node.input[0], node.input[1], node.output[0]
    for c in batch:
        if ctx.shape(x)[a.index(c)] != ctx.shape(y)[b.index(c)]:
            raise ctx.reject(node, f"equation '{equation}': batch axis '{c}' differs between the inputs")
    left = matmul_operand(ctx, x, [a.index(c) for c in batch + i + k], f"{out_name}/a")
    right = matmul_operand(ctx, y, [b.index(c) for c in batch + k + j], f"{out_name}/b")
    batch_matmul(ctx, left, right, ctx.declare(out_name, layout=[out.index(c) for c in batch + i + j]))
