"""EfficientNet B0–B7 by compound scaling φ, and EfficientNet-Lite 0–4, from one builder, with their published top-1."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecnn.models.accuracy import Expectation, Reading, Table, cite, line, variant_key
from edgecnn.models.registry import Reference, declare_family, register_model

if TYPE_CHECKING:
    from edgecnn.models.nets.efficientnet import EfficientNet

SOURCE = "Tan & Le, EfficientNet (2019), Table 2 and the released coefficients; torchvision parameter counts"
SOURCE_LITE = "TensorFlow TPU models, EfficientNet-Lite (2020): no SE, ReLU6, fixed stem and head"

# Compound scaling constants found by the grid search of the paper: α·β²·γ² ≈ 2.
ALPHA_DEPTH, BETA_WIDTH, GAMMA_RESOLUTION = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class Scaling:
    """Width and depth multipliers, input resolution and dropout of one variant."""

    width: float
    depth: float
    resolution: int
    dropout: float


# The released coefficients (they round the φ formula their own way).
VARIANTS = {
    "b0": Scaling(1.0, 1.0, 224, 0.2),
    "b1": Scaling(1.0, 1.1, 240, 0.2),
    "b2": Scaling(1.1, 1.2, 260, 0.3),
    "b3": Scaling(1.2, 1.4, 300, 0.3),
    "b4": Scaling(1.4, 1.8, 380, 0.4),
    "b5": Scaling(1.6, 2.2, 456, 0.4),
    "b6": Scaling(1.8, 2.6, 528, 0.5),
    "b7": Scaling(2.0, 3.1, 600, 0.5),
}
LITE_VARIANTS = {
    "lite0": Scaling(1.0, 1.0, 224, 0.2),
    "lite1": Scaling(1.0, 1.1, 240, 0.2),
    "lite2": Scaling(1.1, 1.2, 260, 0.3),
    "lite3": Scaling(1.2, 1.4, 280, 0.3),
    "lite4": Scaling(1.4, 1.8, 300, 0.3),
}


def compound_scaling(phi: float) -> Scaling:
    """Multipliers for any φ: depth α^φ, width β^φ, resolution 224·γ^φ (to a multiple of 8)."""
    resolution = int(round(224 * GAMMA_RESOLUTION**phi / 8) * 8)
    dropout = min(0.5, 0.2 + 0.05 * max(0.0, phi))
    return Scaling(BETA_WIDTH**phi, ALPHA_DEPTH**phi, resolution, round(dropout, 3))


_TPU = "https://github.com/tensorflow/tpu/blob/master/models/official/efficientnet/"

# Published ImageNet top-1 (float, single crop) of the released variants; how they are read: edgecnn/models/accuracy.py.
_B = {  # name: (paper FLOPs = multiply-adds, paper top-1, README AutoAugment ckpt top-1)
    "b0": (0.39e9, 77.1, 77.3),
    "b1": (0.70e9, 79.1, 79.2),
    "b2": (1.0e9, 80.1, 80.3),
    "b3": (1.8e9, 81.6, 81.7),
    "b4": (4.2e9, 82.9, 83.0),
    "b5": (9.9e9, 83.6, 83.7),
    "b6": (19e9, 84.0, 84.2),
    "b7": (37e9, 84.3, 84.5),
}
EFFICIENTNET_MACS = {k: v[0] for k, v in _B.items()}
EFFICIENTNET = {
    "source": "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (ICML 2019), "
    "Table 2; coefficients from the tensorflow/tpu efficientnet_builder.py",
    "url": "https://arxiv.org/abs/1905.11946",
    "variants": {
        k: {"width": v.width, "depth": v.depth, "resolution": v.resolution, "macs": m, "top1": t, "ckpt_top1": c}
        for (k, v), (m, t, c) in zip(VARIANTS.items(), _B.values(), strict=True)
    },
}
_LITE = {  # name: (MAdds, fp32 top-1, int8 top-1)
    "lite0": (407e6, 75.1, 74.4),
    "lite1": (631e6, 76.7, 75.9),
    "lite2": (899e6, 77.6, 77.0),
    "lite3": (1.44e9, 79.8, 79.0),
    "lite4": (2.64e9, 81.5, 80.2),
}
EFFICIENTNET_LITE = {
    "source": "tensorflow/tpu EfficientNet-lite README (FP32 and post-training INT8 accuracy)",
    "url": _TPU + "lite/README.md",
    "variants": {
        k: {"width": v.width, "depth": v.depth, "resolution": v.resolution, "macs": m, "top1": t, "int8_top1": q}
        for (k, v), (m, t, q) in zip(LITE_VARIANTS.items(), _LITE.values(), strict=True)
    },
}


def phi_equivalent(width: float, depth: float, resolution: int) -> float:
    """The φ whose zoo multipliers (1.2^φ depth, 1.1^φ width, 1.15^φ resolution) give the same d·w²·r² ratio."""
    return math.log(depth * width**2 * (resolution / 224) ** 2) / math.log(
        ALPHA_DEPTH * BETA_WIDTH**2 * GAMMA_RESOLUTION**2
    )


def _read(data: dict[str, Any], reading: Reading) -> Expectation:
    """A released variant as published (B or Lite, whichever it names); else rule 3 along this table's variants."""
    if reading.variant is not None:
        lite = "lite" in reading.variant.lower()
        named = EFFICIENTNET_LITE if lite else EFFICIENTNET
        label = "efficientnet_lite" if lite else "efficientnet"
        key = variant_key(label, "efficientnet", reading.variant, named["variants"])
        return Expectation(named["variants"][key]["top1"], "published", cite(named))
    rows = list(data["variants"].values())
    if reading.macs is not None:
        xs, x = [math.log(v["macs"]) for v in rows], math.log(reading.macs)
    else:
        xs = [phi_equivalent(v["width"], v["depth"], v["resolution"]) for v in rows]
        x = reading.phi if reading.phi is not None else math.log(reading.resolution / 224) / math.log(GAMMA_RESOLUTION)
    for row, at in zip(rows, xs, strict=True):
        if math.isclose(x, at, abs_tol=1e-9):
            return Expectation(row["top1"], "published", cite(data))
    value, inside = line(xs, [v["top1"] for v in rows], x)
    return Expectation(value, "interpolated" if inside else "extrapolated", cite(data))


