"""DenseNet 121/169/201/161 (Huang et al., 2017) with a configurable growth rate k, and their published top-1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgecnn.models.accuracy import Table, depth_points, read_depths
from edgecnn.models.layers import init_weights
from edgecnn.models.mobilenet import at_resolution
from edgecnn.models.registry import Reference, declare_family, register_model

SOURCE = "Huang et al., Densely Connected Convolutional Networks (2017); torchvision parameter counts"


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


# Published ImageNet top-1 (float, single crop) at 224; how they are read: edgecnn/models/accuracy.py.
DENSENET = {
    "source": "torchvision models, IMAGENET1K_V1 weights acc@1 (Huang et al., Densely Connected Convolutional "
    "Networks)",
    "url": "https://pytorch.org/vision/stable/models.html",
    "top1": {"121": 74.434, "169": 75.6, "201": 76.896, "161": 77.138},
}
declare_family(
    "densenet",
    table=Table(
        "densenet", DENSENET, lambda data, reading: read_depths("densenet", data, reading, at_resolution), depth_points
    ),
)


@register_model("densenet", reference=Reference(params_m=8.0, macs_m=2834, top1=74.4, source=SOURCE))
def densenet121(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32) -> DenseNet:
    """DenseNet-121: blocks (6, 12, 24, 16), k = 32."""
    return DenseNet((6, 12, 24, 16), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=14.1, macs_m=3360, top1=75.6, source=SOURCE))
def densenet169(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32) -> DenseNet:
    """DenseNet-169: blocks (6, 12, 32, 32), k = 32."""
    return DenseNet((6, 12, 32, 32), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=20.0, macs_m=4291, top1=76.9, source=SOURCE))
def densenet201(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32) -> DenseNet:
    """DenseNet-201: blocks (6, 12, 48, 32), k = 32."""
    return DenseNet((6, 12, 48, 32), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=28.7, macs_m=7728, top1=77.1, source=SOURCE))
def densenet161(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 48) -> DenseNet:
    """DenseNet-161: blocks (6, 12, 36, 24), k = 48."""
    return DenseNet((6, 12, 36, 24), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)
