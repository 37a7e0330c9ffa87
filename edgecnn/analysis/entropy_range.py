"""The entropy (KL-divergence) calibration thresholds of ONNX Runtime's ``HistogramCollector``, vectorised.

ORT's entropy method picks, per tensor, the symmetric window of its histogram whose 128-level quantization
loses the least information: for every candidate window (``num_quantized_bins // 2`` … ``num_bins // 2`` bins
either side of the centre bin) the reference ``p`` is the window with the outside counts folded into its two
end bins, the candidate ``q`` the window merged into ``num_quantized_bins`` groups of ``len // num_quantized_bins``
bins (the last taking the remainder's count), each group's count spread evenly (truncated to an integer) over
the bins where ``p`` is non-zero — over all bins of the group, the remainder bins staying 0. Both are smoothed
(zeros get ``eps``, the non-zeros give the same mass back) and their KL divergence is computed in float32,
rounded to the histogram edges' dtype; the first window with the least divergence wins, its edges clipped to
the tensor's min and max. ORT loops over ~1000 windows × 128 groups in Python: about 0.5 s a tensor at 2048 bins.

Here the same search costs a few milliseconds: the divergence of every window is computed at once in float64
from prefix sums (blocks, zeros, ``x log x`` of the smoothed counts by a series in the smoothing amount), and
only the windows that can still be ORT's minimum — those within a bound of float32's rounding of the least
— are evaluated again exactly as ORT does (the same float32 operations in the same order, one window at a
time), so the chosen window, ties included, is ORT's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 0.0001  # the smoothing amount of ORT's smooth_distribution
_U32 = float(np.finfo(np.float32).eps)
# |ORT's float32 divergence - the exact one| ≤ _BOUND · u32 · (2 ln n + |KL| + 2): the error of float32
# rounding the counts, smoothing, normalising (pairwise sums), dividing, the logarithm and the sum is below
# ~(log2 n + 10) u32 times Σ p |ln(p/q)| + 1 ≤ 2 H(p) + KL + 1. Measured below 2 on the tests' histograms (they
# assert ≤ _BOUND / 8); the margin costs only a few more exact evaluations near the minimum.
_BOUND = 64.0
_SERIES = 16  # terms of Σ (h - e) ln(h - e) around h ln h; e/h ≤ 0.21, so the remainder is < 1e-12 relative


def _windows(num_bins: int, num_quantized_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidate windows' first bins and ends (exclusive), in ORT's order."""
    zero, half = num_bins // 2, num_quantized_bins // 2
    if zero - half + 1 <= 0:
        raise ValueError(f"a histogram of {num_bins} bins has no window of {num_quantized_bins} quantized bins")
    i = np.arange(half, zero + 1, dtype=np.int64)
    return zero - i, np.minimum(zero + i + 1, num_bins)


