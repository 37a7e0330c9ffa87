"""Gelu (and the exporters' Erf pattern of it) → GELU, Erf, PRelu, Elu, Softplus, Mish, Pow and the unary math ops
(Sqrt, Exp, Log, …)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.layout import canonical_layout
from edgecnn.lowering.tflite.registry import register

MATH = {"Sqrt": OP.SQRT, "Exp": OP.EXP, "Log": OP.LOG, "Abs": OP.ABS, "Neg": OP.NEG, "Sign": OP.SIGN}
MATH |= {"Ceil": OP.CEIL, "Round": OP.ROUND, "Sin": OP.SIN, "Cos": OP.COS}
SQRT2 = math.sqrt(2.0)
# Abramowitz & Stegun 7.1.26: erf(x) = 1 - t·(a1 + t·(a2 + … + t·a5))·exp(-x²), t = 1 / (1 + p·x) for x ≥ 0
# (absolute error ≤ 1.5e-7); odd, so erf(x) = sign(x)·erf(|x|).
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _near(value: float | None, target: float) -> bool:
    return value is not None and math.isclose(value, target, rel_tol=1e-4)


def _other(node: onnx.NodeProto, name: str) -> str | None:
    """The other input of a binary ``node`` that reads ``name`` once, or None."""
    if len(node.input) != 2 or list(node.input).count(name) != 1:
        return None
    return node.input[1] if node.input[0] == name else node.input[0]


def _gelu_chain(first: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, list[onnx.NodeProto]] | None:
    """(x, the four later nodes) when ``first`` starts ``0.5·x·(1 + erf(x/√2))`` as exporters write it, else None.

    ``first`` is Div(x, √2) or Mul(x, 1/√2); then Erf, Add 1, and two Muls by x and by 0.5 in either
    order, each the only reader of the value before it.
    """
    if first.op_type not in ("Div", "Mul") or len(first.input) != 2:
        return None
    x = next((name for name in first.input if not ctx.is_constant(name)), None)
    if x is None or (first.op_type == "Div" and first.input[0] != x):
        return None
    factor = ctx.scalar(_other(first, x) or "")
    if not (_near(factor, SQRT2) if first.op_type == "Div" else _near(factor, 1 / SQRT2)):
        return None
    erf = ctx.sole_consumer(first.output[0])
    if erf is None or erf.op_type != "Erf":
        return None
    add = ctx.sole_consumer(erf.output[0])
    if add is None or add.op_type != "Add" or not _near(ctx.scalar(_other(add, erf.output[0]) or ""), 1.0):
        return None
    chain, value, wanted = [erf, add], add.output[0], {"x", "half"}
    for _ in range(2):
        mul = ctx.sole_consumer(value)
        other = _other(mul, value) if mul is not None and mul.op_type == "Mul" else None
        if other is None:
            return None
        kind = "x" if other == x else "half" if _near(ctx.scalar(other), 0.5) else None
        if kind not in wanted:
            return None
        wanted.discard(kind)
        chain.append(mul)
        value = mul.output[0]
    return x, chain


def fuse_gelu(first: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """Lower the Erf form of GELU that starts at ``first`` as one GELU (exact) and absorb its nodes; False if none."""
    found = _gelu_chain(first, ctx)
    if found is None:
        return False
    x, chain = found
    for node in chain:
        ctx.absorb(node)
    out = ctx.declare(chain[-1].output[0], ctx.layout(x))
    ctx.op(OP.GELU, [ctx.tensor(x)], [out], schema.GeluOptionsT(approximate=False))
    return True


@register("Gelu")
def lower_gelu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Gelu (opset 20) → GELU; approximate='tanh' → GELU(approximate=True)."""
    approximate = attribute(node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.reject(node, f"approximate='{approximate}'")
    options = schema.GeluOptionsT(approximate=approximate == "tanh")
    x = node.input[0]
    ctx.op(OP.GELU, [ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))], options)


class _Ops:
    """Append float ops of one shape, each into a new intermediate tensor named after ``prefix``."""

    def __init__(self, ctx: LoweringContext, prefix: str, shape: tuple[int, ...]) -> None:
        self.ctx, self.prefix, self.shape, self.count = ctx, prefix, shape, 0

    def scalar(self, value: float) -> int:
        self.count += 1
        return self.ctx.const(f"{self.prefix}/c{self.count}", np.array([value], np.float32))

    def __call__(self, builtin: int, inputs: list[int], options: object = None, out: int | None = None) -> int:
        self.count += 1
        out = self.ctx.temp(f"{self.prefix}/t{self.count}", self.shape) if out is None else out
        self.ctx.op(builtin, inputs, [out], options)
        return out


@register("Erf")
def lower_erf(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """TFLite has no ERF: Abramowitz & Stegun 7.1.26 in ABS, ADD, DIV, MUL, EXP, SUB, SIGN (error ≤ 2e-7)."""
    layout = ctx.layout(node.input[0])
    x = ctx.tensor(node.input[0])
    ops = _Ops(ctx, node.output[0], ctx.builder.shape(x))
    mul, add = (OP.MUL, schema.MulOptionsT()), (OP.ADD, schema.AddOptionsT())
    magnitude = ops(OP.ABS, [x])
    t = ops(
        OP.DIV, [ops.scalar(1 / ERF_P), ops(add[0], [magnitude, ops.scalar(1 / ERF_P)], add[1])], schema.DivOptionsT()
    )
    poly = ops(mul[0], [t, ops.scalar(ERF_A[-1])], mul[1])
    for coefficient in reversed(ERF_A[:-1]):
        poly = ops(mul[0], [ops(add[0], [poly, ops.scalar(coefficient)], add[1]), t], mul[1])
    gauss = ops(OP.EXP, [ops(mul[0], [x, ops(OP.NEG, [x])], mul[1])])
    tail = ops(OP.SUB, [ops.scalar(1.0), ops(mul[0], [poly, gauss], mul[1])], schema.SubOptionsT())
    ops(mul[0], [ops(OP.SIGN, [x]), tail], mul[1], out=ctx.declare(node.output[0], layout))


@register("Elu")
def lower_elu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Elu with alpha 1 → ELU (TFLite's has no alpha)."""
    if float(attribute(node, "alpha", 1.0)) != 1.0:
        raise ctx.reject(node, "TFLite's ELU has alpha 1 only")
    x = node.input[0]
    ctx.op(OP.ELU, [ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))])