def _points(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"variant": k, **v, "phi": phi_equivalent(v["width"], v["depth"], v["resolution"])}
        for k, v in data["variants"].items()
    ]


EFFICIENTNET_TOP1 = Table("efficientnet", EFFICIENTNET, _read, _points)
declare_family(
    "efficientnet",
    # The planner's grid: φ from 0 to 7 by 0.25, the released B0–B7 and Lite0–4.
    grid=(
        *(("efficientnet", {"phi": i / 4}) for i in range(29)),
        *((f"efficientnet_{variant}", {}) for variant in VARIANTS),
        *((f"efficientnet_{variant}", {}) for variant in LITE_VARIANTS),
    ),
    # B0–B7 and Lite0–4 as published; any φ read off its MACs.
    accuracy=lambda model, scaling, macs: (
        EFFICIENTNET_TOP1.expect(macs=macs) if model == "efficientnet" else EFFICIENTNET_TOP1.expect(variant=model)
    ),
    table=EFFICIENTNET_TOP1,
)
declare_family("efficientnet_lite", table=Table("efficientnet_lite", EFFICIENTNET_LITE, _read, _points))


@register_model("efficientnet", reference=Reference(source=SOURCE + "; φ: depth 1.2^φ, width 1.1^φ, resolution 1.15^φ"))
def efficientnet(
    num_classes: int = 1000, in_chans: int = 3, phi: float = 0.0, width: float | None = None, depth: float | None = None
) -> EfficientNet:
    """EfficientNet at any compound coefficient φ (``width``/``depth`` override the multipliers)."""
    from edgecnn.models.nets.efficientnet import EfficientNet

    base = compound_scaling(phi)
    scaling = Scaling(width or base.width, depth or base.depth, base.resolution, base.dropout)
    return EfficientNet(scaling, num_classes, in_chans)


def _register_variant(variant: str, params_m: float, macs_m: float, top1: float) -> None:
    def builder(num_classes: int = 1000, in_chans: int = 3) -> EfficientNet:
        from edgecnn.models.nets.efficientnet import EfficientNet

        return EfficientNet(VARIANTS[variant], num_classes, in_chans)

    builder.__name__ = f"efficientnet_{variant}"
    builder.__doc__ = f"EfficientNet-{variant.upper()} with the released coefficients {VARIANTS[variant]}."
    register_model(
        "efficientnet",
        VARIANTS[variant].resolution,
        Reference(params_m=params_m, macs_m=macs_m, top1=top1, source=SOURCE),
    )(builder)


def _register_lite(variant: str, params_m: float, top1: float) -> None:
    def builder(num_classes: int = 1000, in_chans: int = 3) -> EfficientNet:
        from edgecnn.models.nets.efficientnet import EfficientNet

        return EfficientNet(LITE_VARIANTS[variant], num_classes, in_chans, lite=True)

    builder.__name__ = f"efficientnet_{variant}"
    builder.__doc__ = f"EfficientNet-{variant.capitalize()}: no SE, ReLU6, fixed stem/head."
    register_model(
        "efficientnet_lite",
        LITE_VARIANTS[variant].resolution,
        Reference(params_m=params_m, top1=top1, source=SOURCE_LITE),
    )(builder)


for _args in (
    ("b0", 5.3, 390, 77.1),
    ("b1", 7.8, 700, 79.1),
    ("b2", 9.2, 1000, 80.1),
    ("b3", 12.0, 1800, 81.6),
    ("b4", 19.0, 4200, 82.9),
    ("b5", 30.0, 9900, 83.6),
    ("b6", 43.0, 19000, 84.0),
    ("b7", 66.0, 37000, 84.3),
):
    _register_variant(*_args)

for _args in (
    ("lite0", 4.7, 75.1),
    ("lite1", 5.4, 76.7),
    ("lite2", 6.1, 77.6),
    ("lite3", 8.2, 79.8),
    ("lite4", 13.0, 81.5),
):
    _register_lite(*_args)
