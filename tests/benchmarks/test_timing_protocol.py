"""benchmarks/timing_protocol.py: one model's rows measured for real (ResNet-18 α 0.25 at 32², the fast one)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
benchmark = importlib.import_module("timing_protocol")


def test_both_protocols_time_identical_copies_and_report_their_spread(tmp_path: Path):
    rows = benchmark.measure("resnet", tmp_path, repetitions=1)
    assert [r["protocol"] for r in rows] == list(benchmark.PROTOCOLS)
    for row in rows:
        assert row["model"] == "resnet" and row["repetitions"] == 1 and row["min_ms"] > 0
        assert row["last_over_first_lowest"] <= row["last_over_first"] <= row["last_over_first_highest"]
        assert row["gap_max"] >= 0 and row["gap_over_1pct"] >= row["gap_over_2pct"] >= row["gap_over_3pct"]
    copies = sorted(tmp_path.glob("resnet.copy*.onnx"))
    assert len(copies) == benchmark.COPIES and len({p.read_bytes() for p in copies}) == 1  # identical graphs
