"""Does the on-device harness measure what the runtime does? Its p50 against a bare timing loop, and the spread.

Exports MobileNetV1 (224², random weights, synthetic calibration, profile x86-avx2) to fp32 and QDQ int8
ONNX and lowers the fp32 graph to ``.tflite``; times each with ``edgecnn.bench.bench`` (the harness in a
subprocess, as ``edgecnn bench`` runs it) and with a bare loop in this process around ``session.run`` /
``interpreter.invoke`` (same thread count, same optimizations, same input), also in a fresh process per round
(without torch, like the harness). Both alternate over several rounds, so drift in the machine's speed and
process-to-process variation hit both; the figure is the median of the rounds' p50s.
Run by ``make bench``; alone: ``python benchmarks/harness_overhead.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import write_result

from edgecnn.bench import bench

NAME = "harness_overhead"
MODEL = "mobilenet_v1"
DESCRIPTION = (
    f"{MODEL} at 224² (random weights), batch 1, 1 thread. `harness_p50_ms`: `edgecnn bench` (the standalone "
    "harness in a subprocess); `bare_p50_ms`: a bare `time.perf_counter()` loop around ONNX Runtime's "
    "`session.run` (all graph optimizations) or LiteRT's `invoke` (XNNPACK), also in a fresh process, same "
    "input. Each is the median p50 of alternating rounds of N runs after a warm-up; `overhead_%` = harness/bare − 1 "
    "(goal: within ±5 %). `spread`: p99/p50 within a round (median over the rounds), harness and bare loop: "
    "how noisy this host is."
)


def bare_ort(path: Path, threads: int) -> Callable[[], Any]:
    """One ``session.run`` of ``path`` with the harness's session options and input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    feeds = {first.name: np.random.default_rng(0).standard_normal(first.shape).astype(np.float32)}
    return lambda: session.run(None, feeds)


def bare_tflite(path: Path, threads: int) -> Callable[[], Any]:
    """One ``invoke`` of ``path`` (XNNPACK, as the harness's default), input set once."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).standard_normal(detail["shape"]).astype("f4"))
    return interpreter.invoke


def bare_loop(run: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """Latencies in ms of ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bare_in_subprocess(kind: str, path: Path, runs: int, warmup: int) -> list[float]:
    """Latencies of a bare loop run in a fresh process (``--bare KIND PATH``): no torch, no harness."""
    argv = [sys.executable, __file__, "--bare", kind, str(path), "--runs", str(runs), "--warmup", str(warmup)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(p99: list[float], p50: list[float]) -> float:
    """Median over rounds of p99/p50."""
    return statistics.median(a / b for a, b in zip(p99, p50, strict=True))


def compare(label: str, path: Path, kind: str, rounds: int, runs: int) -> dict[str, Any]:
    """Row of one artifact: harness and bare p50 (median over rounds), overhead, spreads."""
    warmup = 20
    harness_p50, bare_p50, harness_p99, bare_p99 = [], [], [], []
    for _ in range(rounds):
        (result,) = bench([path], threads=1, runs=runs, warmup=warmup)
        harness_p50.append(result["p50_ms"])
        harness_p99.append(result["p99_ms"])
        times = bare_in_subprocess(kind, path, runs, warmup)
        bare_p50.append(float(np.percentile(times, 50)))
        bare_p99.append(float(np.percentile(times, 99)))
    harness, bare = statistics.median(harness_p50), statistics.median(bare_p50)
    row = {
        "artifact": label,
        "runtime": f"{result['runtime']['name']} {result['runtime']['version']}",
        "delegate": result["delegate"],
        "rounds×runs": f"{rounds}×{runs}",
        "harness_p50_ms": round(harness, 3),
        "bare_p50_ms": round(bare, 3),
        "overhead_%": round((harness / bare - 1) * 100, 1),
        "harness_spread_p99/p50": round(spread(harness_p99, harness_p50), 2),
        "bare_spread_p99/p50": round(spread(bare_p99, bare_p50), 2),
        "load_ms": result["load_ms"],
        "peak_rss_mb": result["peak_rss_mb"],
    }
    print(f"{NAME}: {label}: harness {harness:.3f} ms, bare {bare:.3f} ms ({row['overhead_%']:+.1f} %)", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    """Export the model, compare harness and bare loop, write ``results/harness_overhead.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 30 runs")
    parser.add_argument("--bare", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:  # the child of bare_in_subprocess: print the latencies as JSON
        kind, path = args.bare
        run = (bare_tflite if kind == "tflite" else bare_ort)(Path(path), 1)
        print(json.dumps(bare_loop(run, args.runs, args.warmup)))
        return 0
    rounds, runs = (2, 30) if args.quick else (7, 200)
    from edgecnn.lowering.tflite import convert
    from edgecnn.pipeline.export import export

    with tempfile.TemporaryDirectory(prefix="edgecnn-harness-") as tmp:
        work = Path(tmp)
        made = export(MODEL, profile="x86-avx2", out=work / MODEL, calib_size=16, holdout=4, formats="onnx")
        fp32, int8 = Path(made.artifacts["fp32_onnx"]), Path(made.artifacts["int8_onnx"])
        tflite = work / "model.fp32.tflite"
        tflite.write_bytes(convert(fp32).data)
        rows = [
            compare("model.fp32.onnx", fp32, "ort", rounds, runs),
            compare("model.int8.onnx", int8, "ort", rounds, runs),
            compare("model.fp32.tflite", tflite, "tflite", rounds, runs),
        ]
    path = write_result(NAME, rows, {"description": DESCRIPTION, "model": MODEL, "rounds": rounds, "runs": runs})
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
