"""TensorFlow's SAME padding, as TFLite's convolutions and pools compute it."""

from __future__ import annotations

import math
from collections.abc import Sequence


def tf_same_pads(in_hw: Sequence[int], extents: Sequence[int], strides: Sequence[int]) -> tuple[int, int, int, int]:
    """The pads of SAME padding over an input of ``in_hw`` for a window of dilated ``extents`` and ``strides`` (H, W),
    in ONNX order (top, left, bottom, right): the output is ceil(size / stride); the odd pixel goes after."""
    begin, end = [], []
    for size, extent, stride in zip(in_hw, extents, strides, strict=True):
        total = max((math.ceil(size / stride) - 1) * stride + extent - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin[0], begin[1], end[0], end[1]
