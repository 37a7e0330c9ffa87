"""benchmarks/litert_peer.py without the peer venv: discovery, the flatbuffer op reader, the skip; no timings."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from edgecnn.lowering.tflite import convert
from tests.lowering.tflite_check import make_model

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")
litert_peer = importlib.import_module("litert_peer")


def test_run_takes_the_benchmark_and_not_its_peer_script():
    names = importlib.import_module("run").benchmark_paths()
    assert "litert_peer" in names and "_litert_peer_convert" not in names


def test_op_histogram_reads_what_the_lowering_wrote(tmp_path: Path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("HardSwish", ["r"], ["y"])]
    lowered = convert(make_model(nodes, {"x": [1, 3, 4, 4]}, ["y"]))
    path = tmp_path / "m.tflite"
    path.write_bytes(lowered.data)
    assert litert_peer.op_histogram(path) == lowered.op_counts == {"RELU": 1, "HARD_SWISH": 1}


def test_without_the_peer_venv_it_skips_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    assert litert_peer.main(["--quick", "--peer-python", str(tmp_path / "no-venv" / "python")]) == 0
    assert not (tmp_path / "results").exists()


def test_interleaved_rounds_and_the_error_measures():
    calls, order = {"a": 0, "b": 0}, []

    def call(key: str) -> None:
        calls[key] += 1
        if not order or order[-1] != key:
            order.append(key)

    timing = litert_peer.interleaved({k: (lambda k=k: call(k)) for k in calls}, 3, 2)
    assert calls == {"a": 12, "b": 12}  # 3 rounds of 2 warm-up and 2 timed calls each
    assert order == ["a", "b", "a", "b"]  # the order reversed every other round: a b | b a | a b
    assert all(0 <= t["min_ms"] <= t["p50_ms"] for t in timing.values())
    ref = np.array([1.0, -2.0, 4.0])
    assert litert_peer.max_rel_error(ref + np.array([0, 0, 0.4]), ref) == pytest.approx(0.1)
    assert litert_peer.cosine(ref, 2 * ref) == pytest.approx(1.0)
