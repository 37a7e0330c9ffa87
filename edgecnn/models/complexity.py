"""Parameter and multiply-accumulate counts, measured from the network's own operators.

MACs are counted by running the forward pass under ``torch.utils.flop_counter``
on the meta device: every convolution and matrix product the graph really
executes is counted from its shapes, and no arithmetic is done, so even
EfficientNet-B7 at 600² is counted in milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torch.utils.flop_counter import FlopCounterMode

from edgecnn.models.registry import create_model, get_model_info


def _deform_conv_flops(x_shape, w_shape, offset_shape, mask_shape, bias_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of torchvision's deform_conv2d: those of the convolution it computes (2 per MAC)."""
    per_output = w_shape[1] * w_shape[2] * w_shape[3]
    return 2 * int(torch.Size(out_shape).numel()) * per_output


_CUSTOM_FLOPS = {torch.ops.torchvision.deform_conv2d: _deform_conv_flops}


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of a batch-1 input of ``input_size`` (C, H, W)."""
    first = next(iter(model.parameters()), None)  # a model may have no parameters at all
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as counter, torch.no_grad():
            model(torch.empty(1, *input_size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def describe_model(name: str, **options: Any) -> dict[str, Any]:
    """Name, family, params, MACs and default input size of a zoo model, built on the meta device."""
    info = get_model_info(name)
    with torch.device("meta"):
        model = create_model(name, **options)
    return {
        "name": info.name,
        "family": info.family,
        "params": count_params(model),
        "macs": count_macs(model, model.input_size),
        "input_size": list(model.input_size),
        "scaling": model.scaling,
        "reference": {k: v for k, v in vars(info.reference).items() if v not in (None, "")},
        "description": info.description,
    }
