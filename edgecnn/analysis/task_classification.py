"""``classification``: N×classes logits — top-1 agreement with the reference, top-5 overlap, cosine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import compare, short_of


def figures(reference: np.ndarray, target: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """Top-1 agreement, top-5 overlap, cosine, SQNR and max abs error of two sets of logits (N×K, K ≥ 2, or
    N×K×1×1)."""
    from edgecnn.errors import UsageError

    shape = np.shape(reference)
    if len(shape) < 2 or any(d != 1 for d in shape[2:]) or shape[1] < 2:
        raise UsageError(
            f"classification reads N×K logits of K ≥ 2 classes, not {'×'.join(map(str, shape))}: give "
            "--task segmentation, embedding or raw for it"
        )
    result = compare(reference, target)
    result["top1_agreement"] = result.pop("top1")
    return result


def failures(figs: Mapping[str, Any], thresholds: Any) -> list[str]:
    """Top-1 agreement under ``--min-agreement``; cosine under ``--min-cosine`` when one is given."""
    missed = []
    if figs["top1_agreement"] < thresholds.min_agreement:
        missed.append(f"top-1 agreement {short_of(figs['top1_agreement'], thresholds.min_agreement)}")
    if thresholds.min_cosine is not None and figs["cosine"] < thresholds.min_cosine:
        missed.append(f"cosine {short_of(figs['cosine'], thresholds.min_cosine)}")
    return missed


OPTIONS = (
    "min_agreement",
    "min_cosine",
)  # the Thresholds fields only this task reads: given for a model without one, an error
HEADLINE = "top1_agreement"  # the figure a report shows first and the repair optimises
SHOWN = (("top1_agreement", "top-1 agreement"), ("top5_overlap", "top-5 overlap"))  # (figure, label) a report shows
