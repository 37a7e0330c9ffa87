"""The mean output of a linear layer over a mean input: what a bias correction takes out of a layer's bias.

A convolution is linear, so the mean over samples and output positions of ``conv(w, x)`` is the convolution of
``w`` with the mean input map, averaged over output positions — padding included, which is why the window means
are taken tap by tap rather than over the whole map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The calibration samples a bias correction measures its means on: all of them, fewer for large inputs — about
# this many pixels of one channel in all (128 samples up to 90², 20 at 224²): a mean over that many positions is
# steady, and at 224² the pass over all 128 samples cost ORT 14 s of MobileNet's 20-s export.
CORRECTION_PIXELS = 1 << 20


def conv_mean_response(
    weight: np.ndarray,
    mean_map: np.ndarray,
    groups: int = 1,
    pads: Sequence[int] = (0, 0, 0, 0),
    strides: Sequence[int] = (1, 1),
    dilations: Sequence[int] = (1, 1),
) -> np.ndarray:
    """Per output channel, the mean over output positions of a bias-free 2-D convolution of ``weight``
    (O × C/groups × kh × kw) with the input ``mean_map`` (C × H × W); ``pads`` in ONNX order (top, left, bottom,
    right), zeros. Exact for strides, dilations and groups."""
    kh, kw = weight.shape[2:]
    c, h, wd = mean_map.shape
    padded = np.pad(mean_map, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    out_h = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    # window[i, y, x]: the mean over output positions of the input seen by kernel tap (y, x) in channel i
    window = np.empty((c, kh, kw))
    for y in range(kh):
        for x in range(kw):
            top, left = y * dilations[0], x * dilations[1]
            rows = slice(top, top + strides[0] * (out_h - 1) + 1, strides[0])
            cols = slice(left, left + strides[1] * (out_w - 1) + 1, strides[1])
            window[:, y, x] = padded[:, rows, cols].mean(axis=(1, 2))
    per_group_in, per_group_out = c // groups, weight.shape[0] // groups
    response = np.empty(weight.shape[0])
    for g in range(groups):
        outs = slice(g * per_group_out, (g + 1) * per_group_out)
        ins = window[g * per_group_in : (g + 1) * per_group_in]
        response[outs] = np.einsum("oiyx,iyx->o", weight[outs], ins)
    return response


def dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    """Integer weights ``q`` as the floats they stand for, ``(q - zero) * scale``: one scale (and zero point) per
    tensor, or one per index of ``axis``; no zero point is zero."""
    q, scale = np.asarray(q, np.float64), np.asarray(scale, np.float64)
    zero = np.zeros_like(scale) if zero is None else np.asarray(zero, np.float64)
    if scale.size == 1:
        return (q - zero.reshape(())) * scale.reshape(())
    shape = [1] * q.ndim
    shape[axis % q.ndim] = -1
    return (q - zero.reshape(shape)) * scale.reshape(shape)


def correction_record(shifts: Sequence[np.ndarray], samples: int) -> dict[str, float | int]:
    """What a bias correction changed: the layers, and the mean and largest absolute shift per output channel (in
    the layers' output units); and the calibration samples it measured them on."""
    values = np.concatenate([np.abs(np.ravel(s)) for s in shifts]) if len(shifts) else np.zeros(0)
    return {
        "layers": len(shifts),
        "samples": samples,
        "mean_abs_shift": round(float(values.mean()), 6) if values.size else 0.0,
        "max_abs_shift": round(float(values.max()), 6) if values.size else 0.0,
    }
