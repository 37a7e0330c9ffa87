"""Per model, min-max, mean-of-extremes or per-tensor best-SQNR activation ranges: whichever keeps the most of fp32's
decisions where they are close.

Min-max ranges hold every value the calibration samples reach; the mean over the samples of each sample's minimum and
maximum (``mean_minmax``, NNCF's default for per-tensor activations) clips the rare large values and quantizes the
common ones finely; ``auto`` takes, tensor by tensor, whichever of min-max, percentile and entropy ranges quantizes that
tensor with the best SQNR. None serves every network: on held-out digits moved 2 px (``benchmarks/quant_shift.py``)
mean-of-extremes ranges halved EfficientNet-B0's disagreements with fp32 and doubled MobileNetV1 α 0.25's;
auto's cut MobileNetV2's by a tenth where the mean did not. The output SQNR does not tell them apart: it favours min-max
even where the decisions favour another.

So for a classifier the export quantizes with each, moves each calibration sample by 1/32, 1/16 and 3/32 of its side in
the 8 directions (the uncovered border takes each channel's lowest calibration value: black, for images) so that many of
fp32's decisions are near ties, and counts the images whose exact-QDQ top-1 differs from fp32's. The method with the
fewest such images is chosen; a tie keeps the earlier of :data:`CANDIDATES` (min-max first). No held-out sample is used.
The choice is made last, on the graph that ships — its float op types and its weights (per channel, per tensor or
mixed) already chosen at min-max ranges: judged the other way round, the weights choice compared its twins with the
per-channel graph whose ranges had just won on the same images, a count biased low, and refused twins as good. A twin
whose ranges the choice moves off min-max is then tried once more, against the per-channel graph at the same ranges:
a twin's loss can depend on the ranges (the digits EfficientNet-B0's per-tensor twin was as good at min-max ranges
and worse at mean-of-extremes ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import sign_p
from edgecnn.config.recipes import AUTO, MEAN_MINMAX
from edgecnn.pipeline.source import sha256_file

CANDIDATES = ("minmax", MEAN_MINMAX, AUTO)  # the default first: a tie keeps the earlier
SHIFT_FRACTIONS = (1 / 32, 1 / 16, 3 / 32)  # of the shorter side: 1, 2 and 3 px at 32²; 7, 14 and 21 px at 224²
CHUNK = 64  # images per run of a judged graph: the moved set of a large input need not fit in one batch
PIXEL_BUDGET = 1 << 23  # one channel's pixels of the moved images judged: all 128 samples at 32², 6 at 224²
DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def shifts_px(height: int, width: int) -> tuple[int, ...]:
    """How far :func:`moved` moves an image of ``height`` × ``width``: each of :data:`SHIFT_FRACTIONS` of its shorter
    side, at least 1 px, each distance once."""
    return tuple(dict.fromkeys(max(1, round(min(height, width) * f)) for f in SHIFT_FRACTIONS))


def moved(images: np.ndarray, *shifts: int) -> np.ndarray:
    """The N×C×H×W ``images``, then each moved by each of ``shifts`` px in the 8 directions: (1 + 8·len(shifts))·N
    images; the border a move uncovers takes each channel's lowest value over ``images``."""
    fill = images.min(axis=(0, 2, 3), keepdims=True)
    out = [images]
    height, width = images.shape[-2:]
    for shift in shifts:
        for dy, dx in DIRECTIONS:
            part = np.broadcast_to(fill, images.shape).copy()
            ys, yd = _span(height, dy * shift)
            xs, xd = _span(width, dx * shift)
            part[..., yd, xd] = images[..., ys, xs]
            out.append(part)
    return np.concatenate(out).astype(np.float32)


def _span(size: int, move: int) -> tuple[slice, slice]:
    """The source and destination slices of an axis of ``size`` moved by ``move``."""
    return (slice(0, size - move), slice(move, size)) if move >= 0 else (slice(-move, size), slice(0, size + move))