@register("Softplus", "Mish")
def lower_softplus(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Softplus = max(x, 0) + log(1 + exp(-|x|)) (no overflow); Mish = x · tanh(log(1 + exp(x))), where an exp
    that overflows to inf still gives tanh 1."""
    x = node.input[0]
    source, layout = ctx.tensor(x), ctx.layout(x)
    ops = _Ops(ctx, node.output[0], ctx.builder.shape(source))
    out = ctx.declare(node.output[0], layout)
    add, mul = schema.AddOptionsT(), schema.MulOptionsT()
    if node.op_type == "Mish":
        softplus = ops(OP.LOG, [ops(OP.ADD, [ops(OP.EXP, [source]), ops.scalar(1.0)], add)])
        ops(OP.MUL, [source, ops(OP.TANH, [softplus])], mul, out=out)
        return
    tail = ops(OP.LOG, [ops(OP.ADD, [ops(OP.EXP, [ops(OP.NEG, [ops(OP.ABS, [source])])]), ops.scalar(1.0)], add)])
    ops(OP.ADD, [ops(OP.RELU, [source]), tail], add, out=out)


@register(*MATH)
def lower_math(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Sqrt, Exp, Log, Abs, Neg, Sign, Ceil, Round (half to even in both), Sin, Cos → the TFLite op of that name,
    in the input's layout."""
    x = node.input[0]
    ctx.op(MATH[node.op_type], [ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))])


@register("Reciprocal")
def lower_reciprocal(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Reciprocal → DIV of a constant 1 (TFLite has no RECIPROCAL)."""
    x = node.input[0]
    one = ctx.const(f"{node.output[0]}/one", np.array([1.0], np.float32))
    ctx.op(OP.DIV, [one, ctx.tensor(x)], [ctx.declare(node.output[0], ctx.layout(x))], schema.DivOptionsT())


@register("Pow")
def lower_pow(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Pow by a constant 1 (nothing), 2 / 3 (MUL), 0.5 (SQRT), -0.5 (RSQRT), -1 (DIV); any other exponent → POW."""
    x, exponent_name = node.input
    out_name = node.output[0]
    exponent = None if ctx.is_constant(x) else ctx.scalar(exponent_name)
    if exponent is None:
        layout = ctx.broadcast_layout(node)
        ctx.op(OP.POW, ctx.broadcast_operands(node, layout), [ctx.declare(out_name, layout)])
        return
    if ctx.shape(out_name) != ctx.shape(x):
        raise ctx.reject(node, "the exponent broadcasts the base to another shape")
    source, layout = ctx.tensor(x), ctx.layout(x)
    declare = ctx.declare
    if exponent == 1.0:
        ctx.bind(out_name, source, layout)
    elif exponent in (2.0, 3.0):
        square = declare(out_name, layout) if exponent == 2.0 else ctx.temp(f"{out_name}/sq", ctx.builder.shape(source))
        ctx.op(OP.MUL, [source, source], [square], schema.MulOptionsT())
        if exponent == 3.0:
            ctx.op(OP.MUL, [square, source], [declare(out_name, layout)], schema.MulOptionsT())
    elif exponent in (0.5, -0.5):
        ctx.op(OP.SQRT if exponent == 0.5 else OP.RSQRT, [source], [declare(out_name, layout)])
    elif exponent == -1.0:
        one = ctx.const(f"{out_name}/one", np.array([1.0], np.float32))
        ctx.op(OP.DIV, [one, source], [declare(out_name, layout)], schema.DivOptionsT())
    else:
        value = ctx.const(f"{out_name}/exponent", np.array([exponent], np.float32))
        ctx.op(OP.POW, [source, value], [declare(out_name, layout)])


@register("PRelu")
def lower_prelu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """PRelu → PRELU with the slope laid out to broadcast like ONNX's (per channel: [1,1,1,C] in NHWC);
    one slope for all → LEAKY_RELU."""
    x, slope = node.input
    out_name = node.output[0]
    rank = ctx.rank(x)
    if ctx.shape(out_name) != ctx.shape(x):
        raise ctx.reject(node, "the slope broadcasts the input to another shape")
    alpha = ctx.scalar(slope)
    if alpha is not None:
        options = schema.LeakyReluOptionsT(alpha=alpha)
        ctx.op(OP.LEAKY_RELU, [ctx.tensor(x)], [ctx.declare(out_name, ctx.layout(x))], options)
        return
    layout = ctx.layout(x) if ctx.is_constant(slope) else canonical_layout(rank)
    source = ctx.tensor_in(x, layout)
    ctx.op(OP.PRELU, [source, ctx.operand(slope, rank, layout)], [ctx.declare(out_name, layout)])
