"""Repair int8 drift: cheap global remedies first, then keep the noisiest layers in float (bisection).

Each try re-quantizes with the same calibrated ranges (see ``Quantizer``) and
is judged by ``evaluate``; the search stops at the first setting that meets
the thresholds, keeping as few layers in float as bisection finds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.analysis.layerwise import LayerError, layer_errors, rank_for_float
from edgecnn.errors import CheckFailedError
from edgecnn.files import atomic_copy
from edgecnn.runtime.outputs import Inputs, take

Evaluation = tuple[dict[str, Any], dict[str, Any]]  # (verdict, computations)
Ranker = Callable[[Path, Inputs], list[LayerError]]  # (int8 model, samples) → its layers, for rank_for_float
BASELINE = "baseline"  # the label of the attempt a repair starts from: the int8 model as it was


@dataclass
class Attempt:
    """One quantization setting and how it fared."""

    label: str
    method: str
    reduce_range: bool
    keep_float: tuple[str, ...]
    path: Path
    verdict: dict[str, Any]
    computations: dict[str, Any]
    bytes: int = 0
    techniques: tuple[str, ...] = ()  # the quantizer's techniques this try switched on (e.g. bias_correct)

    def __post_init__(self) -> None:
        if not self.bytes and self.path.exists():
            self.bytes = self.path.stat().st_size

    @property
    def score(self) -> tuple:
        """Better attempts sort higher: passing, then the task's figure (``verdict['score']``: top-1 agreement,
        mIoU, rank-1 agreement or cosine, the worst output's), then smaller accuracy drop, then cosine."""
        drop = self.verdict.get("accuracy_drop_points") or 0.0
        return (self.verdict["passed"], self.verdict["score"], -drop, self.verdict["cosine"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "label": self.label,
            "method": self.method,
            "reduce_range": self.reduce_range,
            "techniques": list(self.techniques),
            "kept_float": list(self.keep_float),
            "passed": self.verdict["passed"],
            "score": self.verdict["score"],
            "top1_agreement": self.verdict["top1_agreement"],
            "cosine": self.verdict["cosine"],
            "accuracy_drop_points": self.verdict.get("accuracy_drop_points"),
            "bytes": self.bytes,
        }


@dataclass
class Repair:
    """The outcome of a repair search."""

    best: Attempt
    attempts: list[Attempt] = field(default_factory=list)
    layers: list[LayerError] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # global remedies that could not be made


def nodes_of_types(model_path: Path, op_types: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Names of the nodes of ``model_path`` whose op type is in ``op_types`` (e.g. a profile's slow int8 ops)."""
    if not op_types:
        return ()
    import onnx

    wanted = set(op_types)
    return tuple(n.name for n in onnx.load(str(model_path)).graph.node if n.name and n.op_type in wanted)


class Search:
    """Runs attempts, numbered, in one working directory."""

    def __init__(
        self, quantizer: Any, evaluate: Callable[[Path], Evaluation], work: Path, always_float: tuple[str, ...] = ()
    ):
        self.quantizer, self.evaluate, self.work, self.always_float = quantizer, evaluate, work, always_float
        self.attempts: list[Attempt] = []
        self.failed: list[dict[str, str]] = []  # global remedies that could not be made: label, why

    def attempt(
        self,
        label: str,
        method: str,
        reduce_range: bool,
        keep_float: tuple[str, ...] = (),
        techniques: tuple[str, ...] = (),
    ) -> Attempt:
        """Quantize with these settings (``techniques``: the quantizer's switches to turn on) and judge the result."""
        keep = tuple(dict.fromkeys(self.always_float + keep_float))
        path = self.work / f"attempt-{len(self.attempts)}{self.quantizer.suffix}"
        switches = {t: t in techniques for t in self.quantizer.remedy_techniques}  # each on or off, as told
        self.quantizer.quantize(path, method, reduce_range, keep_float_nodes=keep, **switches)
        verdict, computations = self.evaluate(path)
        made = Attempt(label, method, reduce_range, keep, path, verdict, computations, techniques=techniques)
        self.attempts.append(made)
        return made

    def remedy(self, best: Attempt, label: str, method: str, reduce_range: bool, techniques: tuple = ()) -> Attempt:
        """An optional global remedy: the better of ``best`` and this attempt; one that cannot be made (a
        calibration the graph defeats) is recorded in :attr:`failed` and leaves ``best``."""
        try:
            tried = self.attempt(label, method, reduce_range, techniques=techniques)
        except CheckFailedError as error:
            self.failed.append({"label": label, "why": str(error)[:300]})
            return best
        return max(best, tried, key=lambda a: a.score)


def repair(
    quantizer: Any,
    evaluate: Callable[[Path], Evaluation],
    work: Path,
    baseline: Attempt,
    images: Inputs,
    saturating_target: bool,
    always_float: tuple[str, ...] = (),
    layer_samples: int = 32,
    rank: Ranker | None = None,
) -> Repair:
    """Search for the cheapest setting that meets the thresholds, starting from a failing ``baseline``.

    1. Global remedies: reduce_range (only where the target's kernels saturate, never turned off there), the other
       calibration methods (``quantizer.remedy_methods``: every one of ``--method`` but the baseline's, for ORT
       and for a ``.tflite`` quantizer with a calibrator), then each of its techniques on the best so far
       (``quantizer.remedy_techniques``: bias correction) that the baseline did not use; keep the best.
    2. Mixed precision: rank layers by the noise they add (per-layer SQNR: ``rank``, by default the ONNX
       QDQ one of :func:`layer_errors`), then bisect on how many of the worst to keep in float.
    ``always_float`` nodes (int8 slower than fp32 on the target) stay float in every try. ``quantizer`` is
    an ORT ``Quantizer`` or a ``TfliteQuantizer``: ``quantize(path, method, reduce_range, keep_float_nodes=…,
    **techniques)``, ``suffix``, ``remedy_methods`` and ``remedy_techniques``.
    """
    search = Search(quantizer, evaluate, work, always_float)
    best = baseline
    if not set(always_float) <= set(baseline.keep_float):  # else the baseline is that graph already
        best = max(
            best,
            search.attempt(
                "latency: slow int8 ops in float",
                baseline.method,
                baseline.reduce_range,
                techniques=baseline.techniques,
            ),
            key=lambda a: a.score,
        )
    # reduce_range on a saturating target when the baseline lacks it; never off there: the ORT quantizer's
    # reduce_range already keeps 8-bit weights wherever u8s8 does not saturate (``pipeline.weight_bits``)
    ranges = [baseline.reduce_range] + ([True] if saturating_target and not baseline.reduce_range else [])
    for method in dict.fromkeys([baseline.method, *quantizer.remedy_methods]):
        for reduce_range in dict.fromkeys(ranges):
            if (method, reduce_range) == (baseline.method, baseline.reduce_range):
                continue
            if not saturating_target and reduce_range:
                continue
            label = f"global: {method}" + (f", reduce_range={reduce_range}" if saturating_target else "")
            best = search.remedy(best, label, method, reduce_range, baseline.techniques)
    for technique in quantizer.remedy_techniques:
        if best.verdict["passed"]:
            break
        if technique in best.techniques:
            continue
        label = f"global: {best.method} + {technique.replace('_', ' ')}"
        best = search.remedy(best, label, best.method, best.reduce_range, (*best.techniques, technique))
    if best.verdict["passed"]:
        return Repair(best, search.attempts, failed=search.failed)
    if rank is None:
        rank = lambda path, samples: layer_errors(quantizer.preprocessed, path, samples)  # noqa: E731
    errors = rank(best.path, take(images, slice(None, layer_samples)))
    ranked = [e.nodes or (e.node,) for e in rank_for_float(errors)]

    def first(count: int) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for layer in ranked[:count] for n in layer))

    method, reduce_range = best.method, best.reduce_range
    techniques = best.techniques
    top = search.attempt(f"mixed: {len(ranked)} layers in float", method, reduce_range, first(len(ranked)), techniques)
    if not top.verdict["passed"]:
        return Repair(max(best, top, key=lambda a: a.score), search.attempts, errors, search.failed)
    low, high, winner = 0, len(ranked), top
    while high - low > 1:
        middle = (low + high) // 2
        tried = search.attempt(f"mixed: {middle} layers in float", method, reduce_range, first(middle), techniques)
        if tried.verdict["passed"]:
            high, winner = middle, tried
        else:
            low = middle
    return Repair(winner, search.attempts, errors, search.failed)


def repair_model(
    quantizer: Any,
    evaluate: Callable[[Path], Evaluation],
    int8: Path,
    dst: Path,
    work: Path,
    baseline: Evaluation,
    *,
    method: str,
    reduce_range: bool,
    images: Inputs,
    saturating_target: bool,
    keep_float: tuple[str, ...] = (),
    slow_op_types: tuple[str, ...] = (),
    slow_float_already: bool = False,
    rank: Ranker | None = None,
) -> tuple[Repair, dict[str, Any]]:
    """Repair the failing int8 model ``int8`` (quantized with ``method``, ``reduce_range``, ``keep_float``; judged
    ``baseline``): search with :func:`repair`, the nodes of ``slow_op_types`` (int8 slower than float on the target,
    or kept float by the recipe; ``slow_float_already``: ``int8`` was quantized with them float, as an export does)
    and ``keep_float`` float in every try, and write the best to ``dst`` (replaced atomically; ``dst`` may be
    ``int8``). Returns the search and its record: the tries, the choice (with how the quantizer calibrated it per
    tensor, when it says: ``quantizer.calibration(method)``) and the bytes before and after."""
    before = work / f"baseline{Path(int8).suffix}"
    shutil.copy2(int8, before)
    slow = nodes_of_types(quantizer.preprocessed, slow_op_types) if slow_op_types else ()
    always = tuple(dict.fromkeys(keep_float + slow))
    on = tuple(t for t in quantizer.remedy_techniques if getattr(quantizer, t, False))  # int8 was made with these
    start = Attempt(
        BASELINE, method, reduce_range, always if slow_float_already else keep_float, before, *baseline, techniques=on
    )
    search = repair(quantizer, evaluate, work, start, images, saturating_target, always_float=always, rank=rank)
    best = search.best
    if best is not start or Path(dst) != Path(int8):
        atomic_copy(best.path, dst)
    record = {
        "attempts": [a.to_dict() for a in search.attempts],
        "failed_tries": search.failed,
        "chosen": best.label,
        "method": best.method,
        "reduce_range": best.reduce_range,
        "techniques": list(best.techniques),
        "kept_float": list(best.keep_float),
        "calibration": calibration(best.method) if (calibration := getattr(quantizer, "calibration", None)) else None,
        "slow_int8_nodes": list(slow),
        "bytes_before": before.stat().st_size,
        "bytes_after": Path(dst).stat().st_size,
    }
    return search, record
