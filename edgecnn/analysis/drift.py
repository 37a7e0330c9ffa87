"""Accuracy drift between a reference model and a target (int8) model: figures, thresholds, verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import accuracy, compare, max_abs_error, mean_cosine, sqnr_db
from edgecnn.runtime.outputs import Outputs, as_outputs, is_classification, matched

HOST_KERNELS, EXACT_QDQ = "host_kernels", "exact_qdq"
VNNI_FEATURES = {"avx512_vnni", "avx_vnni"}
# Outputs that are not one N×classes logits tensor have no top-1: each output's cosine is judged, against
# --min-cosine when given, else this.
OUTPUTS_MIN_COSINE = 0.99


@dataclass(frozen=True)
class Thresholds:
    """What a target must meet: top-1 agreement, accuracy drop in points, optional logit cosine."""

    min_agreement: float = 0.99
    max_accuracy_drop: float = 1.0  # percentage points
    min_cosine: float | None = None

    def __post_init__(self) -> None:
        from edgecnn.errors import UsageError

        if not 0 <= self.min_agreement <= 1:
            raise UsageError(f"--min-agreement must be between 0 and 1, got {self.min_agreement}")
        if not self.max_accuracy_drop >= 0:  # NaN too
            raise UsageError(f"--max-accuracy-drop must be ≥ 0 points, got {self.max_accuracy_drop}")
        if self.min_cosine is not None and not -1 <= self.min_cosine <= 1:
            raise UsageError(f"--min-cosine must be between -1 and 1, got {self.min_cosine}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "min_agreement": self.min_agreement,
            "max_accuracy_drop": self.max_accuracy_drop,
            "min_cosine": self.min_cosine,
        }


def int8_basis(arch: str, features: tuple[str, ...] | list[str]) -> str:
    """The int8 computation that matches a target: this host's kernels on x86 without VNNI, else exact QDQ.

    On x86 without VNNI the u8s8 kernels saturate (as on this machine); ARM and
    VNNI do not, so for them the exact Dequantize → float op → Quantize
    arithmetic (ONNX Runtime with graph optimizations off) is what the device computes.
    """
    return HOST_KERNELS if arch == "x86_64" and not VNNI_FEATURES & set(features) else EXACT_QDQ


def check_labels(labels: np.ndarray, classes: int) -> None:
    """Labels must name one of the model's ``classes`` outputs; a one-line error says which do not."""
    from edgecnn.errors import UsageError

    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise UsageError(
            f"the data's labels go from {int(labels.min())} to {int(labels.max())} but the model has {classes} "
            f"classes (0…{classes - 1}): {bad.size} samples are out of range — give data of the model's classes "
            "(for an image folder: one sub-folder per class, in the model's order)"
        )


def output_figures(reference: Outputs, target: Outputs) -> dict[str, dict[str, float]]:
    """Cosine, SQNR (dB) and max abs error of every output, by name."""
    return {
        name: {"cosine": mean_cosine(ref, tgt), "sqnr_db": sqnr_db(ref, tgt), "max_abs_error": max_abs_error(ref, tgt)}
        for name, ref, tgt in matched(reference, target, "drift")
    }


