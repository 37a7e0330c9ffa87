"""PyTorch eager fp32 latency of representative zoo models, batch 1, on 1 and 2 CPU threads.

Models are given as specs ``name[:option=value...]``, e.g. ``mobilenet_v1:width=0.5:resolution=160``.
Run by ``make bench``; alone: ``python benchmarks/zoo_eager.py [--models ...] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from common import time_callable, write_result

from edgecnn.models import create_model
from edgecnn.models.complexity import describe_model

NAME = "zoo_eager"
DEFAULT_MODELS = (
    "mobilenet_v1",
    "mobilenet_v1:width=0.5:resolution=160",
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
QUICK_MODELS = ("mobilenet_v3_small", "mobilenet_v1:width=0.5:resolution=160")
THREADS = (1, 2)
DESCRIPTION = (
    "PyTorch eager fp32 latency of one batch-1 forward pass (eval mode, `torch.inference_mode()`) "
    "at each model's default input size unless stated, with `torch.set_num_threads(1)` and `(2)`: "
    "median (p50) and best (min) of the timed runs, in ms. Params and MACs come from `describe_model`."
)


def _number(text: str) -> int | float:
    """An option value: an int if it reads as one, else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_spec(spec: str) -> tuple[str, dict[str, int | float]]:
    """``name:key=value:key=value`` → (name, options)."""
    name, *pairs = spec.strip().split(":")
    options: dict[str, int | float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"bad option {pair!r} in model spec {spec!r} (want key=value)")
        options[key.strip()] = _number(value.strip())
    return name, options


def model_label(name: str, options: dict[str, Any]) -> str:
    """The row label: the name and its non-resolution options (the resolution is in the input column)."""
    extra = ", ".join(f"{k}={v}" for k, v in options.items() if k != "resolution")
    return f"{name} ({extra})" if extra else name


def measure(spec: str, threads: tuple[int, ...], warmup: int, runs: int, min_seconds: float) -> dict[str, Any]:
    """Params, MACs and eager latency per thread count of one model spec."""
    name, options = parse_spec(spec)
    info = describe_model(name, **options)
    torch.manual_seed(0)
    model = create_model(name, **options).eval()
    x = torch.randn(1, *model.input_size)
    row: dict[str, Any] = {
        "model": model_label(name, options),
        "input": "×".join(str(d) for d in model.input_size),
        "params_M": round(info["params"] / 1e6, 4),
        "MACs_M": round(info["macs"] / 1e6, 2),
    }
    with torch.inference_mode():
        for n in threads:
            torch.set_num_threads(n)
            stats = time_callable(lambda: model(x), warmup=warmup, runs=runs, min_seconds=min_seconds)
            row[f"eager_fp32_{n}t_p50_ms"] = round(stats["p50_ms"], 3)
            row[f"eager_fp32_{n}t_min_ms"] = round(stats["min_ms"], 3)
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="zoo_eager", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", help="comma-separated model specs (name[:option=value...]) instead of the default set"
    )
    parser.add_argument("--quick", action="store_true", help="2 small models, 3 runs (for tests)")
    parser.add_argument("--threads", default=",".join(map(str, THREADS)), help="comma-separated thread counts")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="minimum timed runs per model and thread count")
    parser.add_argument(
        "--min-seconds", type=float, default=2.0, help="minimum timed seconds per model and thread count"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.runs, args.min_seconds = 1, 3, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure the models and write ``results/zoo_eager.json``."""
    args = parse_args(argv)
    specs = args.models.split(",") if args.models else list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    specs = [s.strip() for s in specs if s.strip()]
    threads = tuple(int(t) for t in args.threads.split(","))
    for spec in specs:
        parse_spec(spec)  # reject a bad spec before spending minutes on the others
    previous_threads = torch.get_num_threads()
    rows = []
    try:
        for spec in specs:
            start = time.perf_counter()
            rows.append(measure(spec, threads, args.warmup, args.runs, args.min_seconds))
            print(f"{NAME}: {spec}: {rows[-1]} ({time.perf_counter() - start:.1f} s)", flush=True)
    finally:
        torch.set_num_threads(previous_threads)
    meta = {
        "description": DESCRIPTION,
        "batch": 1,
        "dtype": "float32",
        "threads": list(threads),
        "warmup": args.warmup,
        "min_runs": args.runs,
        "min_seconds": args.min_seconds,
        "quick": args.quick,
    }
    path = write_result(NAME, rows, meta)
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
