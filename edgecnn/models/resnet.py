"""ResNet 18/34/50/101/152 (He et al., 2016), with optional deformable 3×3 stages, and their published top-1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.models.accuracy import Table, depth_points, read_depths
from edgecnn.models.mobilenet import at_resolution
from edgecnn.models.registry import Reference, declare_family, register_model

if TYPE_CHECKING:
    from edgecnn.models.nets.resnet import ResNet

SOURCE = "He et al., Deep Residual Learning for Image Recognition (2016); torchvision parameter counts"
DEPTHS = (18, 34, 50, 101, 152)


# Published ImageNet top-1 (float, single crop) at 224; how they are read: edgecnn/models/accuracy.py.
RESNET = {
    "source": "torchvision models, IMAGENET1K_V1 weights acc@1 (He et al., Deep Residual Learning for Image "
    "Recognition)",
    "url": "https://pytorch.org/vision/stable/models.html",
    "top1": {"18": 69.758, "34": 73.314, "50": 76.13, "101": 77.374, "152": 78.312},
}
RESNET_TOP1 = Table(
    "resnet", RESNET, lambda data, reading: read_depths("resnet", data, reading, at_resolution), depth_points
)
declare_family(
    "resnet",
    # The planner's grid: every depth at 160, 192 and 224.
    grid=((f"resnet{depth}", {"resolution": r}) for depth in DEPTHS for r in (160, 192, 224)),
    accuracy=lambda model, scaling, macs: RESNET_TOP1.expect(variant=model, **scaling),
    table=RESNET_TOP1,
)


@register_model("resnet", reference=Reference(params_m=11.7, macs_m=1814, top1=69.8, source=SOURCE))
def resnet18(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(18, num_classes, in_chans, width)


@register_model("resnet", reference=Reference(params_m=21.8, macs_m=3664, top1=73.3, source=SOURCE))
def resnet34(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(34, num_classes, in_chans, width)


@register_model("resnet", reference=Reference(params_m=25.6, macs_m=4089, top1=76.1, source=SOURCE))
def resnet50(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3]."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(50, num_classes, in_chans, width)


@register_model("resnet", reference=Reference(params_m=44.5, macs_m=7801, top1=77.4, source=SOURCE))
def resnet101(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3]."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(101, num_classes, in_chans, width)


@register_model("resnet", reference=Reference(params_m=60.2, macs_m=11514, top1=78.3, source=SOURCE))
def resnet152(num_classes: int = 1000, in_chans: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3]."""
    from edgecnn.models.nets.resnet import resnet

    return resnet(152, num_classes, in_chans, width)
