"""benchmarks/x86_saturation.py: without an emulator its avx2 figures say so; with one (benchmark-only, like the
NNCF venv) its probe saturates and the rows carry the emulated kernels' figures."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")
x86_saturation = importlib.import_module("x86_saturation")
TINY = "mobilenet_v1_w025"


def test_run_takes_the_benchmark_and_not_its_runner():
    names = importlib.import_module("run").benchmark_paths()
    assert "x86_saturation" in names and "_x86_kernels_run" not in names


def test_no_emulator_is_said_and_a_missing_one_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("EDGECNN_X86_EMULATOR", raising=False)
    assert x86_saturation.emulator(None)[0] is None and "no emulator" in x86_saturation.emulator(None)[2]
    missing = tmp_path / "qemu-x86_64"
    prefix, _, why = x86_saturation.emulator(str(missing))
    assert prefix is None and why == f"not run (no emulator at {missing})"


def test_the_probe_gives_the_exact_sum_or_the_saturated_one():
    value = float(x86_saturation.run_kernels(["--probe"]))
    exact = 64.15  # 64 on the output's uint8 grid
    assert abs(value - exact) < 0.01 or 30 < value < 35  # VNNI/ARM exact; x86 AVX2 without VNNI: pair sums saturate


def test_without_an_emulator_every_row_has_the_native_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.delenv("EDGECNN_X86_EMULATOR", raising=False)
    assert x86_saturation.main(["--only", TINY, "--epochs", "0"]) == 0
    result = json.loads((tmp_path / "results" / "x86_saturation.json").read_text())
    assert [r["variant"] for r in result["rows"]] == list(x86_saturation.VARIANTS)
    held_out = 1000
    for row in result["rows"]:
        assert "error" not in row and row["avx2"].startswith("not run (no emulator")
        assert 0 <= row["qdq_disagree"] <= held_out and 0 <= row["host_disagree"] <= held_out
        assert -1 <= row["qdq_cosine"] <= 1.0001
    assert result["meta"]["emulator"].startswith("not run")


@pytest.mark.skipif(not os.environ.get("EDGECNN_X86_EMULATOR"), reason="no x86 emulator ($EDGECNN_X86_EMULATOR)")
def test_with_the_emulator_the_probe_saturates_and_rows_have_avx2_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    assert x86_saturation.main(["--only", TINY, "--epochs", "0"]) == 0
    result = json.loads((tmp_path / "results" / "x86_saturation.json").read_text())
    assert 30 < result["meta"]["probe"]["emulated"] < 35
    assert all(0 <= row["avx2_disagree"] <= 1000 for row in result["rows"])