@dataclass(frozen=True)
class FlipJudge:
    """Counts, for an int8 model, the moved calibration images whose exact-QDQ top-1 differs from fp32's on any
    classification output."""

    images: np.ndarray
    top1: Mapping[str, np.ndarray]  # output → fp32's top-1 class per image
    shifts: tuple[int, ...]
    # graph bytes' sha256 → its verdict: the graph the weights choice ships, the range choice's candidate of its
    # method, is judged once
    judged: dict[str, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, path: Path) -> frozenset[int]:
        key = sha256_file(path)
        if key not in self.judged:
            outputs = _outputs(path, self.images, optimization="disable")  # the exact QDQ arithmetic
            wrong = np.zeros(len(self.images), bool)
            for name, top in self.top1.items():
                wrong |= outputs[name].reshape(len(self.images), -1).argmax(1) != top
            self.judged[key] = frozenset(np.flatnonzero(wrong).tolist())
        return self.judged[key]


def _outputs(path: Path, images: np.ndarray, **options: Any) -> dict[str, np.ndarray]:
    """Every output of the model at ``path`` on ``images``, run :data:`CHUNK` images at a time."""
    from edgecnn.runtime.loader import load

    runner = load(path, **options)
    parts = [runner.run_all(images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def flip_judge(fp32: Path, samples: Any, tasks: str | None = None) -> tuple[FlipJudge | None, str | None]:
    """The judge of the choice on the first calibration ``samples`` (within :data:`PIXEL_BUDGET` once moved) for the
    fp32 model at ``fp32``, whose outputs' tasks are ``tasks`` (``--task``'s spec; None: inferred) — or None and why
    the choice is not made: the model takes no single N×C×H×W image, or no output is judged as classification."""
    from edgecnn.analysis.tasks import output_tasks, parse_tasks
    from edgecnn.data.calibration import samples_within

    if isinstance(samples, dict) or np.ndim(samples) != 4 or min(np.shape(samples)[-2:]) < 2:
        return None, "the model does not take one N×C×H×W image"
    samples = np.asarray(samples, np.float32)
    shifts = shifts_px(*samples.shape[-2:])
    first = samples[: samples_within(samples, PIXEL_BUDGET // (1 + len(DIRECTIONS) * len(shifts)))]
    images = moved(first, *shifts)
    reference = _outputs(fp32, images)
    chosen = output_tasks({name: value.shape for name, value in reference.items()}, parse_tasks(tasks))
    top1 = {
        name: value.reshape(len(images), -1).argmax(1)
        for name, value in reference.items()
        if chosen[name]["task"] == "classification"
    }
    if not top1:
        return None, "no output is judged as classification (the choice counts top-1 changes)"
    return FlipJudge(images, top1, shifts), None


def decide(wrong: dict[str, frozenset[int]]) -> tuple[str, dict[str, Any]]:
    """The method of :data:`CANDIDATES` with the fewest images wrong (``wrong``; a tie: the earlier), and the figures
    it was chosen on: each method's count and, against each other method, the images only one of the two gets wrong
    and the exact sign test's p of that split (how far the choice stands out of chance)."""
    chosen = min(CANDIDATES, key=lambda method: len(wrong[method]))  # min keeps the first of equals
    against = {}
    for other in (m for m in CANDIDATES if m != chosen):
        only_chosen, only_other = len(wrong[chosen] - wrong[other]), len(wrong[other] - wrong[chosen])
        against[other] = {"only_chosen_wrong": only_chosen, "only_other_wrong": only_other,
                          "p": sign_p(only_chosen, only_other)}  # fmt: skip
    return chosen, {"disagreements": {method: len(wrong[method]) for method in CANDIDATES}, "against": against}


def choose_range_estimator(
    make: Callable[[str, Path], Any], judge: FlipJudge, work: Path
) -> tuple[str, dict[str, Any], dict[str, Path]]:
    """Quantize with each of :data:`CANDIDATES` (``make(method, path)``), judge each, and choose: the method, the
    record (images, moves, disagreements per method, the chosen one's splits against the others, the rule) and the
    graphs."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {method: work / f"ranges-{method}.onnx" for method in CANDIDATES}
    wrong = {}
    for method, path in paths.items():
        make(method, path)
        wrong[method] = judge(path)
    chosen, figures = decide(wrong)
    record = {
        "chosen": chosen,
        "images": len(judge.images),
        "shifts_px": list(judge.shifts),
        **figures,
        "rule": f"of {', '.join(CANDIDATES)}, the method whose graph gets the fewest of the moved calibration images' "
        f"top-1 wrong (exact QDQ); a tie keeps the earlier",
    }
    return chosen, record, paths