def figures(
    reference: Outputs | np.ndarray,
    target: Outputs | np.ndarray,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Per-output cosine and SQNR; for one N×classes output also agreement, top-5 overlap, and accuracies and
    per-class figures with labels. Otherwise ``top1_agreement`` is None and ``cosine``/``sqnr_db`` are the worst
    output's."""
    reference, target = as_outputs(reference), as_outputs(target)
    per_output = output_figures(reference, target)
    if not is_classification(reference):
        return {
            "top1_agreement": None,
            "cosine": min(f["cosine"] for f in per_output.values()),
            "sqnr_db": min(f["sqnr_db"] for f in per_output.values()),
            "max_abs_error": max(f["max_abs_error"] for f in per_output.values()),
            "outputs": per_output,
        }
    reference, target = next(iter(reference.values())), next(iter(target.values()))
    result: dict[str, Any] = compare(reference, target)
    result["top1_agreement"] = result.pop("top1")
    result["outputs"] = per_output
    if labels is not None:
        check_labels(labels, reference.shape[-1])
        ref_acc, tgt_acc = accuracy(reference, labels), accuracy(target, labels)
        result.update(
            reference_accuracy=ref_acc,
            target_accuracy=tgt_acc,
            accuracy_drop_points=round(100 * (ref_acc - tgt_acc), 4),
        )
        per_class = []
        ref_pred, tgt_pred = reference.argmax(1), target.argmax(1)
        for cls in np.unique(labels):
            mask = labels == cls
            per_class.append(
                {
                    "class": class_names[cls] if cls < len(class_names) else int(cls),
                    "samples": int(mask.sum()),
                    "reference_accuracy": float(np.mean(ref_pred[mask] == cls)),
                    "target_accuracy": float(np.mean(tgt_pred[mask] == cls)),
                    "top1_agreement": float(np.mean(ref_pred[mask] == tgt_pred[mask])),
                }
            )
        result["per_class"] = per_class
    return result


def failures(figs: Mapping[str, Any], thresholds: Thresholds) -> list[str]:
    """The thresholds a set of figures misses, each as a sentence with both numbers."""
    missed = []
    top1 = figs["top1_agreement"]
    measured = ("top1_agreement", "cosine") if top1 is not None else ("cosine",)
    unmeasured = [k for k in measured if not math.isfinite(figs[k])]
    if unmeasured:  # a NaN passes every "<" test: outputs that overflow must fail, not pass
        missed.append(f"{' and '.join(unmeasured)} not finite (the outputs overflow or are NaN)")
    if top1 is not None and top1 < thresholds.min_agreement:
        missed.append(f"top-1 agreement {top1:.4f} < {thresholds.min_agreement}")
    drop = figs.get("accuracy_drop_points")
    if drop is not None and drop > thresholds.max_accuracy_drop:
        missed.append(f"accuracy drop {drop:.2f} points > {thresholds.max_accuracy_drop}")
    if top1 is None:  # no classification output: every output's cosine is judged
        floor = thresholds.min_cosine if thresholds.min_cosine is not None else OUTPUTS_MIN_COSINE
        for name, output in figs["outputs"].items():
            if output["cosine"] < floor:
                missed.append(f"output '{name}': cosine {output['cosine']:.4f} < {floor}")
    elif thresholds.min_cosine is not None and figs["cosine"] < thresholds.min_cosine:
        missed.append(f"cosine {figs['cosine']:.4f} < {thresholds.min_cosine}")
    return missed


def verdict(computations: Mapping[str, Mapping[str, Any]], basis: str, thresholds: Thresholds) -> dict[str, Any]:
    """Judge the computation that matches the target; note when the other one disagrees beyond a threshold."""
    judged = computations[basis]
    missed = failures(judged, thresholds)
    notes = []
    others = [k for k in computations if k != basis]
    for other in others:
        if judged["top1_agreement"] is None or computations[other]["top1_agreement"] is None:
            continue
        gap = abs(computations[other]["top1_agreement"] - judged["top1_agreement"])
        if gap > 1 - thresholds.min_agreement:
            notes.append(
                f"{other.replace('_', ' ')} agreement {computations[other]['top1_agreement']:.4f} differs "
                f"from {basis.replace('_', ' ')} {judged['top1_agreement']:.4f} by more than the "
                f"threshold: this host's int8 kernels do not compute what the target does"
            )
    return {
        "basis": basis,
        "passed": not missed,
        "failures": missed,
        "notes": notes,
        "top1_agreement": judged["top1_agreement"],
        "cosine": judged["cosine"],
        "sqnr_db": judged["sqnr_db"],
        "accuracy_drop_points": judged.get("accuracy_drop_points"),
        "thresholds": thresholds.to_dict(),
    }


def int8_computations(
    path: Any,
    images: np.ndarray,
    reference: Outputs | np.ndarray,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    kinds: tuple[str, ...] = (EXACT_QDQ, HOST_KERNELS),
) -> dict[str, dict[str, Any]]:
    """Figures of an int8 ONNX/ORT model against ``reference`` outputs, per int8 computation.

    ``exact_qdq`` runs with graph optimizations off (Dequantize → float op →
    Quantize, what a saturation-free device computes); ``host_kernels`` with
    every optimization on (this machine's fused int8 kernels).
    """
    from edgecnn.runtime.loader import load

    levels = {EXACT_QDQ: "disable", HOST_KERNELS: "all"}
    return {
        kind: figures(reference, load(path, optimization=levels[kind]).run_all(images), labels, class_names)
        for kind in kinds
    }


def evaluator(
    images: np.ndarray, reference: Outputs | np.ndarray, labels: np.ndarray | None, basis: str, thresholds: Thresholds
) -> Any:
    """A function judging an int8 model file: path → (verdict, computations)."""

    def evaluate(path: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        computations = int8_computations(path, images, reference, labels)
        return verdict(computations, basis, thresholds), computations

    return evaluate
