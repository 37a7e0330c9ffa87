"""Deformable convolution (DCNv1, and modulated DCNv2) on ``torchvision.ops.deform_conv2d``.

torchvision is imported when a layer first runs, not with the zoo: the other families never need it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.utils import _pair


class DeformConv2d(nn.Module):
    """A k×k convolution that samples its input at learned offsets.

    The offsets (and, when ``modulated``, the DCNv2 mask) are predicted from
    the input by a k×k convolution with the same stride, padding and dilation.
    That convolution is zero-initialised, and the mask is ``2·sigmoid(m)``, so an
    untrained layer computes exactly the plain convolution with ``weight`` and
    ``bias``: a DCN network starts as its plain twin.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        offset_groups: int = 1,
        bias: bool = True,
        modulated: bool = False,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}→{out_channels} are not divisible by groups={groups}")
        if in_channels % offset_groups:
            raise ValueError(f"in_channels {in_channels} is not divisible by offset_groups={offset_groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.offset_groups, self.modulated = groups, offset_groups, modulated
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = nn.Conv2d(
            in_channels,
            offset_groups * taps * (3 if modulated else 2),
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=True,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weights, as nn.Conv2d; zero offsets (and a unit mask)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)
        self.zero_init_offsets()

    def zero_init_offsets(self) -> None:
        """Zero the offset (and mask) predictor, so the layer acts as a plain convolution."""
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import deform_conv2d

        predicted = self.offset_conv(x)
        mask = None
        if self.modulated:
            n_offset = 2 * self.offset_groups * self.kernel_size[0] * self.kernel_size[1]
            offset, logits = predicted[:, :n_offset], predicted[:, n_offset:]
            mask = 2.0 * torch.sigmoid(logits)
        else:
            offset = predicted
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, offset_groups={self.offset_groups}, modulated={self.modulated}"
        )
