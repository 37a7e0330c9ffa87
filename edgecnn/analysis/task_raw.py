"""``raw``: any output — cosine, SQNR and the max error relative to the reference's range."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import max_abs_error, mean_cosine, relative_max_error, short_of, sqnr_db

DEFAULT_MIN_COSINE = 0.99  # when --min-cosine is not given


def figures(reference: np.ndarray, target: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """Cosine, SQNR (dB), max abs error and max error relative to the reference's range."""
    return {
        "cosine": mean_cosine(reference, target),
        "sqnr_db": sqnr_db(reference, target),
        "max_abs_error": max_abs_error(reference, target),
        "relative_error": relative_max_error(reference, target),
    }


def min_cosine(thresholds: Any) -> float:
    """``--min-cosine``, or the default floor for outputs judged by their cosine."""
    return thresholds.min_cosine if thresholds.min_cosine is not None else DEFAULT_MIN_COSINE


def failures(figs: Mapping[str, Any], thresholds: Any) -> list[str]:
    """Cosine under ``--min-cosine`` (default 0.99)."""
    floor = min_cosine(thresholds)
    return [f"cosine {short_of(figs['cosine'], floor)}"] if figs["cosine"] < floor else []


OPTIONS = ("min_cosine",)  # the Thresholds fields only this task reads: given for a model without one, an error
HEADLINE = "cosine"  # the figure a report shows first and the repair optimises
SHOWN = (("relative_error", "max error / range"),)  # (figure, label) a report shows
