"""Building blocks shared by the zoo's families."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

ActLayer = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``value``."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's number of blocks by a depth multiplier, rounding up."""
    return math.ceil(repeats * depth)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm → activation, with 'same' padding for odd kernels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: ActLayer | None = nn.ReLU,
        bn_eps: float = 1e-5,
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels, eps=bn_eps),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool → 1×1 reduce → act → 1×1 expand → gate → scale."""

    def __init__(self, channels: int, squeeze_channels: int, act: ActLayer = nn.ReLU, gate: ActLayer = nn.Sigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample while training; identity in eval."""

    def __init__(self, prob: float = 0.0):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's MBConv block.

    1×1 expansion (skipped when the ratio is 1) → k×k depthwise → optional
    squeeze-excitation → 1×1 linear projection, with a residual connection when
    the stride is 1 and the channel count is unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expanded_channels: int,
        act: ActLayer = nn.ReLU6,
        se_channels: int = 0,
        se_act: ActLayer = nn.ReLU,
        se_gate: ActLayer = nn.Sigmoid,
        drop_path: float = 0.0,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvBNAct(in_channels, expanded_channels, 1, act=act, bn_eps=bn_eps))
        layers.append(
            ConvBNAct(
                expanded_channels,
                expanded_channels,
                kernel_size,
                stride,
                groups=expanded_channels,
                act=act,
                bn_eps=bn_eps,
            )
        )
        if se_channels:
            layers.append(SqueezeExcite(expanded_channels, se_channels, se_act, se_gate))
        layers.append(ConvBNAct(expanded_channels, out_channels, 1, act=None, bn_eps=bn_eps))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = x + self.drop_path(out)
        return out


class ClassifierHead(nn.Sequential):
    """Global average pool → flatten → dropout → linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(in_features, num_classes),
        )


def init_weights(model: nn.Module, fan_per_group: bool = False) -> None:
    """He-normal convolutions (fan-out, as torchvision), unit BatchNorm, small-uniform linear layers.

    torch's fan-out ignores groups, so depthwise weights come out 1/sqrt(channels) smaller; networks with
    residual paths do not mind, but a deep plain stack (MobileNetV1) then outputs ~1e-18 with random weights.
    ``fan_per_group`` counts the fan-out of one group instead. A model on the meta device (the planner's) has no
    values to initialise: it is left as it is."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if fan_per_group:
                fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
