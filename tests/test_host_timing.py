"""Timing on this host: one protocol for ORT and LiteRT, and a budget that gives slow graphs fewer runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.runtime import host_timing


def _model(path: Path, side: int) -> Path:
    """x → Conv 3×3 (8 channels) at ``side``²: more work the larger ``side``."""
    weights = numpy_helper.from_array(np.ones((8, 8, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, side, side])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_budget_cuts_the_runs_of_slow_graphs_and_not_below_the_floor(tmp_path: Path, monkeypatch):
    paths = {"small": _model(tmp_path / "small.onnx", 8), "large": _model(tmp_path / "large.onnx", 64)}
    asked: list[int] = []
    timed = host_timing._times_ms

    def counting(call, runs):
        asked.append(runs)
        return timed(call, runs)

    monkeypatch.setattr(host_timing, "_times_ms", counting)
    times = host_timing.interleaved_min_ms(paths, rounds=2, runs=20)
    assert asked == [20] * 4 and set(times) == set(paths) and all(ms > 0 for ms in times.values())
    asked.clear()
    host_timing.interleaved_min_ms(paths, rounds=2, runs=20, budget_s=1e-9)  # any graph is slow for it
    assert asked[2:] == [host_timing.MIN_RUNS] * 4, asked  # after one probe of 2 runs each
    asked.clear()
    host_timing.interleaved_min_ms(paths, rounds=2, runs=20, budget_s=1e3)  # fast graphs keep every run
    assert asked[2:] == [20] * 4, asked
