"""EfficientNet B0–B7 by compound scaling φ, and EfficientNet-Lite 0–4, from one builder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.models.layers import (
    ActLayer,
    ClassifierHead,
    ConvBNAct,
    InvertedResidual,
    init_weights,
    make_divisible,
    round_repeats,
)
from edgecnn.models.registry import Reference, register_model

SOURCE = "Tan & Le, EfficientNet (2019), Table 2 and the released coefficients; torchvision parameter counts"
SOURCE_LITE = "TensorFlow TPU models, EfficientNet-Lite (2020): no SE, ReLU6, fixed stem and head"

# The B0 stage table: expansion, kernel, stride, output channels, repeats.
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)

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


class EfficientNet(nn.Module):
    """Stem, seven stages of MBConv blocks, 1×1 head, classifier.

    ``lite`` gives EfficientNet-Lite: no squeeze-excitation, ReLU6 instead of
    SiLU, and the stem, the head and the first and last stages left unscaled.
    """

    def __init__(
        self, scaling: Scaling, num_classes: int = 1000, in_chans: int = 3, lite: bool = False, drop_path: float = 0.2
    ):
        super().__init__()
        act: ActLayer = nn.ReLU6 if lite else nn.SiLU
        bn_eps = 1e-3

        def width(channels: int) -> int:
            return make_divisible(channels * scaling.width, 8)

        stem = 32 if lite else width(32)
        layers: list[nn.Module] = [ConvBNAct(in_chans, stem, 3, 2, act=act, bn_eps=bn_eps)]
        repeats = [
            n if lite and i in (0, len(B0_STAGES) - 1) else round_repeats(n, scaling.depth)
            for i, (*_, n) in enumerate(B0_STAGES)
        ]
        total, index, channels = sum(repeats), 0, stem
        for (expand, kernel, stride, out, _), n in zip(B0_STAGES, repeats, strict=True):
            out = width(out)
            for i in range(n):
                se = 0 if lite else max(1, channels // 4)
                layers.append(
                    InvertedResidual(
                        channels,
                        out,
                        kernel,
                        stride if i == 0 else 1,
                        channels * expand,
                        act=act,
                        se_channels=se,
                        se_act=nn.SiLU,
                        drop_path=drop_path * index / total,
                        bn_eps=bn_eps,
                    )
                )
                channels, index = out, index + 1
        head = 1280 if lite else width(1280)
        layers.append(ConvBNAct(channels, head, 1, act=act, bn_eps=bn_eps))
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(head, num_classes, scaling.dropout)
        self.default_resolution = scaling.resolution
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("efficientnet", reference=Reference(source=SOURCE + "; φ: depth 1.2^φ, width 1.1^φ, resolution 1.15^φ"))
def efficientnet(
    num_classes: int = 1000, in_chans: int = 3, phi: float = 0.0, width: float | None = None, depth: float | None = None
) -> EfficientNet:
    """EfficientNet at any compound coefficient φ (``width``/``depth`` override the multipliers)."""
    base = compound_scaling(phi)
    scaling = Scaling(width or base.width, depth or base.depth, base.resolution, base.dropout)
    return EfficientNet(scaling, num_classes, in_chans)


def _register_variant(variant: str, params_m: float, macs_m: float, top1: float) -> None:
    def builder(num_classes: int = 1000, in_chans: int = 3) -> EfficientNet:
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
