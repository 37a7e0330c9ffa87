"""Accuracy drift between a reference model and a target (int8) model: figures, thresholds, verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import accuracy, max_abs_error, mean_cosine, sqnr_db
from edgecnn.analysis.task_detection import DECODERS, joined
from edgecnn.analysis.task_segmentation import check_threshold_applies
from edgecnn.analysis.tasks import TRUTH_TASKS, check_task_options, output_tasks, parse_tasks, task
from edgecnn.runtime.outputs import Outputs, as_outputs, matched

HOST_KERNELS, EXACT_QDQ = "host_kernels", "exact_qdq"
VNNI_FEATURES = {"avx512_vnni", "avx_vnni"}
FLAGS = {"tasks": "--task", "max_accuracy_drop": "--max-drop"}  # Thresholds fields whose flag is not their name


@dataclass(frozen=True)
class Thresholds:
    """What a target must meet, per task (see :mod:`edgecnn.analysis.tasks`): top-1 agreement and accuracy drop
    in points (classification; with label masks or boxes the mIoU or mAP@0.5 drop), mask mIoU (segmentation), F1
    (detection), rank-1 retrieval agreement (embedding), cosine (raw, and classification when given); and how
    outputs are read — ``tasks`` is ``--task`` (None: inferred per output), ``mask_threshold`` binarises N×1×H×W
    segmentation maps, ``decoder``, ``score_threshold`` and ``nms_iou`` turn a detection head into detections."""

    min_agreement: float = 0.99
    max_accuracy_drop: float = 1.0  # percentage points
    min_cosine: float | None = None
    min_miou: float = 0.9
    min_rank1: float = 0.95
    min_f1: float = 0.9
    min_recall: float | None = None  # detection: recall against the fp32 detections, when given
    mask_threshold: float = 0.5
    decoder: str = "yolo"  # detection heads: edgecnn.analysis.task_detection.DECODERS
    score_threshold: float = 0.25
    nms_iou: float = 0.45
    tasks: str | None = None
    # the fields a user gave (Thresholds.of; None: those that differ from their defaults): one only a task reads,
    # given when no output has that task, is an error
    given: frozenset[str] | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, **given: Any) -> Thresholds:
        """Thresholds from the options a user gave (the others at their defaults), remembering which were given."""
        return cls(**given, given=frozenset(given))

    def __post_init__(self) -> None:
        from edgecnn.errors import UnknownNameError, UsageError

        bounded = (
            ("--min-agreement", self.min_agreement),
            ("--min-miou", self.min_miou),
            ("--min-rank1", self.min_rank1),
            ("--min-f1", self.min_f1),
            ("--min-recall", 0 if self.min_recall is None else self.min_recall),
            ("--nms-iou", self.nms_iou),
        )
        for flag, value in bounded:
            if not 0 <= value <= 1:
                raise UsageError(f"{flag} must be between 0 and 1, got {value}")
        if not self.max_accuracy_drop >= 0:  # NaN too
            raise UsageError(f"--max-drop must be ≥ 0 points, got {self.max_accuracy_drop}")
        if self.min_cosine is not None and not -1 <= self.min_cosine <= 1:
            raise UsageError(f"--min-cosine must be between -1 and 1, got {self.min_cosine}")
        for flag, value in (("--mask-threshold", self.mask_threshold), ("--score-threshold", self.score_threshold)):
            if not math.isfinite(value):
                raise UsageError(f"{flag} must be a finite number, got {value}")
        if self.decoder not in DECODERS:
            raise UnknownNameError("decoder", self.decoder, list(DECODERS))
        parse_tasks(self.tasks)  # an unknown task or a malformed spec is an error before any work
        if self.given is None:
            changed = {
                f.name for f in dataclasses.fields(self) if f.name != "given" and getattr(self, f.name) != f.default
            }
            object.__setattr__(self, "given", frozenset(changed))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "given"}


def int8_basis(arch: str, features: tuple[str, ...] | list[str]) -> str:
    """The int8 computation that matches a target: this host's kernels on x86 without VNNI, else exact QDQ.

    On x86 without VNNI the u8s8 kernels saturate (as on this machine); ARM and
    VNNI do not, so for them the exact Dequantize → float op → Quantize
    arithmetic (ONNX Runtime with graph optimizations off) is what the device computes.
    """
    return HOST_KERNELS if arch == "x86_64" and not VNNI_FEATURES & set(features) else EXACT_QDQ


def host_unlike_target(basis: str, cpuinfo: str | None = None) -> str | None:
    """One line when ``basis`` is this host's kernels standing for an x86 target without VNNI but this host is of
    another kind (``cpuinfo``: /proc/cpuinfo's text, read when None) — a CPU with VNNI, or no x86 CPU with AVX2,
    whose int8 kernels do not saturate where the target's do; None when they match (or cpuinfo cannot be read)."""
    from edgecnn.bench.harness import cpuinfo as cpuinfo_fields

    info = cpuinfo_fields(cpuinfo) if basis == HOST_KERNELS else {}
    if not info:
        return None
    flags = info.get("flags", "").split()
    found = sorted(VNNI_FEATURES & set(flags))
    if "avx2" in flags and not found:
        return None
    what = f"has {', '.join(found)}" if found else "is no x86 CPU with AVX2"
    return (
        f"this host's CPU {what}: its int8 kernels do not saturate where the target's (x86 without "
        "VNNI) do, so the host-kernel figures and timings are this host's, not the target's (the profile's "
        "reduce_range keeps the target from saturating); measure on the target to be sure"
    )


def check_drop_applies(given: Any, tasks: Mapping[str, str], labels: np.ndarray | None) -> None:
    """--max-drop against per-sample labels reads a model's lone classification output: given for other outputs
    (``tasks``: output → task), an error rather than a drop never measured."""
    if labels is None or labels.ndim != 1 or "max_accuracy_drop" not in given:
        return
    if list(tasks.values()) != ["classification"]:
        from edgecnn.errors import UnusedOptionError

        shown = ", ".join(f"{name} ({output})" for output, name in tasks.items())
        raise UnusedOptionError(
            f"--max-drop against per-sample labels applies to a model whose only output is a classification, but the "
            f"outputs are judged as {shown}: give --task OUTPUT=classification if one is, or drop --max-drop"
        )


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


def _joined_detection(
    pairs: list[tuple[str, np.ndarray, np.ndarray]], chosen: dict[str, dict[str, str]]
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict[str, dict[str, str]]]:
    """The outputs with the detection task (boxes and scores) replaced by one joined head, judged as detection."""
    heads = [(name, ref, tgt) for name, ref, tgt in pairs if chosen[name]["task"] == "detection"]
    if not heads:
        return pairs, chosen
    name, ref = joined({n: r for n, r, _ in heads})
    _, tgt = joined({n: t for n, _, t in heads})
    rest = [pair for pair in pairs if chosen[pair[0]]["task"] != "detection"]
    origin = ", ".join(f"{n}: {chosen[n]['origin']}" for n, _, _ in heads)
    return [*rest, (name, ref, tgt)], {**chosen, name: {"task": "detection", "origin": f"boxes-scores ({origin})"}}


def _task_figures(name: str, kind: str, ref: np.ndarray, tgt: np.ndarray, thresholds: Thresholds) -> dict:
    """``kind``'s figures of one output; an output the task cannot read is a one-line error naming it."""
    from edgecnn.errors import UsageError

    try:
        return task(kind).figures(ref, tgt, thresholds)
    except UsageError as error:
        raise UsageError(f"output '{name}' cannot be judged as {kind}: {error}") from None


def output_figures(
    reference: Outputs, target: Outputs, thresholds: Thresholds | None = None, truth: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """Every output's task (and where it came from), cosine, SQNR (dB), max abs error and its task's figures, by
    name; with ``truth`` (label masks or boxes) also the figures against it of each output whose task reads it."""
    thresholds = thresholds or Thresholds()
    pairs = matched(reference, target, "drift")
    chosen = output_tasks({name: ref.shape for name, ref, _ in pairs}, parse_tasks(thresholds.tasks))
    check_task_options(thresholds.given, {name: c["task"] for name, c in chosen.items()}, FLAGS)
    maps = {name: ref.shape for name, ref, _ in pairs if chosen[name]["task"] == "segmentation"}
    check_threshold_applies(thresholds.given, maps)
    if thresholds.decoder == "boxes-scores":  # the two detection outputs are judged as one head
        pairs, chosen = _joined_detection(pairs, chosen)
    result = {}
    for name, ref, tgt in pairs:
        kind = chosen[name]["task"]
        result[name] = {
            "task": kind,
            "task_origin": chosen[name]["origin"],
            "cosine": mean_cosine(ref, tgt),
            "sqnr_db": sqnr_db(ref, tgt),
            "max_abs_error": max_abs_error(ref, tgt),
            **_task_figures(name, kind, ref, tgt, thresholds),
        }
    if truth is not None:
        _against_truth(pairs, result, truth, thresholds)
    return result


def _against_truth(
    pairs: list[tuple[str, np.ndarray, np.ndarray]],
    per_output: dict[str, Any],
    truth: np.ndarray,
    thresholds: Thresholds,
) -> None:
    """Each output whose task reads ``truth``'s kind (label masks: segmentation, boxes: detection) judged against
    it, its figures added to ``per_output``; truth with no such output to judge is an error."""
    from edgecnn.data.calibration import label_kind
    from edgecnn.errors import UsageError

    kind = label_kind(truth)
    name, labelled = TRUTH_TASKS[kind]
    judged = [(output, ref, tgt) for output, ref, tgt in pairs if per_output[output]["task"] == name]
    if not judged:
        raise UsageError(
            f"the data's {kind} label {labelled}, but no output is judged as {name}: give --task OUTPUT={name}, "
            "or data with per-sample labels"
        )
    for output, ref, tgt in judged:
        per_output[output].update(task(name).against_labels(ref, tgt, truth, thresholds))


def figures(
    reference: Outputs | np.ndarray,
    target: Outputs | np.ndarray,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """Each output judged by its task (``outputs``); the worst output's cosine and SQNR; for a model whose only
    output is a classifier also its top-1 agreement and top-5 overlap, and accuracies and per-class figures with
    labels. ``top1_agreement`` is None when no lone classification output gives one."""
    reference, target = as_outputs(reference), as_outputs(target)
    truth = labels if labels is not None and labels.ndim > 1 else None  # masks or boxes: per output, by task
    per_output = output_figures(reference, target, thresholds, truth)
    result: dict[str, Any] = {
        "top1_agreement": None,
        "cosine": min(f["cosine"] for f in per_output.values()),
        "sqnr_db": min(f["sqnr_db"] for f in per_output.values()),
        "max_abs_error": max(f["max_abs_error"] for f in per_output.values()),
        "outputs": per_output,
    }
    if truth is not None:
        return result
    only = next(iter(per_output.values()))
    if thresholds is not None:
        check_drop_applies(thresholds.given, {name: f["task"] for name, f in per_output.items()}, labels)
    if len(per_output) != 1 or only["task"] != "classification":
        return result
    result.update(top1_agreement=only["top1_agreement"], top5_overlap=only["top5_overlap"])
    reference, target = next(iter(reference.values())), next(iter(target.values()))
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


def score(figs: Mapping[str, Any]) -> float:
    """What the repair maximises: the worst output's task headline figure (top-1 agreement, mIoU, rank-1
    agreement or cosine)."""
    headlines = ((out.get(task(out["task"]).headline), out["cosine"]) for out in figs["outputs"].values())
    return float(min(cosine if value is None else value for value, cosine in headlines))


def _headline_name(figs: Mapping[str, Any]) -> str:
    """The name of :func:`score`'s figure for these outputs ("agreement" for classifiers, as before)."""
    kinds = {out["task"] for out in figs["outputs"].values()}
    return "agreement" if kinds == {"classification"} else "task figure"


def failures(figs: Mapping[str, Any], thresholds: Thresholds) -> list[str]:
    """The thresholds a set of figures misses, each as a sentence with both numbers (and the output's name when
    there are several)."""
    missed = []
    top1 = figs["top1_agreement"]
    measured = ("top1_agreement", "cosine") if top1 is not None else ("cosine",)
    unmeasured = [k for k in measured if not math.isfinite(figs[k])]
    if unmeasured:  # a NaN passes every "<" test: outputs that overflow must fail, not pass
        missed.append(f"{' and '.join(unmeasured)} not finite (the outputs overflow or are NaN)")
    outputs = figs.get("outputs") or {}
    for name, output in outputs.items():
        for sentence in task(output["task"]).failures(output, thresholds):
            missed.append(sentence if len(outputs) == 1 else f"output '{name}': {sentence}")
    drop = figs.get("accuracy_drop_points")
    if drop is not None and drop > thresholds.max_accuracy_drop:
        missed.append(f"accuracy drop {drop:.2f} points > {thresholds.max_accuracy_drop}")
    return missed


def verdict(computations: Mapping[str, Mapping[str, Any]], basis: str, thresholds: Thresholds) -> dict[str, Any]:
    """Judge the computation that matches the target; note when the other one disagrees beyond a threshold."""
    judged = computations[basis]
    missed = failures(judged, thresholds)
    notes = []
    others = [k for k in computations if k != basis]
    for other in others:  # the task's figure (top-1 agreement, mIoU, F1, rank-1 agreement or cosine) of each
        theirs, ours = score(computations[other]), score(judged)
        if abs(theirs - ours) > 1 - thresholds.min_agreement:
            notes.append(
                f"{other.replace('_', ' ')} {_headline_name(judged)} {theirs:.4f} differs from "
                f"{basis.replace('_', ' ')} {ours:.4f} by more than {1 - thresholds.min_agreement:.2g}: this host's "
                "int8 kernels do not compute what the target does"
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
        "score": score(judged),
        "tasks": {name: out["task"] for name, out in judged["outputs"].items()},
        "thresholds": thresholds.to_dict(),
    }


def int8_computations(
    path: Any,
    images: np.ndarray,
    reference: Outputs | np.ndarray,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    kinds: tuple[str, ...] = (EXACT_QDQ, HOST_KERNELS),
    thresholds: Thresholds | None = None,
) -> dict[str, dict[str, Any]]:
    """Figures of an int8 ONNX/ORT model against ``reference`` outputs, per int8 computation.

    ``exact_qdq`` runs with graph optimizations off (Dequantize → float op →
    Quantize, what a saturation-free device computes); ``host_kernels`` with
    every optimization on (this machine's fused int8 kernels).
    """
    from edgecnn.runtime.loader import load

    levels = {EXACT_QDQ: "disable", HOST_KERNELS: "all"}
    return {
        kind: figures(reference, load(path, optimization=levels[kind]).run_all(images), labels, class_names, thresholds)
        for kind in kinds
    }


def evaluator(
    images: np.ndarray, reference: Outputs | np.ndarray, labels: np.ndarray | None, basis: str, thresholds: Thresholds
) -> Any:
    """A function judging an int8 model file: path → (verdict, computations)."""

    def evaluate(path: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        computations = int8_computations(path, images, reference, labels, thresholds=thresholds)
        return verdict(computations, basis, thresholds), computations

    return evaluate
