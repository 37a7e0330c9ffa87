"""The export pipeline: the flagship command's wall time per stage, and ORT fp32/int8 latency against PyTorch eager.

Part 1 runs ``edgecnn export mobilenet --profile raspberrypi4`` (the planner chooses the scaling; 128
calibration images; ONNX, ORT and TFLite artifacts, every check) as a subprocess of the real CLI: one run with an
empty op-cost cache, then ``--runs`` with it warm; wall time min and median, each stage's seconds (median, from
the manifests) and the time outside the stages (imports, planner, calibration data, manifest), against the goal
of ≤ 30 s. ``--against DIR`` times another checkout of edgecnn the same way, round by round in turn with this
one, so both see the same load of this shared host.
Part 2 exports one model per family (32 calibration images) and times PyTorch eager fp32,
ORT fp32 and ORT int8 at 1 and 2 threads (goal: int8 ≤ 0.5× eager; says where int8 is slower
than ORT fp32). Profile x86-avx2 (this host: reduce_range on). Random weights: latency only.
Run by ``make bench``; alone: ``python benchmarks/export_pipeline.py [--quick] [--only flagship|latency]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, time_callable, write_result
from zoo_eager import measure as measure_eager
from zoo_eager import parse_spec

from edgecnn.pipeline.export import export
from edgecnn.runtime.loader import ort_session

NAME = "export_pipeline"  # writes results/export_stages.json and results/export_latency.json
FLAGSHIP = ("export", "mobilenet", "--profile", "raspberrypi4")
CALIB_IMAGES = 128  # the mobilenet recipe's calibration size: the flagship command passes no --calib-size
GOAL_S = 30.0
FAMILY_MODELS = (
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_lite0",
    "resnet18",
    "resnet50",
    "densenet121",
    "resnet50_dcn",
)
THREADS = (1, 2)
STAGES_DESCRIPTION = (
    "`edgecnn export mobilenet --profile raspberrypi4` as a subprocess of the CLI (planner, 128 synthetic "
    "calibration images, ONNX + ORT + TFLite, every check): wall time in s, min and median of the runs; each "
    "stage's seconds and `outside_stages_s` (wall less the stages: imports, planner, calibration data, manifest) "
    "are medians. `cache`: cold = the op-cost cache empty (1 run), warm = filled by the cold run; `code`: this "
    "checkout, or the one `--against` names (run in turn with it; meta `codes`). The host is shared: meta "
    "`load_1min_before_after` is its load average. Goal: wall ≤ 30 s."
)
LATENCY_DESCRIPTION = (
    "Batch 1 at 224², ORT CPU (all graph optimizations) fp32 and QDQ "
    "int8 (per-channel int8 weights, uint8 activations, reduce_range) against PyTorch eager fp32, p50 ms at 1 and "
    "2 threads; `int8/eager` and `int8/fp32` are 1-thread p50 ratios (int8/fp32 > 1: int8 slower than ORT fp32). "
    "Goal: int8 ≤ 0.5× eager."
)


def cli_run(code: Path, work: Path, cache: Path) -> dict[str, Any]:
    """One flagship export by the CLI of the checkout ``code`` (op-cost cache ``cache``): wall seconds, and the
    manifest's seconds in the stages and per stage."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work)) / "out"
    env = {**os.environ, "PYTHONPATH": str(code), "EDGECNN_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", *FLAGSHIP, "--out", str(out)],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(FLAGSHIP)} ({code}) exited {done.returncode}: {done.stderr[-2000:]}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    shutil.rmtree(out.parent)
    if manifest["calibration"]["count"] != CALIB_IMAGES or set(manifest["formats"]) != {"onnx", "ort", "tflite"}:
        raise RuntimeError(f"not the flagship export: {manifest['calibration']['count']} images, {manifest['formats']}")
    stages = {name: s["seconds"] for name, s in manifest["stages"].items() if s["status"] != "skipped"}
    return {"wall_s": wall, "stages_s": manifest["seconds"], "stages": stages}


