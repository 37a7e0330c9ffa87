"""edgecnn's vectorised entropy search finds ORT's thresholds: the same window, ties included, bit for bit.

The reference is ORT's own ``HistogramCollector`` on the same histograms: its chosen thresholds, and every
window's divergence as ORT computes it (recorded from the ``entropy`` call of its loop).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from onnxruntime.quantization import calibrate

from edgecnn.analysis import entropy_range
from edgecnn.analysis.entropy_range import _approximate, _exact, _windows, entropy_ranges, entropy_threshold

RNG = np.random.default_rng(0)
DATA = {  # (values, number of collect() calls: more than one grows the histogram past its first bins)
    "normal": (RNG.normal(0, 1, 20000), 1),
    "heavy_tailed": (RNG.standard_cauchy(20000), 1),
    "relu": (np.maximum(RNG.normal(0.3, 1, 20000), 0), 1),
    "spike": (np.concatenate([np.zeros(20000), RNG.normal(0, 0.01, 500), [50.0]]), 1),
    "zeros": (np.zeros(1000), 1),
    "constant": (np.full(1000, 3.0), 1),
    "two_points": (np.repeat([-5.0, 5.0], 500), 1),
    "growing": (RNG.normal(0, 1, 20000) * np.linspace(0.2, 3, 20000), 4),
    "float16": (RNG.normal(0, 1, 20000).astype(np.float16), 1),  # edges and divergences rounded to float16
}


def collector(num_bins: int) -> calibrate.HistogramCollector:
    return calibrate.HistogramCollector(
        method="entropy", symmetric=False, num_bins=num_bins, num_quantized_bins=128, percentile=99.999, scenario="same"
    )


def collected(data: np.ndarray, calls: int, num_bins: int) -> calibrate.HistogramCollector:
    c = collector(num_bins)
    with contextlib.redirect_stdout(io.StringIO()):
        for part in np.array_split(data if data.dtype == np.float16 else data.astype(np.float32), calls):
            c.collect({"t": [part]})
    return c


def ort_divergences(monkeypatch, c: calibrate.HistogramCollector, histogram: tuple) -> tuple[tuple, list[float]]:
    """ORT's thresholds and the divergence of every window its smoothing does not reject, in its order."""
    seen: list[float] = []

    def recording(p, q):
        value = real(p, q)
        seen.append(float(np.array(value, dtype=histogram[1].dtype)))
        return value

    real = calibrate.entropy
    monkeypatch.setattr(calibrate, "entropy", recording)
    thresholds = c.get_entropy_threshold(histogram, 128)
    monkeypatch.setattr(calibrate, "entropy", real)
    return thresholds, seen


@pytest.mark.parametrize("name", list(DATA))
def test_thresholds_and_divergences_are_orts_bit_for_bit(monkeypatch, name):
    data, calls = DATA[name]
    num_bins = 2048 if name == "normal" else 512  # ORT's loops take ~0.6 s at 2048 bins
    c = collected(data, calls, num_bins)
    histogram = c.histogram_dict["t"]
    if name == "growing":
        assert histogram[0].size > num_bins  # the merge grew it: windows beyond the first bins are searched
    assert histogram[1].dtype == (np.float16 if name == "float16" else np.float32)
    (low, high), divergences = ort_divergences(monkeypatch, c, histogram)

    mine = entropy_threshold(histogram, 128)
    assert (mine[0], mine[1]) == (low, high)  # exact, not close: the same edge (or the same min/max)
    assert mine[0].dtype == low.dtype and mine[1].dtype == high.dtype

    hist = histogram[0]
    starts, ends = _windows(hist.size, 128)
    exact = [_exact(hist, int(s), int(e), 128, histogram[1].dtype) for s, e in zip(starts, ends, strict=True)]
    assert [k for k in exact if np.isfinite(k)] == divergences  # every window's float32 divergence, equal bits

    # The screening: the float64 divergences are within the float32 error bound of ORT's, with a wide margin.
    approx = _approximate(hist, starts, ends, 128)
    assert (np.isfinite(approx) == np.isfinite(exact)).all()
    finite = np.isfinite(approx)
    approx, exact, n = approx[finite], np.array(exact)[finite], (ends - starts)[finite]
    scale = entropy_range._U32 * (2 * np.log(n) + np.abs(approx) + 2)
    rounding = float(np.finfo(np.float16).eps) * (np.abs(approx) + 1) if name == "float16" else 0  # as the search
    assert (np.abs(approx - exact) <= entropy_range._BOUND / 8 * scale + rounding).all()


@pytest.mark.parametrize(
    "data",
    [np.zeros(1000), np.concatenate([np.zeros(20000), np.random.default_rng(1).normal(0, 0.01, 500), [50.0]])],
    ids=["64_windows_at_zero", "near_tie"],
)
def test_ties_are_broken_as_orts_argmin(monkeypatch, data):
    """Where float32 rounding decides (equal divergences, or nearly equal): ORT's first float32 minimum wins,
    not the float64 one."""
    c = collected(data, 1, 512)
    histogram = c.histogram_dict["t"]
    (low, high), divergences = ort_divergences(monkeypatch, c, histogram)
    start, _, approx = entropy_range.entropy_window(histogram[0], 128, histogram[1].dtype)
    assert len(divergences) == approx.size  # no window rejected: ORT's argmin is over these
    assert start == _windows(histogram[0].size, 128)[0][int(np.argmin(divergences))]
    assert np.argmin(approx) != np.argmin(divergences)  # float64 alone would choose another window
    assert entropy_threshold(histogram, 128) == (low, high)


def test_compute_entropy_result_is_orts(monkeypatch):
    c = collector(256)
    with contextlib.redirect_stdout(io.StringIO()):
        c.collect({"a": [RNG.normal(0, 1, 3000).astype(np.float32)], "b": [np.zeros(10, np.float32)]})
        ort = c.compute_entropy()
    mine = entropy_ranges(c.histogram_dict, 128)
    assert mine.keys() == ort.keys()
    for name in ort:
        assert len(mine[name]) == len(ort[name]) == 4
        assert mine[name][:2] == ort[name][:2]
        assert mine[name][2] is ort[name][2] and mine[name][3] is ort[name][3]  # the histogram and edges


@pytest.mark.parametrize(
    "hist",
    [np.zeros(512, np.int64), np.eye(1, 512, 256, dtype=np.int64)[0], np.eye(1, 512, 0, dtype=np.int64)[0]],
    ids=["all_zero_counts", "one_count_at_centre", "one_count_at_the_edge"],
)
def test_degenerate_histograms_give_orts_thresholds(hist):
    edges = np.linspace(-1, 1, 513, dtype=np.float32)
    histogram = (hist, edges, np.float32(-1), np.float32(1), np.float32(1))
    with contextlib.redirect_stdout(io.StringIO()):
        ort = collector(512).get_entropy_threshold(histogram, 128)
    assert entropy_threshold(histogram, 128) == ort


def test_too_few_bins_for_the_quantized_bins_is_an_error():
    with pytest.raises(ValueError, match="no window"):
        entropy_threshold((np.ones(100, np.int64), np.linspace(-1, 1, 101, dtype=np.float32), -1, 1), 128)
