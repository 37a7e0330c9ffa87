"""Figures that compare a reference output with another: errors, agreement, cosine, SQNR."""

from __future__ import annotations

import math

import numpy as np


def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1) if a.ndim > 1 else a.reshape(1, -1)


def relative_max_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Max absolute error divided by the reference's range (max − min); 0 for identical outputs."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    error = float(np.max(np.abs(reference - other))) if reference.size else 0.0
    spread = float(reference.max() - reference.min()) if reference.size else 0.0
    if error == 0.0:
        return 0.0
    return error / spread if spread > 0 else float("inf")


def max_abs_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest absolute difference."""
    return float(np.max(np.abs(np.asarray(reference, np.float64) - np.asarray(other, np.float64))))


def top1_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of samples whose arg-max class is the same in both (N×classes logits)."""
    return float(np.mean(_flat(reference).argmax(1) == _flat(other).argmax(1)))


def top5_overlap(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean share of the reference's top-5 classes that are also in the other's top-5."""
    a, b = _flat(reference), _flat(other)
    k = min(5, a.shape[1])
    ta, tb = np.argsort(-a, 1)[:, :k], np.argsort(-b, 1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def mean_cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean per-sample cosine similarity of the outputs (1 for identical directions)."""
    a, b = _flat(reference), _flat(other)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), np.where(np.all(a == b, axis=1), 1.0, 0.0))
    return float(np.mean(cos))


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: 10·log10(Σref² / Σ(ref − other)²)."""
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    noise = float(np.sum((a - b) ** 2))
    signal = float(np.sum(a**2))
    if noise == 0:
        return float("inf")
    return 10 * np.log10(signal / noise) if signal > 0 else float("-inf")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy against integer labels."""
    return float(np.mean(_flat(logits).argmax(1) == np.asarray(labels)))


def compare(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """The standard comparison of two sets of logits, as recorded in manifests."""
    return {
        "top1": top1_agreement(reference, other),
        "top5_overlap": top5_overlap(reference, other),
        "cosine": mean_cosine(reference, other),
        "sqnr_db": sqnr_db(reference, other),
        "max_abs_error": max_abs_error(reference, other),
    }


def short_of(value: float, floor: float) -> str:
    """``value < floor`` in words, ``value`` with enough decimals to differ from ``floor`` as shown (0.99999998 <
    0.99999999, not 1.0000 < 0.99999999)."""
    decimals = len(repr(float(floor)).partition(".")[2].rstrip("0")) if "e" not in repr(float(floor)) else 10
    return f"{value:.{max(4, decimals + 1)}f} < {floor}"


def sign_p(ours: int, theirs: int) -> float:
    """Exact two-sided sign-test p of a split ``ours`` : ``theirs`` of discordant cases (each one only one side
    loses): the chance of a split at least this uneven, were both sides equally good (rounded to 4 places)."""
    n = ours + theirs
    tail = sum(math.comb(n, k) for k in range(min(ours, theirs) + 1)) / 2**n
    return round(min(1.0, 2 * tail), 4)
