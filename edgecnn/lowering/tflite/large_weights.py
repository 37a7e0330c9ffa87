"""Per-channel int8 weights of more than 32 MiB through ai-edge-quantizer.

ai-edge-quantizer quantizes a float tensor above 32 MiB in chunks of its leading dimension: it flattens the
tensor to two dimensions and broadcasts the per-channel scales (of the tensor's rank) to that shape, which numpy
refuses ("input operand has more dimensions than allowed by the axis remapping"). Every per-channel weight that
large failed (a 3×3 convolution of 2048 input and 512 output channels, 37.7 MB: torchvision's FCN-ResNet50 head),
per tensor too. While :func:`large_weights_split` is open such a tensor is quantized in slices, each below the
limit — along its quantized dimension, or its first for one scale — by ai-edge-quantizer's own function: the same
integers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

CHUNKED_ABOVE = 32 * 1024 * 1024  # bytes: ai-edge-quantizer's chunked path takes tensors larger than this


def _per_channel(values: Any, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``values`` (scales or zero points) with one entry per index of ``axis``, shaped to broadcast against
    ``shape``; None when they are not per channel along ``axis``."""
    array = np.asarray(values)
    if array.size != shape[axis] or array.size < 2:
        return None
    return array.reshape([shape[axis] if d == axis else 1 for d in range(len(shape))])


def split_quantize(quantize: Callable[..., np.ndarray], above: int = CHUNKED_ABOVE) -> Callable[..., np.ndarray]:
    """``quantize`` (ai-edge-quantizer's ``uniform_quantize``) taking a tensor above ``above`` bytes in slices along
    its quantized dimension (per tensor: its first), each about that large; anything else as it is."""

    def uniform_quantize(tensor_data: np.ndarray, quantization_params: Any, is_blockwise_quant: bool = False):
        if is_blockwise_quant or tensor_data.nbytes <= above or tensor_data.ndim < 2:
            return quantize(tensor_data, quantization_params, is_blockwise_quant)
        shape, axis = tensor_data.shape, quantization_params.quantized_dimension
        one_scale = np.asarray(quantization_params.scale).size == 1  # per tensor: every slice takes the same
        scale = None if one_scale or axis is None else _per_channel(quantization_params.scale, shape, axis)
        zero = None if scale is None else _per_channel(quantization_params.zero_point, shape, axis)
        if not one_scale and (scale is None or zero is None):
            return quantize(tensor_data, quantization_params, is_blockwise_quant)
        axis = 0 if one_scale else axis
        step = max(1, shape[axis] // math.ceil(tensor_data.nbytes / above))
        parts = []
        for start in range(0, shape[axis], step):
            index = tuple(slice(start, start + step) if d == axis else slice(None) for d in range(len(shape)))
            part = quantization_params
            if not one_scale:
                part = dataclasses.replace(quantization_params, scale=scale[index], zero_point=zero[index])
            parts.append(quantize(tensor_data[index], part, False))
        return np.concatenate(parts, axis=axis)

    return uniform_quantize


@contextlib.contextmanager
def large_weights_split() -> Iterator[None]:
    """While inside, ai-edge-quantizer quantizes tensors above 32 MiB slice by slice."""
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as module

    original = module.uniform_quantize
    module.uniform_quantize = split_quantize(original)
    try:
        yield
    finally:
        module.uniform_quantize = original
