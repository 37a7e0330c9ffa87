"""benchmarks/quant_shift.py: the shifted digits, the mean-ranges probe, the gaps, and a run on an untrained model."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")
quant_shift = importlib.import_module("quant_shift")
quant_peers = importlib.import_module("quant_peers")


def test_translate_moves_the_pixels_and_fills_black():
    image = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    down_left = quant_shift.translate(image, 1, -2)[0, 0]
    assert down_left[0].tolist() == [0, 0, 0, 0]
    assert down_left[1].tolist() == [3, 4, 0, 0] and down_left[3].tolist() == [11, 12, 0, 0]
    assert np.array_equal(quant_shift.translate(image, 0, 0), image)


def test_the_shifted_set_holds_the_held_out_digits_first_then_eight_moves():
    holdout = quant_peers.Data.make().holdout[:5]
    images = quant_shift.shifted_set(holdout, 2)
    assert images.shape == (45, *holdout.shape[1:]) and images.dtype == np.float32
    np.testing.assert_allclose(images[:5], holdout, atol=1e-6)
    black = (0 - quant_peers.MEAN) / quant_peers.STD
    moves = images[5:].reshape(8, 5, *holdout.shape[1:])
    assert all(np.isclose(moved.min(), black, atol=1e-6) for moved in moves)  # the fill is a black pixel
    assert len({moved.tobytes() for moved in moves}) == 8  # eight different moves


def test_gaps_count_the_images_only_one_side_gets_wrong_and_pool_the_models():
    def row(model: str, quantizer: str, wrong: set[int]) -> dict:
        return {
            "model": model,
            "granularity": "per_channel",
            "quantizer": quantizer,
            quant_shift.WRONG: frozenset(wrong),
        }

    rows = [
        row("a", "edgecnn_export", {1, 2, 3}),
        row("a", "nncf", {3, 4}),
        row("a", quant_shift.PROBE, {3}),
        row("b", "edgecnn_export", {7}),
        row("b", "nncf", {7, 8, 9}),
        {"model": "b", "granularity": "per_channel", "quantizer": "ort_default", "error": "failed"},
    ]
    gaps = {(g["model"], g["ours"], g["peer"]): g for g in quant_shift.gaps(rows)}
    a = gaps["a", "edgecnn_export", "nncf"]
    assert (a["only_ours_wrong"], a["only_peer_wrong"]) == (2, 1)
    assert a["mcnemar_p"] == quant_peers.sign_p(2, 1)
    probe = gaps["a", quant_shift.PROBE, "edgecnn_export"]
    assert (probe["only_ours_wrong"], probe["only_peer_wrong"]) == (0, 2)
    assert ("b", "edgecnn_export", "ort_default") not in gaps  # a failed peer has no gap
    pooled = gaps["all", "edgecnn_export", "nncf"]
    assert (pooled["only_ours_wrong"], pooled["only_peer_wrong"]) == (2, 3)


def test_the_probe_narrows_each_activation_range_within_the_exports(tmp_path: Path):
    import onnx
    from onnx import numpy_helper

    from edgecnn.runtime.loader import load

    data = quant_peers.Data.make()
    fp32, family = quant_peers.fp32_model("densenet", data, tmp_path, epochs=0)  # pools share their input's range
    makers = quant_peers.quantizers(quant_peers.peer_python(str(tmp_path / "none")), family, data.calib, tmp_path)
    exported, probe = tmp_path / "export.onnx", tmp_path / "probe.onnx"
    makers["edgecnn_export"](fp32, exported, "per_tensor")
    quantizers = quant_shift._activation_quantizers(onnx.load(str(exported)))
    shared = {}
    for node in quantizers:
        shared.setdefault(node.input[1], []).append(node.input[0])
    assert any(len(tensors) > 1 for tensors in shared.values())  # the case a range per tensor would get wrong
    ranges_set = quant_shift.with_mean_ranges(exported, data.calib[:16], probe)
    assert ranges_set == sum("input" not in tensors for tensors in shared.values()) > 10

    def ranges(path: Path) -> dict[str, tuple[float, float]]:
        model = onnx.load(str(path))
        values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        out = {}
        for node in quant_shift._activation_quantizers(model):
            scale, point = float(values[node.input[1]]), values[node.input[2]]
            info = np.iinfo(point.dtype)
            out[node.input[0]] = scale * (int(info.min) - int(point)), scale * (int(info.max) - int(point))
        return out

    before, after = ranges(exported), ranges(probe)
    assert before.keys() == after.keys()
    assert after["input"] == before["input"]  # the graph input keeps its range
    steps = {name: (before[name][1] - before[name][0]) / 255 for name in before}
    assert all(after[n][0] >= before[n][0] - steps[n] and after[n][1] <= before[n][1] + steps[n] for n in before)
    assert sum(after[n][1] - after[n][0] < before[n][1] - before[n][0] - steps[n] for n in before) >= 10

    def int32_dequantized(path: Path) -> int:
        model = onnx.load(str(path))
        int32 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT32}
        return sum(n.op_type == "DequantizeLinear" and n.input[0] in int32 for n in model.graph.node)

    assert int32_dequantized(exported) > 10 and int32_dequantized(probe) == 0  # the biases are float
    extremes = quant_shift.mean_extremes(onnx.load(str(exported)), quantizers, data.calib[:16])
    for tensors in shared.values():  # a range is its tensors' mean extremes, joined when they share it
        if "input" not in tensors:
            low = min(0.0, *(extremes[t][0] for t in tensors))
            high = max(0.0, *(extremes[t][1] for t in tensors))
            assert all(np.allclose(after[t], (low, high), rtol=1e-5, atol=(high - low) / 255) for t in tensors)
    logits = next(iter(load(probe, optimization="disable").run_all(data.holdout[:8]).values()))
    assert logits.shape == (8, 10) and np.isfinite(logits).all()


def test_a_run_writes_every_quantizer_and_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    argv = ["--only", "mobilenet_v1_w025", "--epochs", "0", "--shift", "1", "--peer-python", str(tmp_path / "none")]
    assert quant_shift.main(argv) == 0
    result = json.loads((tmp_path / "results" / "quant_shift.json").read_text())
    rows = {(r["granularity"], r["quantizer"]): r for r in result["rows"]}
    expected = {(g, q) for g in quant_peers.GRANULARITIES for q in (*quant_shift.QUANTIZERS, quant_shift.PROBE)}
    assert set(rows) == expected | {("—", "fp32")}
    assert rows["per_channel", "nncf"]["error"].startswith("nncf: not run (no peer python")
    held_out = len(quant_peers.Data.make().holdout)
    for (_, quantizer), row in rows.items():
        if quantizer not in ("nncf", "fp32"):
            assert 0 <= row["unshifted_disagree"] <= row["shifted_disagree"] <= 9 * held_out
            assert quant_shift.WRONG not in row and np.isfinite(row["shifted_sqnr_db"])
    assert 0 <= rows["—", "fp32"]["shifted_accuracy"] <= 1 and result["meta"]["shift_px"] == 1
    pairs = {(g["model"], g["ours"], g["peer"]) for g in result["meta"]["gaps"] if g["granularity"] == "per_tensor"}
    assert pairs == {
        (model, ours, peer)
        for model in ("mobilenet_v1_w025", "all")
        for ours, peer in (("edgecnn_export", "ort_default"), (quant_shift.PROBE, "ort_default"),
                           (quant_shift.PROBE, "edgecnn_export"))
    }  # fmt: skip