def summary(code: str, cache: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row: wall min and median, and the medians of the stages and of the time outside them."""
    walls = [r["wall_s"] for r in runs]
    row: dict[str, Any] = {"code": code, "cache": cache, "runs": len(runs)}
    row["wall_min_s"], row["wall_median_s"] = round(min(walls), 2), round(statistics.median(walls), 2)
    for name in runs[0]["stages"]:
        row[f"{name}_s"] = round(statistics.median(r["stages"][name] for r in runs), 2)
    row["stages_s"] = round(statistics.median(r["stages_s"] for r in runs), 2)
    row["outside_stages_s"] = round(statistics.median(r["wall_s"] - r["stages_s"] for r in runs), 2)
    row["goal_s"] = GOAL_S
    row["meets_goal"] = row["wall_median_s"] <= GOAL_S
    return row


def flagship_rows(codes: dict[str, Path], runs: int, work: Path) -> list[dict[str, Any]]:
    """Per checkout (label → directory): one run with an empty op-cost cache, then ``runs`` with it warm; the
    checkouts take turns run by run."""
    if runs < 3:
        raise ValueError(f"the flagship needs at least 3 warm runs, got {runs}")
    measured: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index in range(runs + 1):
        cache = "cold" if index == 0 else "warm"
        for label, code in codes.items():
            run = cli_run(code, work, work / f"cache-{label}")
            measured.setdefault((label, cache), []).append(run)
            print(f"{NAME}: {label} {cache} wall {run['wall_s']:.2f} s, stages {run['stages_s']:.2f} s", flush=True)
    return [summary(label, cache, found) for (label, cache), found in measured.items()]


def ort_latency(path: Path, shape: tuple[int, ...], threads: int, warmup: int, runs: int, seconds: float) -> float:
    """p50 ms of one ORT session on a random input."""
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return time_callable(lambda: session.run(None, {name: x}), warmup, runs, seconds)["p50_ms"]


def latency_row(model: str, work: Path, warmup: int, runs: int, seconds: float) -> dict[str, Any]:
    """Eager vs ORT fp32 vs ORT int8 for one model."""
    result = export(model, profile="x86-avx2", out=work / f"{model}-latency", calib_size=32, holdout=8, formats="onnx")
    shape = tuple(result.manifest["model"]["input_shape"])
    eager = measure_eager(model, THREADS, warmup, runs, seconds)
    row: dict[str, Any] = {"model": model, "input": eager["input"]}
    for n in THREADS:
        row[f"eager_{n}t_ms"] = eager[f"eager_fp32_{n}t_p50_ms"]
        row[f"ort_fp32_{n}t_ms"] = round(ort_latency(result.artifacts["fp32_onnx"], shape, n, warmup, runs, seconds), 3)
        row[f"ort_int8_{n}t_ms"] = round(ort_latency(result.artifacts["int8_onnx"], shape, n, warmup, runs, seconds), 3)
    row["int8/eager"] = round(row["ort_int8_1t_ms"] / row["eager_1t_ms"], 3)
    row["int8/fp32"] = round(row["ort_int8_1t_ms"] / row["ort_fp32_1t_ms"], 3)
    row["int8_slower_than_fp32"] = row["int8/fp32"] > 1.0
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for and write ``results/export_stages.json`` and ``results/export_latency.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 warm flagship runs; one small model in part 2")
    parser.add_argument("--only", choices=("flagship", "latency"), help="run one part (the other's results stay)")
    parser.add_argument("--runs", type=int, help="warm runs of the flagship command (≥ 3; default 5, quick 3)")
    parser.add_argument("--against", type=Path, help="another edgecnn checkout to time the flagship of, in turn")
    parser.add_argument("--against-label", default="against", help="its `code` in the rows (e.g. its commit)")
    parser.add_argument("--models", help="comma list for part 2 instead of one per family")
    args = parser.parse_args(argv)
    warmup, repeats, seconds = (1, 3, 0.0) if args.quick else (3, 10, 2.0)
    family_models = (
        args.models.split(",") if args.models else (("mobilenet_v3_small",) if args.quick else FAMILY_MODELS)
    )
    for model in family_models:
        parse_spec(model)
    codes = {"this": REPO_ROOT}
    if args.against is not None:
        if not (args.against / "edgecnn" / "__init__.py").is_file():
            parser.error(f"--against {args.against}: no edgecnn package there")
        if args.against_label == "this":
            parser.error("--against-label: 'this' names this checkout")
        codes[args.against_label] = args.against.resolve()
    meta = {"quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        work = Path(tmp)
        if args.only != "latency":
            load_before = os.getloadavg()[0]
            rows = flagship_rows(codes, args.runs or (3 if args.quick else 5), work)
            for row in rows:
                print(f"{NAME}: {row}", flush=True)
            stages_meta = {
                **meta,
                "command": f"edgecnn {' '.join(FLAGSHIP)}",
                "codes": {label: str(code) for label, code in codes.items()},
                "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "description": STAGES_DESCRIPTION,
            }
            print(f"{NAME}: wrote {write_result('export_stages', rows, stages_meta)}")
        if args.only != "flagship":
            latency_rows = [latency_row(model, work, warmup, repeats, seconds) for model in family_models]
            for row in latency_rows:
                print(f"{NAME}: {row}", flush=True)
            latency_meta = {**meta, "profile": "x86-avx2", "description": LATENCY_DESCRIPTION}
            print(f"{NAME}: wrote {write_result('export_latency', latency_rows, latency_meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
