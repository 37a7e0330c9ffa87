"""Timing on this host: one protocol for ORT and LiteRT, and a budget that gives slow graphs fewer runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.errors import UsageError
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
    loads = host_timing.LOADS
    assert asked == [20] * 4 * loads and set(times) == set(paths) and all(ms > 0 for ms in times.values())
    asked.clear()
    host_timing.interleaved_min_ms(paths, rounds=2, runs=20, budget_s=1e-9)  # any graph is slow for it
    assert asked == ([2, 2] + [host_timing.MIN_RUNS] * 4) * loads, asked  # each load: a probe of 2 runs each
    asked.clear()
    host_timing.interleaved_min_ms(paths, rounds=2, runs=20, budget_s=1e3)  # fast graphs keep every run
    assert set(asked) == {2, 20} and asked.count(20) > 2 * 2 * loads, asked  # and more rounds: MIN_SPAN_S of them


def test_timed_over_loads_reverse_the_order_keep_each_best_and_drop_what_cannot_run(tmp_path: Path, monkeypatch):
    paths = {"a": _model(tmp_path / "a.onnx", 8), "b": _model(tmp_path / "b.onnx", 16)}
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    orders: list[list[str]] = []
    seen: list[dict[str, float]] = []
    warm, timed = host_timing.warm_calls, host_timing.interleaved_calls_min_ms

    def recording_warm(given, required=()):
        orders.append(list(given))
        return warm(given, required)

    def recording_timed(*args, **kwargs):
        seen.append(timed(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(host_timing, "warm_calls", recording_warm)
    monkeypatch.setattr(host_timing, "interleaved_calls_min_ms", recording_timed)
    result = host_timing.timed_over_loads({**paths, "broken": broken}, rounds=1, runs=3, loads=3)
    assert orders == [["a", "b", "broken"], ["b", "a"], ["a", "b"]]  # reversed every other load; broken tried once
    assert set(result.failed) == {"broken"} and list(result.times) == ["a", "b"]
    assert result.times == {key: min(t[key] for t in seen) for key in paths}
    with pytest.raises(UsageError, match="cannot load"):
        host_timing.timed_over_loads({**paths, "broken": broken}, rounds=1, runs=3, required=("broken",))


def test_warm_calls_load_a_ballast_last_and_say_which_models_cannot_run(tmp_path: Path):
    good = _model(tmp_path / "good.onnx", 8)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    warmed = host_timing.warm_calls({"good": good, "broken": broken})
    assert set(warmed.calls) == {"good"} and set(warmed.failed) == {"broken"} and warmed.ballast is not None
    assert "\n" not in warmed.failed["broken"]
    with pytest.raises(UsageError, match="cannot load"):  # a model the caller cannot do without
        host_timing.warm_calls({"good": good, "broken": broken}, required=("broken",))
