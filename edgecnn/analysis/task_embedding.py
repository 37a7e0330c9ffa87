"""``embedding``: N×D vectors (or any N×… output, flattened) — cosine with the reference's, and rank-1
retrieval agreement: each sample's nearest neighbour among the others is the same sample under both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import mean_cosine, short_of
from edgecnn.analysis.task_raw import min_cosine


def nearest(vectors: np.ndarray) -> np.ndarray:
    """For each row, the index of its most cosine-similar other row."""
    flat = np.asarray(vectors, np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    unit = flat / np.where(norms > 0, norms, 1)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(1)


def figures(reference: np.ndarray, target: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """Cosine, and rank-1 agreement (None with fewer than 3 samples: no neighbour to choose)."""
    rank1 = float(np.mean(nearest(reference) == nearest(target))) if len(reference) >= 3 else None
    return {"cosine": mean_cosine(reference, target), "rank1_agreement": rank1}


def failures(figs: Mapping[str, Any], thresholds: Any) -> list[str]:
    """Rank-1 agreement under ``--min-rank1``; cosine under ``--min-cosine`` (default 0.99)."""
    missed = []
    rank1 = figs["rank1_agreement"]
    if rank1 is not None and rank1 < thresholds.min_rank1:
        missed.append(f"rank-1 retrieval agreement {short_of(rank1, thresholds.min_rank1)}")
    if figs["cosine"] < min_cosine(thresholds):
        missed.append(f"cosine {short_of(figs['cosine'], min_cosine(thresholds))}")
    return missed


OPTIONS = (
    "min_rank1",
    "min_cosine",
)  # the Thresholds fields only this task reads: given for a model without one, an error
HEADLINE = "rank1_agreement"  # the figure a report shows first and the repair optimises
SHOWN = (("rank1_agreement", "rank-1 agreement"),)  # (figure, label) a report shows
