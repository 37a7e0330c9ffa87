"""The export pipeline: wall time per stage, and ORT fp32/int8 latency against PyTorch eager for every family.

Part 1 exports mobilenet (α 1.0, 224) and efficientnet_b0 with 128 calibration images and
records each stage's seconds (goal: the whole mobilenet export ≤ 30 s here).
Part 2 exports one model per family (32 calibration images) and times PyTorch eager fp32,
ORT fp32 and ORT int8 at 1 and 2 threads (goal: int8 ≤ 0.5× eager; says where int8 is slower
than ORT fp32). Profile x86-avx2 (this host: reduce_range on). Random weights: latency only.
Run by ``make bench``; alone: ``python benchmarks/export_pipeline.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import time_callable, write_result
from zoo_eager import measure as measure_eager
from zoo_eager import parse_spec

from edgecnn.pipeline.export import export
from edgecnn.runtime.loader import ort_session

NAME = "export_pipeline"  # writes results/export_stages.json and results/export_latency.json
STAGE_MODELS = ("mobilenet_v1", "efficientnet_b0")
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
    "`edgecnn.export(MODEL, profile='x86-avx2', calib_size=128)`: wall time per stage in s (synthetic "
    "calibration, random weights). Goal: the whole mobilenet export ≤ 30 s on this host."
)
LATENCY_DESCRIPTION = (
    "Batch 1 at 224², ORT CPU (all graph optimizations) fp32 and QDQ "
    "int8 (per-channel int8 weights, uint8 activations, reduce_range) against PyTorch eager fp32, p50 ms at 1 and "
    "2 threads; `int8/eager` and `int8/fp32` are 1-thread p50 ratios (int8/fp32 > 1: int8 slower than ORT fp32). "
    "Goal: int8 ≤ 0.5× eager."
)


def stage_times(model: str, calib_size: int, work: Path) -> dict[str, Any]:
    """One export, timed per stage."""
    start = time.perf_counter()
    result = export(model, profile="x86-avx2", out=work / f"{model}-stages", calib_size=calib_size)
    total = time.perf_counter() - start
    row: dict[str, Any] = {"model": model, "calib_images": calib_size}
    for name, stage in result.manifest["stages"].items():
        row[f"{name}_s"] = round(stage["seconds"], 2)
    row["total_s"] = round(total, 2)
    return row


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
    """Run both parts and write ``results/export_pipeline.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small model per part, few runs (for tests)")
    parser.add_argument("--models", help="comma list for part 2 instead of one per family")
    args = parser.parse_args(argv)
    warmup, runs, seconds = (1, 3, 0.0) if args.quick else (3, 10, 2.0)
    stage_models = ("mobilenet_v3_small",) if args.quick else STAGE_MODELS
    family_models = (
        args.models.split(",") if args.models else (("mobilenet_v3_small",) if args.quick else FAMILY_MODELS)
    )
    for model in family_models:
        parse_spec(model)
    stage_rows, latency_rows = [], []
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        work = Path(tmp)
        for model in stage_models:
            stage_rows.append(stage_times(model, 8 if args.quick else 128, work))
            print(f"{NAME}: {stage_rows[-1]}", flush=True)
        for model in family_models:
            latency_rows.append(latency_row(model, work, warmup, runs, seconds))
            print(f"{NAME}: {latency_rows[-1]}", flush=True)
    meta = {"profile": "x86-avx2", "quick": args.quick}
    for name, rows, description in (
        ("export_stages", stage_rows, STAGES_DESCRIPTION),
        ("export_latency", latency_rows, LATENCY_DESCRIPTION),
    ):
        print(f"{NAME}: wrote {write_result(name, rows, {**meta, 'description': description})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
