"""benchmarks/weight_granularity_latency.py: one row measured for real (ResNet-18 α 0.25 at 32², the fast one)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import onnx

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
benchmark = importlib.import_module("weight_granularity_latency")


def test_a_row_times_the_same_graph_with_per_channel_and_per_tensor_weights(tmp_path: Path):
    row = benchmark.measure("resnet", 32, 1, tmp_path, rounds=1, runs=2)
    assert (row["model"], row["input"], row["convs"]) == ("resnet", "32x32x1", 20)
    assert all(row[f"{g}_min_ms"] > 0 for g in ("per_channel", "per_tensor"))
    assert row["ratio_min"] == round(row["per_channel_min_ms"] / row["per_tensor_min_ms"], 3)
    scales = {}  # the two graphs differ in the weights' scales only: one per output channel against one
    for granularity in ("per_channel", "per_tensor"):
        graph = onnx.load(str(tmp_path / f"resnet-32.{granularity}.onnx")).graph
        initializers = {i.name: i for i in graph.initializer}
        weight_dq = [
            n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers
            and len(initializers[n.input[0]].dims) == 4
        ]  # fmt: skip
        scales[granularity] = {len(initializers[n.input[1]].dims) for n in weight_dq}
        assert len(weight_dq) == 20
    assert scales == {"per_channel": {1}, "per_tensor": {0}}
