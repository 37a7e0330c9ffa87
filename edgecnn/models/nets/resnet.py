"""ResNet (He et al., 2016) as torch modules, with optional deformable 3×3 stages."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgecnn.models.nets.layers import ClassifierHead, init_weights
from edgecnn.ops.deform_conv import DeformConv2d


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, deform: str | None = None) -> nn.Module:
    """A 3×3 convolution without bias: plain, or deformable ('v1', or modulated 'v2')."""
    if deform:
        return DeformConv2d(in_channels, out_channels, 3, stride, 1, bias=False, modulated=deform == "v2")
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a projection (1×1 conv + BN) when the stride or the width changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, deform: str | None = None):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv3x3(in_channels, width, stride, deform)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided, optionally deformable) → 1×1 expand ×4, plus the residual."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, deform: str | None = None):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, deform)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (7×7/2 conv, 3×3/2 max-pool), four residual stages, classifier.

    ``deform_stages`` names the stages (1–4, as conv2_x … conv5_x) whose 3×3
    convolutions are deformable, with ``deform`` 'v1' or 'v2'.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        width: float = 1.0,
        deform: str | None = None,
        deform_stages: Sequence[int] = (),
    ):
        super().__init__()
        widths = [max(8, round(w * width)) for w in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for index, (stage_width, repeats) in enumerate(zip(widths, layers, strict=True), start=1):
            stride = 1 if index == 1 else 2
            stage_deform = deform if index in deform_stages else None
            blocks = []
            for i in range(repeats):
                blocks.append(block(channels, stage_width, stride if i == 0 else 1, stage_deform))
                channels = stage_width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = ClassifierHead(channels, num_classes)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, DeformConv2d):
                m.zero_init_offsets()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)


BLOCKS = {  # depth: block, repeats per stage
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(
    depth: int,
    num_classes: int = 1000,
    in_chans: int = 3,
    width: float = 1.0,
    deform: str | None = None,
    deform_stages: Sequence[int] = (),
) -> ResNet:
    """Build a ResNet of a given depth (18, 34, 50, 101, 152)."""
    block, layers = BLOCKS[depth]
    return ResNet(block, layers, num_classes, in_chans, width, deform, deform_stages)
