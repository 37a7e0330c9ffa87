"""MobileNetV1 (width α, resolution ρ), MobileNetV2 and MobileNetV3 small/large, with their published top-1."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from edgecnn.models.accuracy import (
    Expectation,
    Reading,
    Table,
    cite,
    grid_points,
    grid_top1,
    line,
    read_grid,
    variant_key,
)
from edgecnn.models.registry import Reference, declare_family, register_model

if TYPE_CHECKING:
    from edgecnn.models.nets.mobilenet import MobileNetV1, MobileNetV2, MobileNetV3

SOURCE_V1 = "Howard et al., MobileNets (2017), Tables 6–7; TF-slim table: 4.24M params, 569M MACs, 70.9% at α=1, 224"
SOURCE_V2 = "Sandler et al., MobileNetV2 (2018): 3.4M params, 300M MACs, 72.0%; torchvision 3.5M"
SOURCE_V3 = "Howard et al., Searching for MobileNetV3 (2019); torchvision parameter counts"

_SLIM = "https://github.com/tensorflow/models/blob/master/research/slim/nets/"

# Published ImageNet top-1 (float, single crop); how they are read: edgecnn/models/accuracy.py.
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


def at_resolution(top1: float, method: str, resolution: float) -> tuple[float, str]:
    """A top-1 published at 224 read at ρ: plus MobileNetV2 α = 1.0's change from 224 to ρ, "extrapolated"
    (rule 4 of edgecnn/models/accuracy.py, for the networks published at 224 only)."""
    if resolution == 224:
        return top1, method
    row = MOBILENET_V2["top1"]
    return top1 + (grid_top1(row, 1.0, resolution)[0] - row[1.0][224]), "extrapolated"


def _read_v3(data: dict[str, Any], reading: Reading) -> Expectation:
    at_224 = data["top1"][variant_key("mobilenet_v3", "mobilenet_v3", reading.variant, data["top1"])]
    widths = sorted(at_224)
    value, inside = line([math.log(w) for w in widths], [at_224[w] for w in widths], math.log(reading.width))
    published = any(math.isclose(reading.width, w) for w in widths)
    method = "published" if published else "interpolated" if inside else "extrapolated"
    return Expectation(*at_resolution(value, method, reading.resolution), cite(data))


def _v3_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"variant": k, "width": a, "resolution": 224, "top1": t}
        for k, row in data["top1"].items()
        for a, t in row.items()
    ]


V1_TOP1 = Table("mobilenet_v1", MOBILENET_V1, read_grid, grid_points)
V2_TOP1 = Table("mobilenet_v2", MOBILENET_V2, read_grid, grid_points)

# The planner's grids: width α × resolution ρ, each candidate read off its published table.
_RESOLUTIONS = (96, 128, 160, 192, 224)
declare_family(
    "mobilenet",
    grid=(
        ("mobilenet_v1", {"width": a, "resolution": r})
        for a in (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
        for r in _RESOLUTIONS
    ),
    accuracy=lambda model, scaling, macs: V1_TOP1.expect(**scaling),
    table=V1_TOP1,
)
declare_family(
    "mobilenet_v2",
    grid=(
        ("mobilenet_v2", {"width": a, "resolution": r}) for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4) for r in _RESOLUTIONS
    ),
    accuracy=lambda model, scaling, macs: V2_TOP1.expect(**scaling),
    table=V2_TOP1,
)
declare_family("mobilenet_v3", table=Table("mobilenet_v3", MOBILENET_V3, _read_v3, _v3_points))


@register_model("mobilenet", reference=Reference(params_m=4.24, macs_m=569, top1=70.9, source=SOURCE_V1))
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> MobileNetV1:
    """MobileNetV1 with width multiplier α (``width``) and resolution ρ (``resolution``)."""
    from edgecnn.models.nets.mobilenet import MobileNetV1

    return MobileNetV1(num_classes, in_chans, width)


@register_model("mobilenet_v2", reference=Reference(params_m=3.5, macs_m=300, top1=72.0, source=SOURCE_V2))
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> MobileNetV2:
    """MobileNetV2 with width multiplier α."""
    from edgecnn.models.nets.mobilenet import MobileNetV2

    return MobileNetV2(num_classes, in_chans, width)


@register_model("mobilenet_v3", reference=Reference(params_m=5.5, macs_m=217, top1=75.2, source=SOURCE_V3))
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> MobileNetV3:
    """MobileNetV3-Large with width multiplier α."""
    from edgecnn.models.nets.mobilenet import V3_LARGE, MobileNetV3

    return MobileNetV3(V3_LARGE, 1280, num_classes, in_chans, width)


@register_model("mobilenet_v3", reference=Reference(params_m=2.5, macs_m=56, top1=67.4, source=SOURCE_V3))
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> MobileNetV3:
    """MobileNetV3-Small with width multiplier α."""
    from edgecnn.models.nets.mobilenet import V3_SMALL, MobileNetV3

    return MobileNetV3(V3_SMALL, 1024, num_classes, in_chans, width)
