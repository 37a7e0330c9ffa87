"""Expected ImageNet top-1 (float, single crop) from published tables, for the latency planner.

Each family module holds its published tables (plain dicts with their ``source`` title and ``url``)
and declares how they are read: ``declare_family(table=Table(...))``. The tables:

* ``mobilenet.MOBILENET_V1``, ``MOBILENET_V2``: ``top1[α][ρ]``, width multiplier α × input resolution ρ.
  V2 publishes α ∈ {1.3, 1.4} at ρ = 224 only. ``MOBILENET_V3``: ``top1[size][α]`` at 224.
* ``efficientnet.EFFICIENTNET``, ``EFFICIENTNET_LITE``: ``variants[name]`` with the released width, depth
  and resolution coefficients, MACs and top-1 (B0–B7: the paper's Table 2; ``ckpt_top1`` is the later
  AutoAugment checkpoints of the README, kept for reference). ``EFFICIENTNET_MACS`` is the paper's FLOPs column.
* ``resnet.RESNET``, ``densenet.DENSENET``: ``top1[depth]`` at 224.

How they are read (:func:`expected_top1`):

1. An exact published point is "published".
2. MobileNet V1/V2: bilinear in (log α, log ρ) inside the published rectangle, "interpolated". Outside it the
   same formula is continued from the nearest edge cell, i.e. linear in log α and log ρ through the two nearest
   published points per axis, "extrapolated". V2 wider than 1.0: the width gain read along the published
   ρ = 224 row (log-linear over 1.0/1.3/1.4) is added to the α = 1.0 value at ρ; interpolated only at ρ = 224.
3. EfficientNet(-Lite): with ``macs``, piecewise linear in log(MACs) through the variants; otherwise piecewise
   linear in φ through each variant's compute-matched φ (``phi_equivalent``: the φ at which the zoo's
   d·w²·r² = (1.2·1.1²·1.15²)^φ equals the variant's). Without ``phi`` either, φ is read off the resolution
   (ρ = 224·1.15^φ); ``width`` is ignored. Beyond the end variants: linear through the two nearest, "extrapolated".
4. ResNet, DenseNet, MobileNetV3 at ρ ≠ 224: the 224 value plus the MobileNetV2 α = 1.0 resolution change
   top1_V2(1.0, ρ) − top1_V2(1.0, 224), "extrapolated". V2 is the most resolution-sensitive published grid, so
   for these larger networks the penalty is meant to be pessimistic (not validated). ResNet/DenseNet have no
   width multiplier (α ≠ 1 is a ValueError); V3 widths other than 0.75/1.0 follow rule 2 along α.
5. Every extrapolated value is clamped to [0.1, best published top-1 of the table + ``EXTRAPOLATION_MARGIN``].

This module imports no torch; looking a table up by name imports the family modules (and torch).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgecnn.models import registry

EXTRAPOLATION_MARGIN = 0.5  # points above the table's best published top-1 an extrapolation may reach


@dataclass(frozen=True)
class Expectation:
    """Expected float top-1 (%), how it was obtained ("published", "interpolated", "extrapolated"), and from what."""

    top1: float
    method: str
    source: str


@dataclass(frozen=True)
class Reading:
    """What a table is asked for: width α, resolution ρ, compound coefficient φ, a published variant, MACs."""

    width: float = 1.0
    resolution: float = 224
    phi: float | None = None
    variant: str | None = None
    macs: float | None = None  # a plain count (B0 ≈ 0.39e9)


@dataclass(frozen=True)
class Table:
    """A published top-1 table and how its family reads it."""

    name: str  # what expected_top1 takes: mobilenet_v1, efficientnet, resnet …
    data: dict[str, Any]  # source, url, and the figures
    read: Callable[[dict[str, Any], Reading], Expectation]  # before clamping and rounding (rules 1–4)
    points: Callable[[dict[str, Any]], list[dict[str, Any]]]  # every published point, flat

    def published(self) -> list[dict[str, Any]]:
        """Every published point of the table as flat dicts (for charts)."""
        return self.points(self.data)

    def expect(self, **reading: Any) -> Expectation:
        """Expected top-1 for the keywords of :class:`Reading`, extrapolations clamped (rule 5), to 0.001."""
        asked = Reading(**reading)
        if min(asked.width, asked.resolution, asked.macs or 1.0) <= 0:
            raise ValueError(
                f"width, resolution and macs must be positive (got {asked.width}, {asked.resolution}, {asked.macs})"
            )
        found = self.read(self.data, asked)
        value = found.top1
        if found.method == "extrapolated":
            best = max(p["top1"] for p in self.published())
            value = min(max(value, 0.1), best + EXTRAPOLATION_MARGIN)
        return Expectation(round(value, 3), found.method, found.source)


def cite(data: dict[str, Any]) -> str:
    """A table's source and url, as an Expectation names them."""
    return f"{data['source']}, {data['url']}"


