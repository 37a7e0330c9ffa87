"""Published ImageNet top-1 (float, single crop) accuracies the latency planner ranks candidates by.

Tables (plain dicts, each with its ``source`` title and ``url``):

* ``MOBILENET_V1``, ``MOBILENET_V2``: ``top1[α][ρ]``, width multiplier α × input resolution ρ.
  V2 publishes α ∈ {1.3, 1.4} at ρ = 224 only.
* ``EFFICIENTNET``, ``EFFICIENTNET_LITE``: ``variants[name]`` with the released width, depth and
  resolution coefficients, MACs and top-1 (B0–B7: the paper's Table 2; ``ckpt_top1`` is the later
  AutoAugment checkpoints of the README, kept for reference). ``EFFICIENTNET_MACS`` is the paper's FLOPs column.
* ``RESNET``, ``DENSENET``: ``top1[depth]`` at 224; ``MOBILENET_V3``: ``top1[size][α]`` at 224.

How ``expected_top1`` reads them:

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
5. Every extrapolated value is clamped to [0.1, best published top-1 of the family + ``EXTRAPOLATION_MARGIN``].
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass

EXTRAPOLATION_MARGIN = 0.5  # points above the family's best published top-1 an extrapolation may reach
_SLIM = "https://github.com/tensorflow/models/blob/master/research/slim/nets/"
_TPU = "https://github.com/tensorflow/tpu/blob/master/models/official/efficientnet/"
_TORCHVISION = "torchvision models, IMAGENET1K_V1 weights acc@1"

MOBILENET_V1 = {
    "source": "TF-slim MobileNet_v1 README, mobilenet_v1_2018_02_22 float checkpoints",
    "url": _SLIM + "mobilenet_v1.md",
    "top1": {
        1.0: {224: 70.9, 192: 70.0, 160: 68.0, 128: 65.2},
        0.75: {224: 68.4, 192: 67.2, 160: 65.3, 128: 62.1},
        0.5: {224: 63.3, 192: 61.7, 160: 59.1, 128: 56.3},
        0.25: {224: 49.8, 192: 47.7, 160: 45.5, 128: 41.5},
    },
}
MOBILENET_V2 = {
    "source": "TF-slim MobileNet README, Mobilenet V2 ImageNet checkpoints",
    "url": _SLIM + "mobilenet/README.md",
    "top1": {
        1.4: {224: 75.0},
        1.3: {224: 74.4},
        1.0: {224: 71.8, 192: 70.7, 160: 68.8, 128: 65.3, 96: 60.3},
        0.75: {224: 69.8, 192: 68.7, 160: 66.4, 128: 63.2, 96: 58.8},
        0.5: {224: 65.4, 192: 63.9, 160: 61.0, 128: 57.7, 96: 51.2},
        0.35: {224: 60.3, 192: 58.2, 160: 55.7, 128: 50.8, 96: 45.5},
    },
}
MOBILENET_V3 = {
    "source": "TF-slim MobileNet README, Mobilenet V3 float checkpoints (torchvision V1 weights: large 74.042, "
    "small 67.668)",
    "url": _SLIM + "mobilenet/README.md",
    "top1": {"large": {1.0: 75.2, 0.75: 73.3}, "small": {1.0: 67.5, 0.75: 65.4}},
}
RESNET = {
    "source": _TORCHVISION + " (He et al., Deep Residual Learning for Image Recognition)",
    "url": "https://pytorch.org/vision/stable/models.html",
    "top1": {"18": 69.758, "34": 73.314, "50": 76.13, "101": 77.374, "152": 78.312},
}
DENSENET = {
    "source": _TORCHVISION + " (Huang et al., Densely Connected Convolutional Networks)",
    "url": "https://pytorch.org/vision/stable/models.html",
    "top1": {"121": 74.434, "169": 75.6, "201": 76.896, "161": 77.138},
}
_B = {  # name: (width, depth, resolution, paper FLOPs = multiply-adds, paper top-1, README AutoAugment ckpt top-1)
    "b0": (1.0, 1.0, 224, 0.39e9, 77.1, 77.3),
    "b1": (1.0, 1.1, 240, 0.70e9, 79.1, 79.2),
    "b2": (1.1, 1.2, 260, 1.0e9, 80.1, 80.3),
    "b3": (1.2, 1.4, 300, 1.8e9, 81.6, 81.7),
    "b4": (1.4, 1.8, 380, 4.2e9, 82.9, 83.0),
    "b5": (1.6, 2.2, 456, 9.9e9, 83.6, 83.7),
    "b6": (1.8, 2.6, 528, 19e9, 84.0, 84.2),
    "b7": (2.0, 3.1, 600, 37e9, 84.3, 84.5),
}
EFFICIENTNET_MACS = {k: v[3] for k, v in _B.items()}
EFFICIENTNET = {
    "source": "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (ICML 2019), "
    "Table 2; coefficients from the tensorflow/tpu efficientnet_builder.py",
    "url": "https://arxiv.org/abs/1905.11946",
    "variants": {
        k: {"width": w, "depth": d, "resolution": r, "macs": m, "top1": t, "ckpt_top1": c}
        for k, (w, d, r, m, t, c) in _B.items()
    },
}
_LITE = {  # name: (width, depth, resolution, MAdds, fp32 top-1, int8 top-1)
    "lite0": (1.0, 1.0, 224, 407e6, 75.1, 74.4),
    "lite1": (1.0, 1.1, 240, 631e6, 76.7, 75.9),
    "lite2": (1.1, 1.2, 260, 899e6, 77.6, 77.0),
    "lite3": (1.2, 1.4, 280, 1.44e9, 79.8, 79.0),
    "lite4": (1.4, 1.8, 300, 2.64e9, 81.5, 80.2),
}
EFFICIENTNET_LITE = {
    "source": "tensorflow/tpu EfficientNet-lite README (FP32 and post-training INT8 accuracy)",
    "url": _TPU + "lite/README.md",
    "variants": {
        k: {"width": w, "depth": d, "resolution": r, "macs": m, "top1": t, "int8_top1": q}
        for k, (w, d, r, m, t, q) in _LITE.items()
    },
}
TABLES = {
    "mobilenet_v1": MOBILENET_V1,
    "mobilenet_v2": MOBILENET_V2,
    "mobilenet_v3": MOBILENET_V3,
    "efficientnet": EFFICIENTNET,
    "efficientnet_lite": EFFICIENTNET_LITE,
    "resnet": RESNET,
    "densenet": DENSENET,
}
_ALIASES = {"mobilenet": "mobilenet_v1"}


@dataclass(frozen=True)
class Expectation:
    """Expected float top-1 (%), how it was obtained ("published", "interpolated", "extrapolated"), and from what."""

    top1: float
    method: str
    source: str


def phi_equivalent(width: float, depth: float, resolution: int) -> float:
    """The φ whose zoo multipliers (1.2^φ depth, 1.1^φ width, 1.15^φ resolution) give the same d·w²·r² ratio."""
    return math.log(depth * width**2 * (resolution / 224) ** 2) / math.log(1.2 * 1.1**2 * 1.15**2)


def _line(xs: list[float], ys: list[float], x: float) -> tuple[float, bool]:
    """Piecewise-linear y(x) over sorted xs; outside, the line through the two nearest points. (y, inside)."""
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    t = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + t * (ys[i + 1] - ys[i]), xs[0] - 1e-9 <= x <= xs[-1] + 1e-9


def _bilinear(top1: dict, alphas: list[float], rhos: list[int], a: float, r: float) -> tuple[float, bool]:
    """Bilinear in (log α, log ρ) over the rectangle alphas × rhos, continued linearly outside. (y, inside)."""
    la, lr = [math.log(v) for v in alphas], [math.log(v) for v in rhos]
    rows = [_line(lr, [top1[alpha][rho] for rho in rhos], math.log(r)) for alpha in alphas]
    value, inside_a = _line(la, [v for v, _ in rows], math.log(a))
    return value, inside_a and rows[0][1]


def _mobilenet_grid(top1: dict, a: float, r: float) -> tuple[float, str]:
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
    at_ref, inside = _line([math.log(v) for v in xs], [top1[v][ref] for v in xs], math.log(a))
    base, _ = _bilinear(top1, core, rhos, core[-1], r)
    return base + at_ref - top1[core[-1]][ref], "interpolated" if inside and r == ref else "extrapolated"


def _resolution_change(resolution: float) -> float:
    """MobileNetV2 α = 1.0 top-1 at ρ minus at 224 (rule 4)."""
    return _mobilenet_grid(MOBILENET_V2["top1"], 1.0, resolution)[0] - MOBILENET_V2["top1"][1.0][224]


def _family(family: str) -> tuple[str, dict]:
    family = _ALIASES.get(family, family)
    if family not in TABLES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(sorted(TABLES))}")
    return family, TABLES[family]


def _variant(family: str, variant: str | None, choices: dict) -> str:
    name = re.sub(r"^(efficientnet|resnet|densenet|mobilenet_v3)[_-]?", "", (variant or "").lower().strip())
    if name not in choices:
        raise ValueError(f"{family}: variant must be one of {sorted(choices)}, got {variant!r}")
    return name


def _efficientnet(table: dict, phi: float | None, resolution: float, macs: float | None) -> tuple[float, str]:
    rows = list(table["variants"].values())
    if macs is not None:
        xs, x = [math.log(v["macs"]) for v in rows], math.log(macs)
    else:
        xs = [phi_equivalent(v["width"], v["depth"], v["resolution"]) for v in rows]
        x = phi if phi is not None else math.log(resolution / 224) / math.log(1.15)
    for row, at in zip(rows, xs, strict=True):
        if math.isclose(x, at, abs_tol=1e-9):
            return row["top1"], "published"
    value, inside = _line(xs, [v["top1"] for v in rows], x)
    return value, "interpolated" if inside else "extrapolated"


def expected_top1(
    family: str,
    *,
    width: float = 1.0,
    resolution: int = 224,
    phi: float | None = None,
    variant: str | None = None,
    macs: float | None = None,
) -> Expectation:
    """Expected float ImageNet top-1 (%); ``macs`` is a plain count (B0 ≈ 0.39e9). Rules: module docstring."""
    family, table = _family(family)
    if min(width, resolution, macs or 1.0) <= 0:
        raise ValueError(f"width, resolution and macs must be positive (got {width}, {resolution}, {macs})")
    if family.startswith("efficientnet") and variant is not None:
        lite = "lite" in variant.lower()
        table = EFFICIENTNET_LITE if lite else EFFICIENTNET
        name = _variant("efficientnet_lite" if lite else "efficientnet", variant, table["variants"])
        value, method = table["variants"][name]["top1"], "published"
    elif family.startswith("efficientnet"):
        value, method = _efficientnet(table, phi, resolution, macs)
    elif family in ("mobilenet_v1", "mobilenet_v2"):
        value, method = _mobilenet_grid(table["top1"], width, resolution)
    else:
        at_224 = table["top1"][_variant(family, variant, table["top1"])]
        if family == "mobilenet_v3":
            widths = sorted(at_224)
            value, inside = _line([math.log(w) for w in widths], [at_224[w] for w in widths], math.log(width))
            published = any(math.isclose(width, w) for w in widths)
            method = "published" if published else "interpolated" if inside else "extrapolated"
        elif not math.isclose(width, 1.0):
            raise ValueError(f"{family} has no width multiplier (width must be 1.0, got {width})")
        else:
            value, method = at_224, "published"
        if resolution != 224:
            value, method = value + _resolution_change(resolution), "extrapolated"
    if method == "extrapolated":
        best = max(p["top1"] for p in published_points(family))
        value = min(max(value, 0.1), best + EXTRAPOLATION_MARGIN)
    return Expectation(round(value, 3), method, f"{table['source']}, {table['url']}")


def published_points(family: str) -> list[dict]:
    """Every published point of a family as flat dicts (for charts)."""
    family, table = _family(family)
    if "variants" in table:
        return [
            {"variant": k, **v, "phi": phi_equivalent(v["width"], v["depth"], v["resolution"])}
            for k, v in table["variants"].items()
        ]
    if family in ("mobilenet_v1", "mobilenet_v2"):
        return [{"width": a, "resolution": r, "top1": t} for a, row in table["top1"].items() for r, t in row.items()]
    if family == "mobilenet_v3":
        return [
            {"variant": k, "width": a, "resolution": 224, "top1": t}
            for k, row in table["top1"].items()
            for a, t in row.items()
        ]
    return [{"variant": k, "resolution": 224, "top1": t} for k, t in table["top1"].items()]
