"""How far apart the export's timed choices see identical graphs: the spread its margins must stand above.

The export times variants of a graph on this host and ships the faster (the float-op choice, margin 2%; the weights
choice, margin 3%). Three things here make identical graphs time differently: the ORT session loaded last runs
0.7–2.7% faster than identical ones loaded before it; each session's placement leaves ~1% (a 32² MobileNet) to ~3%
(DenseNet-121) between identical ones, a different one slow after each reload — neither removed by more rounds —;
and the host's slow spells last tenths of a second, while three 32² MobileNets' 5 × 20 runs take 25 ms. Each row
loads three copies of one int8 graph (quant_peers' architectures at 32²×1, random weights, per-channel, edgecnn's
Quantizer) and times them, repeatedly, with the choices' protocols: ``former`` (to stop 39: loaded in turn; 5
interleaved rounds of 20 runs), ``one_load`` (stop 40: ``host_timing.warm_calls``' ballast session loaded last,
``interleaved_calls_min_ms`` with the choices' budget and rounds added up to 1 s) and ``current``
(``host_timing.interleaved_min_ms``: the minimum over ``LOADS`` loads in reversed orders, each with its ballast,
rounds added up to ``MIN_SPAN_S`` in all), the protocols taking turns. Run by ``make bench``; alone:
``python benchmarks/timing_protocol.py [--quick]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, write_result

sys.path.insert(0, str(REPO_ROOT))

NAME = "timing_protocol"
MODELS = ("mobilenet", "efficientnet_b0", "resnet", "densenet121")  # keys of quant_peers.MODELS
COPIES = 3


def describe() -> str:
    """The result's description, with the current protocol's loads and span as the package has them."""
    from edgecnn.runtime.host_timing import LOADS, MIN_SPAN_S

    return (
        f"{COPIES} copies of one int8 graph (quant_peers' architectures at 32²×1, random weights, per-channel "
        "weights, edgecnn's Quantizer, minmax on 16 random samples), loaded and timed side by side (ORT, 1 thread, "
        "min ms), `repetitions` times with each protocol, the protocols taking turns. `former`: loaded in turn, 5 "
        "interleaved rounds of 20 runs (the choices' protocol to stop 39); `one_load`: a ballast session loaded "
        "last, at least 1 s of rounds (stop 40); `current`: the export's choices' protocol now (the minimum over "
        f"{LOADS} loads in reversed orders, each with its ballast, at least {MIN_SPAN_S:g} s of rounds in all). "
        "`last_over_first`: the last-loaded copy's min over the first-loaded copy's (mean, lowest, highest over the "
        "repetitions: below 1, the last one looks faster); `gap_max`: the largest spread of the copies in one "
        "repetition (slowest/fastest − 1); `gap_over_1pct`, `gap_over_2pct`, `gap_over_3pct`: in how many "
        "repetitions identical copies were further apart than 1% (the float-op choice's former margin), 2% (its "
        "margin now) and 3% (the weights choice's); `seconds`: one timing's wall time."
    )


def int8_graph(key: str, work: Path) -> Path:
    """quant_peers' model ``key`` (random weights, 32²×1) as a per-channel int8 ONNX graph."""
    from weight_granularity_latency import SAMPLES, fp32_graph

    from edgecnn.pipeline.quantize import Quantizer

    fp32 = fp32_graph(key, 32, 1, work)
    images = np.random.default_rng(0).standard_normal((SAMPLES, 1, 32, 32)).astype(np.float32)
    path = work / f"{key}.int8.onnx"
    with Quantizer(fp32, images) as quantizer:
        quantizer.quantize(path, "minmax", per_channel=True)
    return path


def _former(paths: dict[str, Path]) -> dict[str, float]:
    from edgecnn.runtime.host_timing import interleaved_calls_min_ms, warm_call

    return interleaved_calls_min_ms({key: warm_call(path) for key, path in paths.items()}, 5, 20)


def _one_load(paths: dict[str, Path]) -> dict[str, float]:
    from edgecnn.pipeline.float_choice import BUDGET_S, ROUNDS, RUNS
    from edgecnn.runtime.host_timing import interleaved_calls_min_ms, warm_calls

    warmed = warm_calls(paths, required=tuple(paths))
    return interleaved_calls_min_ms(warmed.calls, ROUNDS, RUNS, BUDGET_S, span_s=1.0)  # stop 40's span


def _current(paths: dict[str, Path]) -> dict[str, float]:
    from edgecnn.pipeline.float_choice import BUDGET_S, ROUNDS, RUNS
    from edgecnn.runtime.host_timing import interleaved_min_ms

    return interleaved_min_ms(paths, ROUNDS, RUNS, BUDGET_S)


PROTOCOLS = {"former": _former, "one_load": _one_load, "current": _current}


def measure(key: str, work: Path, repetitions: int) -> list[dict[str, Any]]:
    """Two rows (one per protocol) for the model ``key``: its copies' spread over ``repetitions`` timings each."""
    graph = int8_graph(key, work)
    paths = {f"copy{i}": work / f"{key}.copy{i}.onnx" for i in range(COPIES)}
    for path in paths.values():
        shutil.copyfile(graph, path)
    first, last = next(iter(paths)), list(paths)[-1]
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in PROTOCOLS}
    seconds: dict[str, list[float]] = {name: [] for name in PROTOCOLS}
    for _ in range(repetitions):
        for name, protocol in PROTOCOLS.items():
            start = time.perf_counter()
            seen[name].append(protocol(paths))
            seconds[name].append(time.perf_counter() - start)
    rows = []
    for name, timings in seen.items():
        ratios = np.array([t[last] / t[first] for t in timings])
        gaps = np.array([max(t.values()) / min(t.values()) - 1 for t in timings])
        rows.append({
            "model": key,
            "protocol": name,
            "repetitions": repetitions,
            "min_ms": round(min(min(t.values()) for t in timings), 4),
            "last_over_first": round(float(ratios.mean()), 4),
            "last_over_first_lowest": round(float(ratios.min()), 4),
            "last_over_first_highest": round(float(ratios.max()), 4),
            "gap_max": round(float(gaps.max()), 4),
            "gap_over_1pct": int((gaps > 0.01).sum()),
            "gap_over_2pct": int((gaps > 0.02).sum()),
            "gap_over_3pct": int((gaps > 0.03).sum()),
            "seconds": round(float(np.median(seconds[name])), 2),
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure every model with both protocols and write ``results/timing_protocol.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MobileNetV1 only, 3 repetitions")
    args = parser.parse_args(argv)
    keys, repetitions = (MODELS[:1], 3) if args.quick else (MODELS, 16)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-timing-") as tmp:
        for key in keys:
            for row in measure(key, Path(tmp), repetitions):
                rows.append(row)
                print(row, flush=True)
    meta = {"description": describe(), "copies": COPIES, "quick": args.quick}
    print(write_result(NAME, rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