def line(xs: list[float], ys: list[float], x: float) -> tuple[float, bool]:
    """Piecewise-linear y(x) over sorted xs; outside, the line through the two nearest points. (y, inside)."""
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    t = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + t * (ys[i + 1] - ys[i]), xs[0] - 1e-9 <= x <= xs[-1] + 1e-9


def _bilinear(top1: dict, alphas: list[float], rhos: list[int], a: float, r: float) -> tuple[float, bool]:
    """Bilinear in (log α, log ρ) over the rectangle alphas × rhos, continued linearly outside. (y, inside)."""
    la, lr = [math.log(v) for v in alphas], [math.log(v) for v in rhos]
    rows = [line(lr, [top1[alpha][rho] for rho in rhos], math.log(r)) for alpha in alphas]
    value, inside_a = line(la, [v for v, _ in rows], math.log(a))
    return value, inside_a and rows[0][1]


def grid_top1(top1: dict, a: float, r: float) -> tuple[float, str]:
    """Top-1 at width α = ``a`` and resolution ρ = ``r`` of an α × ρ table (rules 1 and 2), and how it was read."""
    if (published := top1.get(round(a, 4), {}).get(r)) is not None:
        return published, "published"
    rhos = sorted({rho for row in top1.values() for rho in row})
    core = sorted(alpha for alpha, row in top1.items() if len(row) == len(rhos))
    wide = sorted(alpha for alpha in top1 if alpha not in core)
    if not wide or a <= core[-1]:
        value, inside = _bilinear(top1, core, rhos, a, r)
        return value, "interpolated" if inside else "extrapolated"
    ref = min(set.intersection(*(set(top1[alpha]) for alpha in wide)))  # the row the wide points share (224)
    xs = [core[-1], *wide]
    at_ref, inside = line([math.log(v) for v in xs], [top1[v][ref] for v in xs], math.log(a))
    base, _ = _bilinear(top1, core, rhos, core[-1], r)
    return base + at_ref - top1[core[-1]][ref], "interpolated" if inside and r == ref else "extrapolated"


def read_grid(data: dict[str, Any], reading: Reading) -> Expectation:
    """Read an α × ρ table (MobileNet V1, V2)."""
    return Expectation(*grid_top1(data["top1"], reading.width, reading.resolution), cite(data))


def grid_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The published points of an α × ρ table."""
    return [{"width": a, "resolution": r, "top1": t} for a, row in data["top1"].items() for r, t in row.items()]


def variant_key(label: str, prefix: str, variant: str | None, choices: dict) -> str:
    """The key of ``variant`` among ``choices``, a leading ``prefix`` dropped ('resnet50' → '50')."""
    name = re.sub(rf"^{prefix}[_-]?", "", (variant or "").lower().strip())
    if name not in choices:
        raise ValueError(f"{label}: variant must be one of {sorted(choices)}, got {variant!r}")
    return name


def read_depths(
    label: str, data: dict[str, Any], reading: Reading, at_resolution: Callable[[float, str, float], tuple[float, str]]
) -> Expectation:
    """Read a table of depths published at 224 without a width multiplier (ResNet, DenseNet); ``at_resolution``
    moves a 224 figure to another ρ (rule 4)."""
    top1 = data["top1"][variant_key(label, label, reading.variant, data["top1"])]
    if not math.isclose(reading.width, 1.0):
        raise ValueError(f"{label} has no width multiplier (width must be 1.0, got {reading.width})")
    return Expectation(*at_resolution(top1, "published", reading.resolution), cite(data))


def depth_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The published points of a table of depths at 224."""
    return [{"variant": k, "resolution": 224, "top1": t} for k, t in data["top1"].items()]


def table(name: str) -> Table:
    """The published table ``name`` (mobilenet_v1, efficientnet …; model aliases allowed)."""
    tables = registry.accuracy_tables()
    key = registry.unalias(name)
    if key not in tables:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(sorted(tables))}")
    return tables[key]


def expected_top1(name: str, **reading: Any) -> Expectation:
    """Expected float ImageNet top-1 (%) from table ``name`` for ``width``, ``resolution``, ``phi``, ``variant``
    or ``macs`` (see :class:`Reading`). Rules: module docstring."""
    return table(name).expect(**reading)


def published_points(name: str) -> list[dict[str, Any]]:
    """Every published point of table ``name`` as flat dicts (for charts)."""
    return table(name).published()
