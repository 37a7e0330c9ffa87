"""Per-tensor calibration choice: for each activation, the candidate range whose uint8 quantization is closest to fp32.

Each candidate method (minmax, percentile, entropy…) gives every activation a
range. One fp32 pass over the calibration samples (``layerwise.tensor_batches``)
fake-quantizes each tensor with each candidate's range — uint8 asymmetric, the
scale and zero point as ONNX Runtime's quantizer derives them — and keeps, per
tensor, the range of the best SQNR. ONNX Runtime gives a fused Relu/Clip's input
the range of its output, so the output's choice is the one that applies there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.layerwise import SQNR_CAP_DB, tensor_batches
from edgecnn.runtime.outputs import Inputs

Ranges = dict[str, tuple[np.ndarray, np.ndarray]]  # tensor → (lowest, highest): float32 scalars or 1-element arrays


def uint8_params(lowest: np.ndarray, highest: np.ndarray) -> tuple[np.float32, np.uint8]:
    """Scale and zero point of a uint8 asymmetric activation of range [lowest, highest] (ORT's ``compute_scale_zp``)."""
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    qmin, qmax = get_qmin_qmax_for_qType(TensorProto.UINT8)
    low, high = (
        np.float32(np.asarray(v, np.float32).item()) for v in (lowest, highest)
    )  # a cache stores 1-element arrays
    zero_point, scale = compute_scale_zp(low, high, qmin, qmax)
    return np.float32(scale), np.uint8(zero_point)


def fake_quantize(values: np.ndarray, scale: np.float32, zero_point: np.uint8) -> np.ndarray:
    """``values`` through QuantizeLinear → DequantizeLinear (uint8, round half to even, saturating)."""
    q = np.clip(np.round(values.astype(np.float32) / scale) + np.float32(zero_point), 0, 255)
    return (q - np.float32(zero_point)) * scale


def _sqnr(signal: float, noise: float) -> float:
    """SQNR in dB from the summed squares (as ``metrics.sqnr_db``), capped at ``SQNR_CAP_DB``."""
    if noise == 0:
        return SQNR_CAP_DB
    return min(SQNR_CAP_DB, float(10 * np.log10(signal / noise))) if signal > 0 else float("-inf")


@dataclass(frozen=True)
class Choice:
    """Which candidate each tensor took, and every candidate's SQNR (dB, capped) per tensor."""

    chosen: dict[str, str]
    sqnr_db: dict[str, dict[str, float]]

    def counts(self, methods: tuple[str, ...]) -> dict[str, int]:
        """How many tensors took each of ``methods`` (every one listed, 0 included)."""
        return {m: sum(c == m for c in self.chosen.values()) for m in methods}

    def mean_sqnr_db(self) -> dict[str, float]:
        """Mean SQNR over the tensors, per candidate and for the choice (``auto``)."""
        if not self.sqnr_db:
            return {}
        methods = next(iter(self.sqnr_db.values()))
        means = {m: float(np.mean([s[m] for s in self.sqnr_db.values()])) for m in methods}
        means["auto"] = float(np.mean([self.sqnr_db[t][m] for t, m in self.chosen.items()]))
        return {m: round(v, 3) for m, v in means.items()}

    def to_dict(self, methods: tuple[str, ...]) -> dict[str, Any]:
        """JSON-ready: counts per method, mean SQNRs, and the method of every tensor."""
        return {"counts": self.counts(methods), "mean_sqnr_db": self.mean_sqnr_db(), "tensors": dict(self.chosen)}


def choose_ranges(model_path: Path, candidates: dict[str, Ranges], images: Inputs) -> Choice:
    """For each tensor every candidate ranges (``{method: {tensor: (lowest, highest)}}``, in order of preference:
    a tie goes to the first), the candidate whose range quantizes the tensor of the fp32 model at ``model_path``
    on ``images`` with the best SQNR."""
    names = sorted(set.intersection(*(set(r) for r in candidates.values()))) if candidates else []
    return choose_from_batches(tensor_batches(model_path, names, images), candidates)


def choose_from_batches(batches: Iterable[dict[str, np.ndarray]], candidates: dict[str, Ranges]) -> Choice:
    """:func:`choose_ranges` on tensor values given batch by batch (``{tensor: values}``; the tensors every
    candidate has a range for)."""
    methods = list(candidates)
    names = sorted(set.intersection(*(set(r) for r in candidates.values()))) if methods else []
    params = {m: {t: uint8_params(*candidates[m][t]) for t in names} for m in methods}
    signal = dict.fromkeys(names, 0.0)
    noise = {t: dict.fromkeys(methods, 0.0) for t in names}
    for batch in batches:
        for name in (n for n in names if n in batch):  # a tensor never given keeps the first candidate
            values = np.asarray(batch[name], np.float32)
            signal[name] += float(np.sum(np.square(values, dtype=np.float64)))
            for method in methods:
                error = values - fake_quantize(values, *params[method][name])
                noise[name][method] += float(np.sum(np.square(error, dtype=np.float64)))
    sqnr = {t: {m: _sqnr(signal[t], noise[t][m]) for m in methods} for t in names}
    chosen = {t: max(methods, key=lambda m, t=t: sqnr[t][m]) for t in names}
    return Choice(chosen, sqnr)
