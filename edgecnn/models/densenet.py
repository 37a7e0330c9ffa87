"""DenseNet 121/169/201/161 (Huang et al., 2017) with a configurable growth rate k, and their published top-1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.models.accuracy import Table, depth_points, read_depths
from edgecnn.models.mobilenet import at_resolution
from edgecnn.models.registry import Reference, declare_family, register_model

if TYPE_CHECKING:
    from edgecnn.models.nets.densenet import DenseNet

SOURCE = "Huang et al., Densely Connected Convolutional Networks (2017); torchvision parameter counts"


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
    from edgecnn.models.nets.densenet import DenseNet

    return DenseNet((6, 12, 24, 16), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=14.1, macs_m=3360, top1=75.6, source=SOURCE))
def densenet169(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32) -> DenseNet:
    """DenseNet-169: blocks (6, 12, 32, 32), k = 32."""
    from edgecnn.models.nets.densenet import DenseNet

    return DenseNet((6, 12, 32, 32), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=20.0, macs_m=4291, top1=76.9, source=SOURCE))
def densenet201(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32) -> DenseNet:
    """DenseNet-201: blocks (6, 12, 48, 32), k = 32."""
    from edgecnn.models.nets.densenet import DenseNet

    return DenseNet((6, 12, 48, 32), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)


@register_model("densenet", reference=Reference(params_m=28.7, macs_m=7728, top1=77.1, source=SOURCE))
def densenet161(num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 48) -> DenseNet:
    """DenseNet-161: blocks (6, 12, 36, 24), k = 48."""
    from edgecnn.models.nets.densenet import DenseNet

    return DenseNet((6, 12, 36, 24), int(growth_rate), 2 * int(growth_rate), num_classes=num_classes, in_chans=in_chans)
