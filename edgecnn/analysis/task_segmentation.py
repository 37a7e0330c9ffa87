"""``segmentation``: N×K×H×W class scores (arg-max mask) or N×1×H×W maps (mask where > ``--mask-threshold``) —
pixel agreement of the masks, mean IoU of the target's mask against the reference's over the classes present,
and the worst class's IoU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import mean_cosine, short_of


def masks(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The N×H×W class mask of N×K×H×W scores: the arg-max class, or for K = 1 whether the score > ``threshold``."""
    from edgecnn.errors import UsageError

    scores = np.asarray(scores)
    if scores.ndim != 4:
        raise UsageError(
            f"segmentation reads N×K×H×W maps, not {'×'.join(map(str, scores.shape))}: give another --task for it"
        )
    if scores.shape[1] == 1:  # compared in float64: a threshold beyond float32's range does not overflow
        return (scores[:, 0].astype(np.float64) > threshold).astype(np.int64)
    return scores.argmax(1)


def check_threshold_applies(given: Any, maps: Mapping[str, tuple[int, ...]]) -> None:
    """--mask-threshold binarises N×1×H×W maps only (K class scores are read by arg-max): given when no segmentation
    output (``maps``: name → shape) is one, an error rather than a threshold never used."""
    if "mask_threshold" in given and maps and all(len(shape) != 4 or shape[1] != 1 for shape in maps.values()):
        from edgecnn.errors import UnusedOptionError

        shown = ", ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in maps.items())
        raise UnusedOptionError(
            f"--mask-threshold applies to N×1×H×W segmentation maps, but the segmentation outputs are class scores "
            f"read by arg-max ({shown}): drop --mask-threshold"
        )


def class_ious(reference: np.ndarray, target: np.ndarray) -> dict[int, float]:
    """IoU of each class present in the reference mask or the target's (pooled over samples)."""
    ious = {}
    for cls in np.union1d(np.unique(reference), np.unique(target)):
        ref, tgt = reference == cls, target == cls
        union = np.count_nonzero(ref | tgt)
        ious[int(cls)] = np.count_nonzero(ref & tgt) / union
    return ious


def figures(reference: np.ndarray, target: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """Pixel agreement, mIoU, the worst class and its IoU, and the scores' cosine."""
    from edgecnn.errors import UsageError

    ref, tgt = masks(reference, thresholds.mask_threshold), masks(target, thresholds.mask_threshold)
    if reference.shape[1] == 1 and ref.min() == ref.max():
        raise UsageError(
            f"--mask-threshold {thresholds.mask_threshold} puts every pixel of the reference's maps "
            f"{'inside' if ref.max() else 'outside'} the mask (their values go from {reference.min():.4g} to "
            f"{reference.max():.4g}), so any target would pass: give a threshold between those"
        )
    ious = class_ious(ref, tgt)
    worst = min(ious, key=ious.__getitem__)
    return {
        "pixel_agreement": float(np.mean(ref == tgt)),
        "miou": float(np.mean(list(ious.values()))),
        "worst_class": worst,
        "worst_class_iou": ious[worst],
        "classes": len(ious),
        "cosine": mean_cosine(reference, target),
    }


def _at(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Label masks sampled (nearest) at an output's height and width."""
    rows = (np.arange(height) * masks.shape[1]) // height
    cols = (np.arange(width) * masks.shape[2]) // width
    return masks[:, rows][:, :, cols]


def against_labels(reference: np.ndarray, target: np.ndarray, labels: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """mIoU of the reference's and the target's masks against label masks (N×H×W, sampled at the output's size),
    and its drop in points."""
    from edgecnn.errors import UsageError

    truth = _at(labels, reference.shape[2], reference.shape[3])
    classes = max(reference.shape[1], 2)
    if truth.min() < 0 or truth.max() >= classes:
        raise UsageError(
            f"the data's masks hold classes {int(truth.min())}…{int(truth.max())} but the output has {classes} "
            f"(0…{classes - 1}): give masks of the model's classes"
        )
    scores = [
        float(np.mean(list(class_ious(truth, masks(x, thresholds.mask_threshold)).values())))
        for x in (reference, target)
    ]
    return {
        "reference_miou": scores[0],
        "target_miou": scores[1],
        "miou_drop_points": round(100 * (scores[0] - scores[1]), 4),
    }


def failures(figs: Mapping[str, Any], thresholds: Any) -> list[str]:
    """mIoU against the reference's masks under ``--min-miou``; with label masks, an mIoU drop over ``--max-drop``
    points."""
    missed = []
    if figs["miou"] < thresholds.min_miou:
        missed.append(
            f"mIoU {short_of(figs['miou'], thresholds.min_miou)} (worst class {figs['worst_class']}: "
            f"IoU {figs['worst_class_iou']:.4f})"
        )
    drop = figs.get("miou_drop_points")
    if drop is not None and drop > thresholds.max_accuracy_drop:
        missed.append(f"mIoU drop against the labels {drop:.2f} points > {thresholds.max_accuracy_drop}")
    return missed


OPTIONS = (
    "min_miou",
    "mask_threshold",
)  # the Thresholds fields only this task reads: given for a model without one, an error
HEADLINE = "miou"  # the figure a report shows first and the repair optimises
SHOWN = (
    ("miou", "mIoU"),
    ("pixel_agreement", "pixels agree"),
    ("worst_class_iou", "worst class IoU"),
    ("miou_drop_points", "mIoU drop vs labels (points)"),
)  # (figure, label) a report shows
