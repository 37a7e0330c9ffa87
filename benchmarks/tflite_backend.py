"""The TFLite backend: conversion time, file sizes, and LiteRT latency (XNNPACK) beside ONNX Runtime's.

Exports one model per family at 224² (random weights, 32 synthetic calibration images, profile x86-avx2)
with `--format onnx,tflite`, and times the fp32 and int8 artifacts of both runtimes at 1 and 2 threads.
Run by ``make bench``; alone: ``python benchmarks/tflite_backend.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import time_callable, write_result

from edgecnn.pipeline.export import export
from edgecnn.runtime.loader import load

NAME = "tflite_backend"
MODELS = (
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "efficientnet_lite0",
    "resnet18",
    "densenet121",
)
THREADS = (1, 2)
DESCRIPTION = (
    "`edgecnn.export(MODEL, profile='x86-avx2', formats='onnx,tflite', calib_size=32)` at 224², random weights. "
    "`lower_s`/`int8_s`: seconds of the TFLite stage (fp32 lowering + int8 quantization with ai-edge-quantizer). "
    "Latency: p50 ms, batch 1, LiteRT interpreter with XNNPACK (int8 I/O) and ONNX Runtime (QDQ int8), "
    "1 and 2 threads."
)


def p50(path: Path, shape: tuple[int, ...], threads: int, layout: str | None, runs: int, seconds: float) -> float:
    """Median latency of one artifact through edgecnn's runner."""
    runner = load(path, threads=threads, layout=layout)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return round(time_callable(lambda: runner(x), warmup=3, runs=runs, min_seconds=seconds)["p50_ms"], 3)


def measure(model: str, work: Path, runs: int, seconds: float) -> dict[str, Any]:
    """One export and the latency table row of its artifacts."""
    result = export(model, profile="x86-avx2", out=work / model, formats="onnx,tflite", calib_size=32, holdout=8)
    manifest, artifacts = result.manifest, result.artifacts
    stage = manifest["stages"]["tflite"]
    shape = tuple(manifest["model"]["input_shape"])
    layout = manifest["model"]["tflite_input_layout"]
    row: dict[str, Any] = {
        "model": model,
        "tflite_stage_s": stage["seconds"],
        "int8_quantize_s": stage["int8"]["seconds"],
        "fp32_tflite_MB": round(artifacts["fp32_tflite"].stat().st_size / 1e6, 2),
        "int8_tflite_MB": round(artifacts["int8_tflite"].stat().st_size / 1e6, 2),
        "int8_onnx_MB": round(artifacts["int8_onnx"].stat().st_size / 1e6, 2),
    }
    for n in THREADS:
        row[f"tflite_fp32_{n}t_ms"] = p50(artifacts["fp32_tflite"], shape, n, layout, runs, seconds)
        row[f"tflite_int8_{n}t_ms"] = p50(artifacts["int8_tflite"], shape, n, layout, runs, seconds)
        row[f"ort_fp32_{n}t_ms"] = p50(artifacts["fp32_onnx"], shape, n, None, runs, seconds)
        row[f"ort_int8_{n}t_ms"] = p50(artifacts["int8_onnx"], shape, n, None, runs, seconds)
    return row


def main(argv: list[str] | None = None) -> int:
    """Measure every model and write ``results/tflite_backend.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, few runs")
    args = parser.parse_args(argv)
    models, runs, seconds = (MODELS[:1], 3, 0.0) if args.quick else (MODELS, 10, 1.5)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-tflite-bench-") as tmp:
        for model in models:
            rows.append(measure(model, Path(tmp), runs, seconds))
            print(f"{NAME}: {rows[-1]}", flush=True)
    print(f"{NAME}: wrote {write_result(NAME, rows, {'description': DESCRIPTION, 'profile': 'x86-avx2'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
