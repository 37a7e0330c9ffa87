"""Int8 drift judged by the task, on real data: the task networks of the tests (tests/fixtures/tasks.py: digits
pasted on 32×32 canvases), trained here, exported to int8 `.onnx` and `.tflite` with the task's default thresholds.

For each task: the fp32 and int8 figure against the ground truth (mIoU, detection recall, retrieval precision,
accuracy), the task's own fp32-referenced figure of each int8 artifact (before and after the export's repair of
each), whether the drift check passed, and the int8/fp32 latency on this host (1 thread, p50).
Run by ``make bench``; alone: ``python benchmarks/task_drift.py [--tasks segmentation,detection]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, time_callable, write_result

sys.path.insert(0, str(REPO_ROOT))  # the task networks live with the test fixtures

from edgecnn.analysis.drift import Thresholds, score
from edgecnn.analysis.task_detection import map50, truths
from edgecnn.analysis.task_embedding import nearest
from edgecnn.config.recipes import CALIBRATION_METHODS as METHODS
from edgecnn.data.calibration import box_truth
from edgecnn.pipeline.export import export
from edgecnn.runtime.loader import load
from tests.fixtures import tasks
from tests.fixtures.digits import MEAN, STD, digits, normalise

NAME = "task_drift"
# task → (export's --task, the figure against ground truth, how to compute it from the model's outputs)
TASKS: dict[str, tuple[str | None, str]] = {
    "segmentation": (None, "mIoU vs truth"),
    "detection": ("detection", "mAP@0.5 vs truth"),
    "embedding": ("embedding", "retrieval precision"),
    "class_box": ("output_0=classification,output_1=raw", "accuracy vs truth"),
}
DESCRIPTION = (
    "Task networks of tests/fixtures/tasks.py trained on digit canvases (segmentation N×11×16×16, a YOLO-layout "
    "detector N×14×16, an N×32 embedding, a class + box head), exported with `edgecnn.export(formats='onnx,tflite', "
    "calib=<64 of 300 held-out canvases>, holdout=128, task=…)` and the task's default thresholds. `truth_*`: the "
    "task's figure against the ground truth on all 300 test canvases (360 digits for the embedding; for the "
    "detector its label boxes' mAP@0.5, COCO's AP50 as `edgecnn drift` computes it, on the detections after the "
    "default --score-threshold 0.25 and NMS); "
    "`task_before`/`task_after`: the task's figure of the int8 ORT model against fp32 on the 128 held-out samples "
    "before and after the export's repair; `task_tflite_before`/`task_tflite`: the same for the int8 .tflite "
    "(repaired by its own global remedies, then per-op ranking; `tflite_outputs`: its outputs' dtype after the "
    "repair); `by_method_no_repair`: per --method, exported again without repair (`fix=False`), the int8 ORT and "
    ".tflite figures against the truth and against fp32. Latency: 1 thread, p50."
)


def _truth(task: str) -> tuple[np.ndarray, Callable[[dict[str, np.ndarray]], float]]:
    """The task's test inputs and its figure against the ground truth, from a model's outputs by name."""
    if task == "embedding":
        _, _, test_x, test_y = digits()
        return normalise(test_x, MEAN, STD), lambda out: float(
            np.mean(test_y[nearest(next(iter(out.values())))] == test_y)
        )
    data = tasks.digit_canvases(300, most=1 if task == "class_box" else 3, split="test", seed=1)
    if task == "segmentation":
        truth = tasks.half(data["masks"])
        return data["images"], lambda out: tasks.mean_iou(next(iter(out.values())).argmax(1), truth)
    if task == "detection":
        truth = truths(box_truth(**tasks.box_labels(data["boxes"])))
        return data["images"], lambda out: map50(next(iter(out.values())), truth, Thresholds())
    classes = np.concatenate(data["boxes"])[:, 4]
    return data["images"], lambda out: float(np.mean(out["output_0"].argmax(1) == classes))


def _p50(path: Path, x: np.ndarray, layout: str | None = None) -> float:
    runner = load(path, threads=1, layout=layout)
    return time_callable(lambda: runner.run_all(x), warmup=5, runs=50)["p50_ms"]


def _export(task: str, model: dict[str, Any], out: Path, **options: Any) -> Any:
    """The task network exported to int8 `.onnx` and `.tflite` as a user would, with ``options``."""
    return export(
        f"tests.fixtures.tasks:build_{task}",
        out=out,
        weights=model["path"],
        input_shape="1,1,32,32",
        calib=model["npz"],
        calib_size=64,
        holdout=128,
        formats="onnx,tflite",
        task=TASKS[task][0],
        allow_drift=True,
        **options,
    )


def _by_method(task: str, model: dict[str, Any], work: Path, x: np.ndarray, truth: Any) -> dict[str, Any]:
    """Per calibration method, without repair: the int8 ORT and `.tflite` figures against the ground truth and the
    task figures against fp32 (each `.tflite` activation calibrated on its own tensors for percentile, entropy and
    auto: ``pipeline.tflite_calibration``)."""
    found: dict[str, Any] = {}
    for method in METHODS:
        result = _export(task, model, work / f"{task}-{method}", method=method, fix=False)
        layout = result.manifest["model"].get("tflite_input_layout")
        formats = result.manifest["agreement"]["formats"]
        found[method] = {
            "truth_int8_ort": round(truth(load(result.artifacts["int8_onnx"]).run_all(x)), 4),
            "truth_int8_tflite": round(truth(load(result.artifacts["int8_tflite"], layout=layout).run_all(x)), 4),
            "task_ort": round(result.manifest["drift"]["final"]["score"], 4),
            "task_tflite": round(score(formats["tflite"]), 4),
        }
    return found


def measure(task: str, work: Path) -> dict[str, Any]:
    """Train, export and measure one task network; its row."""
    model = getattr(tasks, f"train_{task}")(work)
    figure = TASKS[task][1]
    result = _export(task, model, work / task)
    manifest, artifacts = result.manifest, result.artifacts
    drift, layout = manifest["drift"], manifest["model"].get("tflite_input_layout")
    x, truth = _truth(task)
    runs = {key: load(artifacts[key], layout=layout).run_all(x) for key in ("fp32_onnx", "int8_onnx", "int8_tflite")}
    one = x[:1]
    fp32_ms = _p50(artifacts["fp32_onnx"], one)
    tflite, tflite_outcome = manifest["agreement"]["formats"]["tflite"], drift["formats"]["tflite"]
    return {
        "task": task,
        "judged_as": ", ".join(f"{n}: {o['task']}" for n, o in tflite["outputs"].items()),
        "truth_figure": figure,
        "truth_fp32": round(truth(runs["fp32_onnx"]), 4),
        "truth_int8_ort": round(truth(runs["int8_onnx"]), 4),
        "truth_int8_tflite": round(truth(runs["int8_tflite"]), 4),
        "task_before": round(drift["initial"]["score"], 4),
        "task_after": round(drift["final"]["score"], 4),
        "task_tflite_before": round(tflite_outcome.get("initial", {}).get("score", score(tflite)), 4),
        "task_tflite": round(score(tflite), 4),
        "passed": drift["passed"],
        "repair": drift.get("fix", {}).get("chosen", "none needed"),
        "tflite_repair": tflite_outcome.get("fix", {}).get("chosen", "none needed"),
        "tflite_outputs": manifest["stages"]["tflite"]["int8"]["io"]["output_dtype"],
        "int8_over_fp32_ort": round(_p50(artifacts["int8_onnx"], one) / fp32_ms, 3),
        "int8_over_fp32_tflite": round(_p50(artifacts["int8_tflite"], one, layout) / fp32_ms, 3),
        "by_method_no_repair": _by_method(task, model, work, x, truth),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every task (or those given) and write ``results/task_drift.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", help=f"comma list among {', '.join(TASKS)}")
    args = parser.parse_args(argv)
    chosen = args.tasks.split(",") if args.tasks else list(TASKS)
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        parser.error(f"unknown tasks: {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-task-bench-") as tmp:
        for task in chosen:
            rows.append(measure(task, Path(tmp)))
            print(f"{NAME}: {rows[-1]}", flush=True)
    print(f"{NAME}: wrote {write_result(NAME, rows, {'description': DESCRIPTION, 'profile': 'x86-avx2'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
