"""Deformable ConvNets: ResNet-50/101 with deformable 3×3 convolutions (DCNv1, modulated DCNv2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from edgecnn.models.knobs import KNOBS
from edgecnn.models.registry import Reference, declare_family, register_model

if TYPE_CHECKING:
    from edgecnn.models.nets.resnet import ResNet

SOURCE_V1 = "Dai et al., Deformable Convolutional Networks (2017): deformable 3×3 in conv3_x–conv5_x"
SOURCE_V2 = "Zhu et al., Deformable ConvNets v2 (2019): modulated deformable 3×3 in conv3_x–conv5_x"

DEFAULT_STAGES = (2, 3, 4)  # conv3_x, conv4_x, conv5_x: the last three, as in the DCN papers

# A ResNet has four stages (conv2_x … conv5_x) that can be deformable.
declare_family("dcn", knobs=[replace(KNOBS["stages"], maximum=4, valid="a non-empty list of stages among 1–4")])


def _stages(stages: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(DEFAULT_STAGES if stages is None else stages)


@register_model("dcn", reference=Reference(source=SOURCE_V1))
def resnet50_dcn(
    num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, stages: Sequence[int] | None = None
) -> ResNet:
    """ResNet-50 with DCNv1 deformable 3×3 convolutions in the chosen stages."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(50, num_classes, in_chans, width, deform="v1", deform_stages=_stages(stages))


@register_model("dcn", reference=Reference(source=SOURCE_V1))
def resnet101_dcn(
    num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, stages: Sequence[int] | None = None
) -> ResNet:
    """ResNet-101 with DCNv1 deformable 3×3 convolutions in the chosen stages."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(101, num_classes, in_chans, width, deform="v1", deform_stages=_stages(stages))


@register_model("dcn", reference=Reference(source=SOURCE_V2))
def resnet50_dcnv2(
    num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, stages: Sequence[int] | None = None
) -> ResNet:
    """ResNet-50 with modulated (DCNv2) deformable 3×3 convolutions in the chosen stages."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(50, num_classes, in_chans, width, deform="v2", deform_stages=_stages(stages))


@register_model("dcn", reference=Reference(source=SOURCE_V2))
def resnet101_dcnv2(
    num_classes: int = 1000, in_chans: int = 3, width: float = 1.0, stages: Sequence[int] | None = None
) -> ResNet:
    """ResNet-101 with modulated (DCNv2) deformable 3×3 convolutions in the chosen stages."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(101, num_classes, in_chans, width, deform="v2", deform_stages=_stages(stages))
