"""benchmarks/export_pipeline.py's flagship summary: min and median wall, stage medians, the time outside them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
export_pipeline = importlib.import_module("export_pipeline")


def test_summary_of_three_runs():
    runs = [
        {"wall_s": wall, "stages_s": stages, "stages": {"export": stages / 2, "tflite": stages / 2}}
        for wall, stages in ((24.0, 16.0), (31.0, 20.0), (22.0, 15.0))
    ]
    row = export_pipeline.summary("this", "warm", runs)
    assert row["runs"] == 3 and row["wall_min_s"] == 22.0 and row["wall_median_s"] == 24.0
    assert row["export_s"] == 8.0 and row["stages_s"] == 16.0
    assert row["outside_stages_s"] == 8.0  # median of 8, 11, 7
    assert row["meets_goal"] is True and row["goal_s"] == 30.0
    slow = export_pipeline.summary("this", "cold", [{**runs[1], "wall_s": 30.5}])
    assert slow["meets_goal"] is False


def test_fewer_than_three_warm_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 3"):
        export_pipeline.flagship_rows({"this": tmp_path}, 2, tmp_path)
