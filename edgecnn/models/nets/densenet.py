"""DenseNet (Huang et al., 2017) as torch modules, with a configurable growth rate k."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgecnn.models.nets.layers import init_weights


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1×1(4k)-BN-ReLU-Conv3×3(k); its k new channels are concatenated to its input."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.norm1(x)))
        out = self.conv2(self.relu(self.norm2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1×1 compressing the channels, then 2×2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2, 2),
        )


class DenseNet(nn.Module):
    """Stem, dense blocks joined by transitions (compression 0.5), final BN-ReLU, classifier."""

    def __init__(
        self,
        block_config: Sequence[int],
        growth_rate: int = 32,
        init_features: int = 64,
        compression: float = 0.5,
        bn_size: int = 4,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, init_features, 7, 2, 3, bias=False),
            nn.BatchNorm2d(init_features),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        channels = init_features
        for index, repeats in enumerate(block_config):
            for _ in range(repeats):
                layers.append(DenseLayer(channels, growth_rate, bn_size))
                channels += growth_rate
            if index != len(block_config) - 1:
                compressed = int(channels * compression)
                layers.append(Transition(channels, compressed))
                channels = compressed
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
