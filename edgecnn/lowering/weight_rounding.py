"""Error-compensating rounding of int8 weights (the OBQ/GPTQ update of Frantar et al., "Optimal Brain
Compression", NeurIPS 2022, and "GPTQ", ICLR 2023, on a convolution's unfolded input).

Rounding each weight to its nearest grid point ignores what the layer's inputs do with the errors. With
``H = E[x xᵀ]`` over the layer's input patches, the output error of a row's weight error ``δ`` is ``δ H δᵀ``.
The weights are rounded one input column at a time (largest ``H`` diagonal first), and each rounding error is
spread over the columns not yet rounded so as to cancel its effect on the output, through the Cholesky factor
of ``H⁻¹``. The grid (one scale per output channel, or per tensor) is the nearest rounding's, unchanged: every
row keeps its largest weight on the grid's end, so a quantizer that derives the scale from the weights finds
the same one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

DAMPING = 0.01  # of H's mean diagonal, added to it: H is singular where inputs are correlated or never vary
BLOCK = 64  # columns rounded before the rest is updated at once (the same result, fewer passes over W)
# Samples whose layer inputs are unfolded together (fewer, larger products): until the largest input held has this
# many values (2 MB of float32; a 3 × 3 convolution's patches of it, 19 MB).
CHUNK_VALUES = 1 << 19


def patches(
    x: np.ndarray,
    kernel: Sequence[int],
    groups: int = 1,
    pads: Sequence[int] = (0, 0, 0, 0),
    strides: Sequence[int] = (1, 1),
    dilations: Sequence[int] = (1, 1),
) -> np.ndarray:
    """The input patches of a 2-D convolution of ``x`` (N × C × H × W): groups × positions × (C/groups · kh ·
    kw), in the weight's (channel, row, column) order; ``pads`` in ONNX order (top, left, bottom, right)."""
    kh, kw = kernel
    n, c = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    span = (dilations[0] * (kh - 1) + 1, dilations[1] * (kw - 1) + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    windows = windows[:, :, :: strides[0], :: strides[1], :: dilations[0], :: dilations[1]]
    oh, ow = windows.shape[2:4]
    per_group = c // groups
    grouped = windows.reshape(n, groups, per_group, oh, ow, kh, kw)
    return grouped.transpose(1, 0, 3, 4, 2, 5, 6).reshape(groups, n * oh * ow, per_group * kh * kw)


def input_moments(columns: np.ndarray) -> np.ndarray:
    """``Σ x xᵀ`` over positions of per-group input columns (groups × positions × D): groups × D × D, float32 (a
    network's worth of them is held at once; the rounding works in float64)."""
    columns = np.ascontiguousarray(columns, dtype=np.float32)
    return np.matmul(columns.transpose(0, 2, 1), columns)


def grid_scales(weight: np.ndarray, qmax: int, per_channel: bool) -> np.ndarray:
    """The symmetric grid's scale per row of ``weight`` (rows × D): its largest magnitude over ``qmax``, one per
    row or the tensor's for all."""
    largest = np.abs(weight).max(axis=1) if per_channel else np.full(len(weight), np.abs(weight).max())
    return largest / qmax


def lower_inverse(lower: np.ndarray) -> np.ndarray:
    """The inverse of lower-triangular matrices (… × n × n), by halves: a third of a general inverse's work."""
    n = lower.shape[-1]
    if n <= BLOCK:
        return np.linalg.inv(lower)
    k = n // 2
    first, last = lower_inverse(lower[..., :k, :k]), lower_inverse(lower[..., k:, k:])
    out = np.zeros_like(lower)
    out[..., :k, :k], out[..., k:, k:] = first, last
    out[..., k:, :k] = -last @ lower[..., k:, :k] @ first
    return out


def inverse_factor(h: np.ndarray) -> np.ndarray:
    """The upper-triangular ``U`` with ``H⁻¹ = Uᵀ U`` of positive-definite matrices (… × n × n), without inverting
    ``H``: with ``J`` the reversal, ``U = J L⁻¹ J`` where ``L`` is the Cholesky factor of ``J H J``."""
    reversed_ = h[..., ::-1, ::-1]
    return lower_inverse(np.linalg.cholesky(reversed_))[..., ::-1, ::-1]


def round_rows(weight: np.ndarray, moments: np.ndarray, scales: np.ndarray, qmax: int) -> np.ndarray:
    """Integers for ``weight`` (groups × rows × D) on the grid ``scales`` (groups × rows; 0: the row stays 0)
    in [-qmax, qmax], rounded with error compensation under each group's input moments (groups × D × D)."""
    groups, rows, width = weight.shape
    h = moments.astype(np.float64)
    diagonal = np.einsum("gii->gi", h)
    dead = diagonal <= 0
    live = np.where(dead, 0.0, diagonal)
    typical = live.sum(axis=1, keepdims=True) / np.maximum((~dead).sum(axis=1, keepdims=True), 1)
    typical[typical <= 0] = 1.0
    # an input that is always 0: its weight does not matter, rounded to nearest; its diagonal takes the typical
    # live one, so that the damping scales with the inputs
    diagonal[dead] = np.broadcast_to(typical, diagonal.shape)[dead]
    diagonal += DAMPING * typical
    order = np.argsort(-diagonal, axis=1, kind="stable")  # the columns the inputs use most first
    inverse = np.argsort(order, axis=1)
    h = np.take_along_axis(np.take_along_axis(h, order[:, :, None], 1), order[:, None, :], 2)
    factor = inverse_factor(h)
    w = np.take_along_axis(weight.astype(np.float64), order[:, None, :], 2)
    safe = np.where(scales > 0, scales, 1.0)[..., None]
    q = np.zeros_like(w)
    for start in range(0, width, BLOCK):
        end = min(start + BLOCK, width)
        errors = np.zeros((groups, rows, end - start))
        for i in range(start, end):
            column = w[:, :, i : i + 1]
            q[:, :, i : i + 1] = np.clip(np.rint(column / safe), -qmax, qmax)
            error = (column - q[:, :, i : i + 1] * safe) / factor[:, i, i][:, None, None]
            w[:, :, i:end] -= error * factor[:, None, i, i:end]
            errors[:, :, i - start] = error[:, :, 0]
        w[:, :, end:] -= np.matmul(errors, factor[:, start:end, end:])
    q = np.take_along_axis(q, inverse[:, None, :], 2)
    q[scales == 0] = 0
    return q


def keep_grid_ends(q: np.ndarray, weight: np.ndarray, qmax: int, per_channel: bool) -> np.ndarray:
    """``q`` (rows × D) with each row's (per tensor: the tensor's) largest original weight back on ±qmax where
    nothing reaches the grid's end, so that the grid derived from the rounded weights is the original one."""
    q = q.copy()
    rows = range(len(q)) if per_channel else [int(np.abs(weight).max(axis=1).argmax())]
    for row in rows:
        if weight[row].any() and np.abs(q if not per_channel else q[row]).max() < qmax:
            column = int(np.abs(weight[row]).argmax())
            q[row, column] = np.sign(weight[row, column]) * qmax
    return q


def round_layer(
    rows: np.ndarray, moments: np.ndarray, scales: np.ndarray, qmax: int, per_channel: bool
) -> tuple[np.ndarray, int]:
    """A layer's weights (groups × rows × D) rounded with error compensation on the grid ``scales`` (one per row,
    groups × rows), its ends kept: the grid values (float64, same shape), and how many integers differ from the
    nearest rounding's."""
    groups, count, width = rows.shape
    flat = rows.reshape(groups * count, width).astype(np.float64)
    q = round_rows(rows, moments, scales, qmax).reshape(flat.shape)
    q = keep_grid_ends(q, flat, qmax, per_channel)
    step = scales.reshape(-1, 1)
    nearest = np.clip(np.rint(flat / np.where(step > 0, step, 1.0)), -qmax, qmax)
    return (q * step).reshape(rows.shape), int((q != nearest).sum())


def rounding_record(sizes: Iterable[int], moved: Iterable[int], samples: int) -> dict[str, Any]:
    """What a rounding did to some weight tensors (their sizes, and the integers it moved off the nearest rounding
    in each): the layers, the calibration samples measured and the share of weights moved."""
    sizes, moved = list(sizes), list(moved)
    total = sum(sizes)
    return {
        "layers": len(sizes),
        "samples": samples,
        "weights_moved": round(sum(moved) / total, 4) if total else 0.0,
    }


def chunked(batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Batches of named layer inputs joined along the samples until the largest holds ``CHUNK_VALUES`` values (the
    last chunk as it is): the inputs a rounding unfolds together."""
    held: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for name, value in batch.items():
            held.setdefault(name, []).append(value)
        if held and max(sum(part.size for part in parts) for parts in held.values()) >= CHUNK_VALUES:
            yield {name: parts[0] if len(parts) == 1 else np.concatenate(parts) for name, parts in held.items()}
            held = {}
    if held:
        yield {name: parts[0] if len(parts) == 1 else np.concatenate(parts) for name, parts in held.items()}
