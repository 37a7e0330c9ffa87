"""MobileNetV1, V2 and V3 (small/large) as torch modules, every width scaled by α."""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.models.nets.layers import ClassifierHead, ConvBNAct, InvertedResidual, init_weights, make_divisible

# MobileNetV1: (output channels, stride) of each depthwise-separable block.
V1_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise conv-BN-ReLU6 followed by 1×1 pointwise conv-BN-ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=nn.ReLU6),
            ConvBNAct(in_channels, out_channels, 1, act=nn.ReLU6),
        )


class MobileNetV1(nn.Module):
    """The depthwise-separable stack of MobileNetV1, every width scaled by α (multiples of 8, min 8)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, dropout: float = 0.001):
        super().__init__()
        channels = make_divisible(32 * width, 8)
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, 2, act=nn.ReLU6)]
        for out, stride in V1_BLOCKS:
            out = make_divisible(out * width, 8)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(channels, num_classes, dropout)
        init_weights(self, fan_per_group=True)  # no residual path: keep random-weight activations alive

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# MobileNetV2: expansion t, channels c, repeats n, first stride s.
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """Inverted residuals with linear bottlenecks; α scales every width but the 1280 head (α > 1 scales it too)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, dropout: float = 0.2):
        super().__init__()
        channels = make_divisible(32 * width, 8)
        head = make_divisible(1280 * max(1.0, width), 8)
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in V2_STAGES:
            out = make_divisible(c * width, 8)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, 3, s if i == 0 else 1, channels * t, nn.ReLU6))
                channels = out
        layers.append(ConvBNAct(channels, head, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(head, num_classes, dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# MobileNetV3: kernel, expanded, out, squeeze-excite, hard-swish, stride.
V3_LARGE = (
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2),
    (5, 120, 40, True, False, 1),
    (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2),
    (3, 200, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 480, 112, True, True, 1),
    (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2),
    (5, 960, 160, True, True, 1),
    (5, 960, 160, True, True, 1),
)
V3_SMALL = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


class MobileNetV3(nn.Module):
    """MobileNetV3: inverted residuals with squeeze-excitation and hard-swish, a 1×1 head and a hidden FC."""

    def __init__(
        self,
        config: tuple,
        last_channel: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        width: float = 1.0,
        dropout: float = 0.2,
    ):
        super().__init__()

        def scale(c: int) -> int:
            return make_divisible(c * width, 8)

        channels = scale(16)
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, 2, act=nn.Hardswish)]
        for kernel, expanded, out, se, hs, stride in config:
            expanded, out = scale(expanded), scale(out)
            layers.append(
                InvertedResidual(
                    channels,
                    out,
                    kernel,
                    stride,
                    expanded,
                    act=nn.Hardswish if hs else nn.ReLU,
                    se_channels=make_divisible(expanded // 4, 8) if se else 0,
                    se_gate=nn.Hardsigmoid,
                )
            )
            channels = out
        lastconv = 6 * channels
        layers.append(ConvBNAct(channels, lastconv, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        hidden = scale(last_channel)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(lastconv, hidden),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