def _xlogx(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _approximate(hist: np.ndarray, starts: np.ndarray, ends: np.ndarray, nq: int) -> np.ndarray:
    """Every window's smoothed KL divergence in float64 (inf where ORT's smoothing gives up: p or q all 0)."""
    h = hist.astype(np.int64)
    hf = h.astype(np.float64)
    nonzero = h != 0
    cum = np.concatenate(([0], np.cumsum(h)))  # exact integer prefix sums
    cnz = np.concatenate(([0], np.cumsum(nonzero, dtype=np.int64)))
    total = int(cum[-1])
    n = ends - starts
    m = n // nq
    rest = n - nq * m  # bins after the last group: q is 0 there
    last = ends - 1
    left, right = cum[starts], total - cum[ends]
    p0, pn = h[starts] + left, h[last] + right  # the window's end bins with the outside counts folded in
    p0_nz, pn_nz = (p0 != 0).astype(np.int64), (pn != 0).astype(np.int64)
    h0_nz, hn_nz = nonzero[starts].astype(np.int64), nonzero[last].astype(np.int64)

    # q: group sums of the window (no outside counts), the last group with the remainder; spread over p's non-zeros
    bounds = starts[:, None] + np.arange(nq + 1)[None, :] * m[:, None]  # C × (nq + 1)
    group = np.diff(cum[bounds], axis=1)  # C × nq
    group_p = group.copy()  # p's group sums: the outside counts in the end bins, no remainder
    group[:, -1] += cum[ends] - cum[bounds[:, -1]]
    norm = np.diff(cnz[bounds], axis=1)  # non-zeros of p per group
    has_groups = m > 0
    norm[has_groups, 0] += (p0_nz - h0_nz)[has_groups]
    group_p[has_groups, 0] += left[has_groups]
    end_in_group = has_groups & (rest == 0)  # the window's last bin closes the last group
    norm[end_in_group, -1] += (pn_nz - hn_nz)[end_in_group]
    group_p[end_in_group, -1] += right[end_in_group]
    level = np.zeros(group.shape, dtype=np.float64)
    np.divide(group, norm, out=level, where=norm != 0)
    level = level.astype(np.int64)  # ORT assigns the float quotient to an int64 array: truncation
    q_sum = m * level.sum(axis=1)
    q_zeros = m * (level == 0).sum(axis=1) + rest
    q_nonzeros = n - q_zeros

    # p's non-zeros and the smoothing amounts
    p_nonzeros = cnz[last] - cnz[starts + 1] + p0_nz + pn_nz
    p_zeros = n - p_nonzeros
    dead = (total == 0) | (q_nonzeros == 0) | (p_nonzeros == 0)
    e_p = EPS * p_zeros / np.maximum(p_nonzeros, 1)
    e_q = EPS * q_zeros / np.maximum(q_nonzeros, 1)

    # Σ p_s ln p_s: end bins directly; inner non-zeros by the series of (h - e) ln(h - e) in e; inner zeros eps ln eps
    def smoothed_xlogx(x: np.ndarray) -> np.ndarray:
        return np.where(x != 0, _xlogx(x - e_p), EPS * np.log(EPS))

    inner = (starts + 1, last)  # [starts + 1, last)
    safe_h = np.where(nonzero, hf, 1.0)

    def inner_sum(values: np.ndarray) -> np.ndarray:
        c = np.concatenate(([0.0], np.cumsum(values)))
        return c[inner[1]] - c[inner[0]]

    s_hlogh = inner_sum(_xlogx(hf))
    s_log1 = inner_sum(np.where(nonzero, np.log(safe_h) + 1.0, 0.0))
    plogp = s_hlogh - e_p * s_log1
    for k in range(2, _SERIES + 2):
        plogp = plogp + e_p**k / (k * (k - 1)) * inner_sum(np.where(nonzero, safe_h ** (1 - k), 0.0))
    inner_zeros = (n - 2) - (cnz[last] - cnz[starts + 1])
    plogp = plogp + inner_zeros * EPS * np.log(EPS) + smoothed_xlogx(p0) + smoothed_xlogx(pn)

    # Σ p_s ln q_s: q_s is constant per group (level - e_q, or eps where 0) and eps on the remainder
    group_ps = group_p - e_p[:, None] * norm + EPS * (m[:, None] - norm)
    q_s = np.where(level != 0, level - e_q[:, None], EPS)
    cross = (group_ps * np.log(q_s)).sum(axis=1)
    rest_start = bounds[:, -1]
    rest_nz = cnz[ends] - cnz[rest_start] + np.where(rest > 0, pn_nz - hn_nz, 0)
    rest_p = cum[ends] - cum[rest_start] + np.where(rest > 0, right, 0)
    rest_ps = rest_p - e_p * rest_nz + EPS * (rest - rest_nz)
    cross = cross + rest_ps * np.log(EPS)

    # smoothing keeps the sums: Σ p_s = total, Σ q_s = Σ q
    p_total = float(max(total, 1))
    kl = (plogp - cross) / p_total + np.log(np.maximum(q_sum, 1) / p_total)
    return np.where(dead, np.inf, kl)


def _smoothed(counts: np.ndarray) -> np.ndarray | None:
    """ORT's smoothing of a count vector, its float32 values bit for bit (None when all counts are 0)."""
    zeros = counts == 0
    n_zeros = int(zeros.sum())
    n_nonzeros = counts.size - n_zeros
    if n_nonzeros == 0:
        return None
    give_back = np.float32(-(EPS * float(n_zeros) / float(n_nonzeros)))
    return np.where(zeros, np.float32(EPS), counts.astype(np.float32) + give_back).astype(np.float32)


def _exact(hist: np.ndarray, start: int, end: int, nq: int, dtype: np.dtype) -> float:
    """One window's divergence as ORT computes it: integer p and q, then float32 smoothing, normalisation
    (numpy's pairwise sums over the window, as ORT's), logarithm and sum; rounded to ``dtype``."""
    h = hist.astype(np.int64)
    window = h[start:end]
    p = window.copy()
    p[0] += h[:start].sum()
    p[-1] += h[end:].sum()
    n = window.size
    m = n // nq
    q = np.zeros(n, dtype=np.int64)
    if m > 0:
        groups = window[: nq * m].reshape(nq, m).sum(axis=1)
        groups[-1] += window[nq * m :].sum()
        norm = (p[: nq * m] != 0).reshape(nq, m).sum(axis=1)
        level = np.zeros(nq, dtype=np.float64)
        np.divide(groups, norm, out=level, where=norm != 0)
        q[: nq * m] = np.repeat(level.astype(np.int64), m)
    ps, qs = _smoothed(p), _smoothed(q)
    if ps is None or qs is None:
        return float(np.array(np.inf, dtype=dtype))
    pk = ps / np.sum(ps, axis=0, keepdims=True)
    qk = qs / np.sum(qs, axis=0, keepdims=True)
    terms = pk * np.log(pk / qk)
    terms[(pk == 0) & (qk >= 0)] = 0
    terms[~((pk > 0) & (qk > 0))] = np.inf
    return float(np.array(np.sum(terms, axis=0).astype(np.float32), dtype=dtype))


def entropy_window(
    hist: np.ndarray, num_quantized_bins: int = 128, dtype: Any = np.float32
) -> tuple[int, int, np.ndarray]:
    """The window ORT's entropy search picks: (first bin, end bin) and every window's approximate divergence."""
    hist = np.asarray(hist)
    dtype = np.dtype(dtype)
    starts, ends = _windows(hist.size, num_quantized_bins)
    approx = _approximate(hist, starts, ends, num_quantized_bins)
    finite = np.isfinite(approx)
    if not finite.any():  # every divergence inf: argmin takes the first
        return int(starts[0]), int(ends[0]), approx
    kl = np.where(finite, approx, 0.0)
    slack = _BOUND * _U32 * (2.0 * np.log(ends - starts) + np.abs(kl) + 2.0)
    if dtype.kind == "f" and dtype.itemsize < 4:  # the divergence is stored rounded to the edges' dtype
        slack = slack + float(np.finfo(dtype).eps) * (np.abs(kl) + 1.0)
    # ORT's minimum is within its float32 error of ours: only these windows can be it
    candidates = np.flatnonzero(finite & (kl - slack <= np.min((kl + slack)[finite])))
    exact = [_exact(hist, int(starts[c]), int(ends[c]), num_quantized_bins, dtype) for c in candidates]
    best = candidates[int(np.argmin(exact))]  # the first of equals, as ORT's argmin
    return int(starts[best]), int(ends[best]), approx


def entropy_threshold(histogram: tuple, num_quantized_bins: int = 128) -> tuple[Any, Any]:
    """ORT's entropy range of one tensor from its collected ``(hist, hist_edges, min, max, …)``: the chosen
    window's edges (numpy scalars of the edges' dtype), clipped to the tensor's min and max."""
    hist, edges, low, high = histogram[:4]
    start, end, _ = entropy_window(hist, num_quantized_bins, edges.dtype)
    lowest, highest = edges[start], edges[end]
    if lowest < low:
        lowest = low
    if highest > high:
        highest = high
    return lowest, highest


def entropy_ranges(histogram_dict: dict[str, tuple], num_quantized_bins: int = 128) -> dict[str, tuple]:
    """Per tensor what ORT's ``HistogramCollector.compute_entropy`` returns: (lowest, highest, hist, edges)."""
    return {
        name: (*entropy_threshold(histogram, num_quantized_bins), *histogram[:2])
        for name, histogram in histogram_dict.items()
    }
