"""Drift judged by the task: one module per task (``task_<name>.py``), each a row of :data:`TASK_MODULES` (its
figures and the thresholds they miss), a task per output — given (``--task``) or inferred from the output's shape.

Tasks: ``classification`` (top-1 agreement), ``segmentation`` (mask IoU), ``detection`` (decoded, NMS'd
detections matched: F1), ``embedding`` (rank-1 retrieval agreement) and ``raw`` (cosine, SQNR); each compares
int8 outputs with the fp32 reference's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

# The tasks, one module each: figures(reference, target, thresholds), failures(figures, thresholds), HEADLINE, SHOWN,
# OPTIONS (the thresholds only it reads), and optionally against_labels(reference, target, labels, thresholds) for
# the ground truth TRUTH_TASKS gives it.
TASK_MODULES = {
    "classification": "edgecnn.analysis.task_classification",
    "segmentation": "edgecnn.analysis.task_segmentation",
    "detection": "edgecnn.analysis.task_detection",
    "embedding": "edgecnn.analysis.task_embedding",
    "raw": "edgecnn.analysis.task_raw",
}

# The kind of ground truth (edgecnn.data.calibration.label_kind) each task with an against_labels reads, and what it
# labels; per-sample classes are the classification figures' own (edgecnn.analysis.drift.figures).
TRUTH_TASKS = {"masks": ("segmentation", "pixels"), "boxes": ("detection", "objects")}


@dataclass(frozen=True)
class Task:
    """A task's figures of a target output against the reference's, and the thresholds those figures miss."""

    name: str
    figures: Callable[[np.ndarray, np.ndarray, Any], dict[str, Any]]  # (reference, target, thresholds)
    failures: Callable[[Mapping[str, Any], Any], list[str]]  # (figures, thresholds) → sentences
    headline: str  # the figure a report shows first and the repair optimises
    shown: tuple[tuple[str, str], ...]  # (figure, label) a report shows for an output of this task
    options: tuple[str, ...]  # the Thresholds fields only this task reads (--min-miou …)
    # (reference, target, ground truth of its TRUTH_TASKS kind, thresholds) → its figures against it, when it has any
    against_labels: Callable[[np.ndarray, np.ndarray, np.ndarray, Any], dict[str, Any]] | None = None


@cache
def task(name: str) -> Task:
    """The task named ``name`` (its module imported on first use); a did-you-mean error for an unknown one."""
    from edgecnn.errors import UnknownNameError

    if name not in TASK_MODULES:
        raise UnknownNameError("task", name, sorted(TASK_MODULES))
    module = importlib.import_module(TASK_MODULES[name])
    return Task(
        name,
        module.figures,
        module.failures,
        module.HEADLINE,
        module.SHOWN,
        module.OPTIONS,
        getattr(module, "against_labels", None),
    )


def option_scopes(*also: str) -> dict[str, tuple[str, ...]]:
    """Each task-only option → the scopes it needs (edgecnn/applies.py): ``also``, then ``task:NAME`` of the tasks
    that read it (joined by ``|``: any of them)."""
    readers: dict[str, list[str]] = {}
    for name in TASK_MODULES:
        for option in task(name).options:
            readers.setdefault(option, []).append(f"task:{name}")
    return {option: (*also, "|".join(names)) for option, names in readers.items()}


def check_task_options(given: Iterable[str], tasks: Mapping[str, str], flags: Mapping[str, str] | None = None) -> None:
    """A task-only option given when no output has its task (``tasks``: output → task) is an error naming the
    outputs' tasks, e.g. --min-miou for a classifier."""
    from edgecnn.applies import Rules, check_applies

    taken = {f"task:{name}" for name in tasks.values()}
    shown = ", ".join(f"{name} ({output})" for output, name in tasks.items())
    check_applies(Rules("drift", option_scopes(), flags), given, taken, why=f"the outputs are judged as {shown}")


def summary(figs: Mapping[str, Any]) -> str:
    """An output's task figures in words, e.g. "mIoU 0.9716, pixels agree 0.9865" (None shown as —)."""
    shown = task(figs["task"]).shown
    return ", ".join(f"{label} {'—' if figs.get(key) is None else format(figs[key], '.4f')}" for key, label in shown)


def parse_tasks(spec: str | None) -> dict[str, str]:
    """``--task``: one task for every output (``segmentation``) or one per output by name or index
    (``boxes=raw,1=classification``); {} when not given (each output's task is inferred)."""
    from edgecnn.errors import UsageError

    if spec is None:
        return {}
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--task '{spec}' names no task: give one, e.g. --task segmentation")
    if len(parts) == 1 and "=" not in parts[0]:
        return {"*": task(parts[0]).name}
    given: dict[str, str] = {}
    for part in parts:
        output, sep, name = part.partition("=")
        if not sep or not output.strip():
            raise UsageError(
                f"--task '{part}': with several outputs give OUTPUT=TASK for each (an output name or index), "
                "e.g. --task out=segmentation,aux=raw"
            )
        if output.strip() in given:
            raise UsageError(f"--task names output '{output.strip()}' twice")
        given[output.strip()] = task(name.strip()).name
    return given


def inferred_task(shape: tuple[int, ...]) -> str | None:
    """The task a lone output's shape makes unambiguous: N×K → classification, N×K×H×W (H, W > 1) →
    segmentation; None otherwise."""
    if len(shape) == 2 and shape[1] > 1:
        return "classification"
    if len(shape) == 4 and shape[2] > 1 and shape[3] > 1:
        return "segmentation"
    return None


def output_tasks(outputs: Mapping[str, tuple[int, ...]], given: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each output's task and where it came from: ``given`` (by name, index or ``*`` for all), else inferred for a
    lone output (said with its shape), else ``raw``."""
    from edgecnn.errors import UsageError

    names = list(outputs)
    by_name: dict[str, str] = dict.fromkeys(names, given["*"]) if "*" in given else {}
    named: dict[str, str] = {}  # outputs given by name or index, to find one given twice
    for key, name in given.items():
        if key == "*":
            continue
        if key in outputs:
            output = key
        elif key.isascii() and key.isdigit() and int(key) < len(names):  # not '²', which int() refuses
            output = names[int(key)]
        else:
            raise UsageError(
                f"--task names output '{key}', but the outputs are {', '.join(names)} (or 0…{len(names) - 1}): "
                "name one of those"
            )
        if output in named:
            raise UsageError(
                f"--task gives output '{output}' two tasks ({named[output]} and {name}, by its name and its "
                "index): give it one"
            )
        named[output] = by_name[output] = name
    chosen = {}
    for name, shape in outputs.items():
        shown = "×".join(map(str, shape))
        if name in by_name:
            chosen[name] = {"task": by_name[name], "origin": "given"}
        elif len(outputs) == 1 and inferred_task(tuple(shape)) is not None:
            chosen[name] = {"task": inferred_task(tuple(shape)), "origin": f"inferred from output '{name}' {shown}"}
        else:
            origin = "several outputs" if len(outputs) > 1 else f"output '{name}' {shown} names no task"
            chosen[name] = {"task": "raw", "origin": f"default: {origin}"}
    return chosen
