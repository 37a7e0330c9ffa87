"""EfficientNet as a torch module: B0's stages scaled by a width and depth multiplier, or the Lite form."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from edgecnn.models.nets.layers import (
    ActLayer,
    ClassifierHead,
    ConvBNAct,
    InvertedResidual,
    init_weights,
    make_divisible,
    round_repeats,
)

if TYPE_CHECKING:
    from edgecnn.models.efficientnet import Scaling

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
