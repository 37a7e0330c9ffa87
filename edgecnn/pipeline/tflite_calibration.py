"""Calibration methods for the int8 ``.tflite`` besides min-max: mean-of-extremes, percentile, entropy and ``auto``.

ai-edge-quantizer calibrates by each tensor's min and max. For the other methods of ``--method`` the fp32
``.tflite`` runs over the calibration samples with every tensor kept (LiteRT's reference kernels), and its own
activations are calibrated as the ORT path calibrates the ONNX graph's: the mean of each sample's extremes
(:func:`mean_extremes`, the graph inputs keeping min-max), ONNX Runtime's histogram collector with the
same options (:func:`calibrator_options`), ORT's percentile thresholds, and for entropy edgecnn's vectorised search
of ORT's thresholds (:mod:`edgecnn.analysis.entropy_range`). ``auto`` keeps per tensor the range of min-max,
percentile or entropy whose 8-bit quantization is closest to the fp32 values
(:mod:`edgecnn.analysis.calibration_choice`; an int8 asymmetric grid of 256 levels is the uint8 one shifted by 128).
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from edgecnn.analysis.calibration_choice import Choice, Ranges, choose_from_batches
from edgecnn.analysis.entropy_range import entropy_ranges
from edgecnn.config.recipes import AUTO, MEAN_MINMAX
from edgecnn.lowering.tflite.flatbuffer import parse, tensor_values
from edgecnn.pipeline.quantize import CALIBRATED, calibrator_options


def histogram_ranges(
    fp32: bytes,
    names: Sequence[str],
    samples: Sequence[Mapping[str, np.ndarray]],
    methods: Sequence[str],
    bins: int,
    percentile: float,
) -> dict[str, Ranges]:
    """Per method of ``methods`` (percentile, entropy), each tensor of ``names`` → its (lowest, highest) over
    ``samples``, from one pass of the fp32 model; a tensor whose histogram numpy cannot make (float32 bin edges of a
    large value with a tiny spread collide) is left out, so it keeps its min-max range."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    collectors = {}
    for method in methods:
        options = {"symmetric": False, "num_bins": bins, "num_quantized_bins": 128, "percentile": percentile}
        collectors[method] = HistogramCollector(
            method, scenario="same", **options | calibrator_options(method, bins, percentile)
        )
    refused: dict[str, set[str]] = {method: set() for method in methods}  # tensors numpy cannot bin
    with contextlib.redirect_stdout(io.StringIO()):  # ORT's collector prints its progress
        for batch in tensor_values(fp32, names, samples):
            for method, collector in collectors.items():
                for name in batch.keys() - refused[method]:
                    try:
                        collector.collect({name: batch[name]})
                    except ValueError:  # a large value of tiny spread: float32 bin edges collide; min-max stays
                        refused[method].add(name)
                        collector.histogram_dict.pop(name, None)
        found = {
            method: entropy_ranges(c.histogram_dict, c.num_quantized_bins)
            if method == "entropy"
            else c.compute_collection_result()
            for method, c in collectors.items()
        }
    return {m: {t: (np.float32(v[0]), np.float32(v[1])) for t, v in ranges.items()} for m, ranges in found.items()}


def one_sample_feeds(
    samples: Sequence[Mapping[str, np.ndarray]], count: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """The first ``count`` samples (all when None) of the feeds ``samples`` (batches of a graph's static batch), each
    as a feed of its own, made as it is read: the sample and copies of it, so that a feed's extremes are that one
    sample's."""
    feeds = (
        {name: np.repeat(v[index : index + 1], len(v), axis=0) for name, v in feed.items()}
        for feed in samples
        for index in range(len(next(iter(feed.values()))))
    )
    return itertools.islice(feeds, count)


def mean_extremes(fp32: bytes, names: Sequence[str], samples: Iterable[Mapping[str, np.ndarray]]) -> Ranges:
    """Each tensor of ``names`` but the model's inputs → the mean over ``samples`` (feeds: give a graph of static
    batch above 1 :func:`one_sample_feeds`) of each one's minimum and maximum, NaNs ignored (ONNX Runtime's min-max
    calibrator with ``moving_average``, the ORT path's ``mean_minmax``), from one pass of the fp32 model."""
    subgraph = parse(fp32).subgraphs[0]
    inputs = {subgraph.tensors[index].name.decode() for index in subgraph.inputs}
    lows: dict[str, list[float]] = {}
    highs: dict[str, list[float]] = {}
    for batch in tensor_values(fp32, [n for n in names if n not in inputs], samples):
        for name, values in batch.items():
            lows.setdefault(name, []).append(float(np.nanmin(values)))
            highs.setdefault(name, []).append(float(np.nanmax(values)))
    return {n: (np.float32(np.nanmean(lows[n])), np.float32(np.nanmean(highs[n]))) for n in lows}


class TfliteCalibration:
    """The ranges of each method for the activations of an fp32 ``.tflite``, computed once per method; for
    ``auto`` also the per-tensor choice. ``minmax`` are the quantizer's own min-max ranges (tensor → (low, high))."""

    def __init__(
        self,
        fp32: bytes,
        samples: Sequence[Mapping[str, np.ndarray]],
        minmax: Ranges,
        bins: int = 2048,
        percentile: float = 99.999,
        count: int | None = None,
    ):
        self.fp32, self.samples, self.bins, self.percentile = fp32, samples, bins, percentile
        self.count = count  # the samples in ``samples`` (the last feed may be filled up with copies)
        self._ranges: dict[str, Ranges] = {"minmax": dict(minmax)}
        self.choice: Choice | None = None

    def __call__(self, method: str) -> Ranges:
        """Tensor → (lowest, highest) by ``method``."""
        minmax = self._ranges["minmax"]
        names = sorted(minmax)
        if method == MEAN_MINMAX and method not in self._ranges:
            feeds = one_sample_feeds(self.samples, self.count)  # a static batch: each sample's extremes, not a batch's
            self._ranges[method] = {**minmax, **mean_extremes(self.fp32, names, feeds)}
        if method not in self._ranges and method != AUTO:  # both histogram methods in one pass: auto needs both
            wanted = [m for m in CALIBRATED if m != "minmax" and m not in self._ranges]
            found = histogram_ranges(self.fp32, names, self.samples, wanted, self.bins, self.percentile)
            self._ranges.update({m: {**minmax, **ranges} for m, ranges in found.items()})
        if method == AUTO and AUTO not in self._ranges:
            candidates = {m: self(m) for m in CALIBRATED}
            self.choice = choose_from_batches(tensor_values(self.fp32, names, self.samples), candidates)
            self._ranges[AUTO] = {t: candidates[self.choice.chosen.get(t, "minmax")][t] for t in minmax}
        return self._ranges[method]

    def record(self, method: str) -> dict[str, Any] | None:
        """For ``auto`` (once chosen) the tensors per method, the mean SQNRs and every tensor's method; else None."""
        return self.choice.to_dict(CALIBRATED) if method == AUTO and self.choice is not None else None
