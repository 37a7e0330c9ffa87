"""Does `edgecnn sweep` scale with workers, and what does Ray cost per cell against a loop of export() calls?

The same 8-cell grid (MobileNetV1 α ∈ {0.25, 0.5, 0.75, 1.0} at 224², profiles x86-avx2 and raspberrypi4, each
cell export()'s defaults) four ways, each a fresh process timed from start to exit: ``edgecnn sweep --workers 1``,
``--workers 2``, a Python loop calling ``edgecnn.export()`` for the same cells, and two such loops side by side.
Run by ``make bench``; alone: ``python benchmarks/sweep_scaling.py [--quick]`` (4 cells).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, write_result

NAME = "sweep_scaling"
WIDTHS = [0.25, 0.5, 0.75, 1.0]
PROFILES = ["x86-avx2", "raspberrypi4"]
RESOLUTION = 224
# export-bound cells, each the export a user runs with the defaults (the profile's formats: ONNX, .ort and .tflite;
# the recipe's 128 calibration samples, 64 held out); at 64² and ONNX only a cell takes 2-3 s and Ray's fixed start
# and shutdown rule the ratios
EXPORT: dict[str, int] = {}
DESCRIPTION = (
    f"The same grid of MobileNetV1 cells (α ∈ {{0.25, 0.5, 0.75, 1.0}} at {RESOLUTION}² × x86-avx2, raspberrypi4; "
    "export()'s defaults: the profile's formats ONNX, .ort and .tflite, the recipe's 128 synthetic calibration "
    "samples, 64 held out), each way a fresh process timed to its exit: "
    "`edgecnn sweep --workers 1` and `--workers 2` (local Ray), and a loop calling `edgecnn.export()`. "
    "`speedup` = 1 worker / 2 workers (goal ≥ 1.7 on 2 cores for export-bound cells); `ray_overhead_%` = "
    "1 worker / loop − 1 (goal ≤ 10 %), Ray's start included; `per_cell_s` = wall time / cells; `export_s` = the "
    "cells' own export times summed (a worker's first cell pays its imports); `ray_fixed_s` = 1 worker's wall − its "
    "cells' export time (Ray's start, scheduling and shutdown, the spec's check, the summary and charts); "
    "`ceiling_speedup` = the loop / the same cells as two plain loops side by side, no Ray (what these two cores "
    "give two exporting processes: the most any scheduler reaches here); `load_avg`: the machine's 1-minute load "
    "before and after (above 2 on this 2-core host, other work shared the cores and the ratios mean little)."
)

LOOP = """
import sys, time, json
import edgecnn
cells = json.loads(sys.argv[1])
for cell in cells:
    edgecnn.export("mobilenet_v1", out=cell["out"], force=True, **cell["options"])
"""


def spec_text(widths: list[float]) -> str:
    models = json.dumps([{"name": "mobilenet_v1", "width": widths, "resolution": RESOLUTION}])
    return f"models: {models}\nprofiles: {json.dumps(PROFILES)}\nexport: {json.dumps(EXPORT)}\n"


def timed(argv: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def _ceiling(folder: Path, todo: list[dict]) -> float:
    """The loop's cells as two plain loops side by side, no Ray (each half the cells, interleaved): the wall time. The
    loop's wall over it is what these two cores give two exporting processes, the most any scheduler reaches."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    halves = [[{**cell, "out": cell["out"] + f"-half{i}"} for cell in todo[i::2]] for i in range(2)]
    pair = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP, json.dumps(half)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for half in halves
    ]
    if any(p.wait() for p in pair):
        raise RuntimeError("a side-by-side export loop failed")
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 cells instead of 8")
    args = parser.parse_args(argv)
    widths = WIDTHS[:2] if args.quick else WIDTHS
    cells = len(widths) * len(PROFILES)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        folder = Path(tmp)
        (folder / "spec.yaml").write_text(spec_text(widths))
        sweep = [sys.executable, "-m", "edgecnn", "sweep", "spec.yaml"]
        one = timed([*sweep, "--out", "w1", "--workers", "1"], folder)
        two = timed([*sweep, "--out", "w2", "--workers", "2"], folder)
        todo = [
            {
                "out": str(folder / "loop" / f"{w}-{p}"),
                "options": {**EXPORT, "profile": p, "width": w, "resolution": RESOLUTION},
            }
            for w in widths
            for p in PROFILES
        ]
        loop = timed([sys.executable, "-c", LOOP, json.dumps(todo)], folder)
        pair = _ceiling(folder, todo)
        records = {
            w: [json.loads(line) for line in (folder / w / "results.jsonl").read_text().splitlines()]
            for w in ("w1", "w2")
        }
        statuses = [r["status"] for r in records["w2"]]
        export_s = {w: round(sum(r["export_s"] for r in rs), 1) for w, rs in records.items()}
    rows = [
        {"run": "export() loop", "cells": cells, "wall_s": round(loop, 1), "per_cell_s": round(loop / cells, 2)},
        {"run": "two export() loops side by side", "cells": cells, "wall_s": round(pair, 1)},
        {
            "run": "sweep --workers 1",
            "cells": cells,
            "wall_s": round(one, 1),
            "per_cell_s": round(one / cells, 2),
            "export_s": export_s["w1"],
        },
        {
            "run": "sweep --workers 2",
            "cells": cells,
            "wall_s": round(two, 1),
            "per_cell_s": round(two / cells, 2),
            "export_s": export_s["w2"],
        },
    ]
    meta = {
        "description": DESCRIPTION,
        "speedup": round(one / two, 2),
        "ray_overhead_%": round((one / loop - 1) * 100, 1),
        "ray_fixed_s": round(one - export_s["w1"], 1),
        "ceiling_speedup": round(loop / pair, 2),
        "cells_ok": statuses.count("ok"),
        # the 1-minute load average of the machine (2 cores) before and after: above 2, other work shared the cores
        "load_avg": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
    }
    write_result(NAME, rows, meta)
    print(json.dumps({"rows": rows, **{k: v for k, v in meta.items() if k != "description"}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
