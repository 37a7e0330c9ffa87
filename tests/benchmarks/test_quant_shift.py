"""benchmarks/quant_shift.py: the shifted digits, the gaps, and a run on an untrained model."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.config.profiles import load_profile
from edgecnn.pipeline.range_choice import CANDIDATES

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")
quant_shift = importlib.import_module("quant_shift")
quant_peers = importlib.import_module("quant_peers")


def test_the_shifted_set_holds_the_held_out_digits_first_then_eight_moves_filled_black():
    holdout = quant_peers.Data.make().holdout[:5]
    images = quant_shift.moved(holdout, 2)
    assert images.shape == (45, *holdout.shape[1:]) and images.dtype == np.float32
    np.testing.assert_array_equal(images[:5], holdout)
    black = (0 - quant_peers.MEAN) / quant_peers.STD
    moves = images[5:].reshape(8, 5, *holdout.shape[1:])
    assert all(np.isclose(moved.min(), black, atol=1e-5) for moved in moves)  # the fill is a black pixel
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
        row("a", "edgecnn_export_minmax", {3}),
        row("b", "edgecnn_export", {7}),
        row("b", "nncf", {7, 8, 9}),
        {"model": "b", "granularity": "per_channel", "quantizer": "ort_default", "error": "failed"},
    ]
    gaps = {(g["model"], g["ours"], g["peer"]): g for g in quant_shift.gaps(rows)}
    a = gaps["a", "edgecnn_export", "nncf"]
    assert (a["only_ours_wrong"], a["only_peer_wrong"]) == (2, 1)
    assert a["mcnemar_p"] == quant_peers.sign_p(2, 1)
    pinned = gaps["a", "edgecnn_export", "edgecnn_export_minmax"]
    assert (pinned["only_ours_wrong"], pinned["only_peer_wrong"]) == (2, 0)
    assert (gaps["a", "edgecnn_export_minmax", "nncf"]["only_peer_wrong"]) == 1
    assert ("b", "edgecnn_export", "ort_default") not in gaps  # a failed peer has no gap
    pooled = gaps["all", "edgecnn_export", "nncf"]
    assert (pooled["only_ours_wrong"], pooled["only_peer_wrong"]) == (2, 3)


def test_a_run_writes_every_quantizer_and_the_range_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    argv = ["--only", "mobilenet_v1_w025", "--epochs", "0", "--shift", "1", "--peer-python", str(tmp_path / "none")]
    assert quant_shift.main(argv) == 0
    result = json.loads((tmp_path / "results" / "quant_shift.json").read_text())
    rows = {(r["granularity"], r["quantizer"]): r for r in result["rows"]}
    expected = {(g, q) for g in quant_peers.GRANULARITIES for q in quant_shift.QUANTIZERS}
    assert set(rows) == expected | {("—", "fp32")}
    assert rows["per_channel", "nncf"]["error"].startswith("nncf: not run (no peer python")
    held_out = len(quant_peers.Data.make().holdout)
    slower_in_int8 = load_profile("x86-avx2").int8_slower_op_types  # the per-tensor target's profile lists none
    for (_, quantizer), row in rows.items():
        if quantizer not in ("nncf", "fp32"):
            assert 0 <= row["unshifted_disagree"] <= row["shifted_disagree"] <= 9 * held_out
            assert quant_shift.WRONG not in row and np.isfinite(row["shifted_sqnr_db"])
    for granularity in quant_peers.GRANULARITIES:
        assert rows[granularity, "edgecnn_export"]["ranges_chosen"] in CANDIDATES
        assert rows[granularity, "edgecnn_export_minmax"]["ranges_chosen"] == "minmax"
        assert {rows[granularity, q]["weights_chosen"] for q in ("edgecnn_export", "edgecnn_export_minmax")} <= {
            "per_channel", "per_tensor"
        }  # fmt: skip
        for quantizer in ("edgecnn_export", "edgecnn_export_minmax"):  # the float-op choice: none, or slower ones
            kept = rows[granularity, quantizer]["float_ops"]
            assert kept == "none" or set(kept.split(",")) <= set(slower_in_int8)
    assert 0 <= rows["—", "fp32"]["shifted_accuracy"] <= 1 and result["meta"]["shift_px"] == 1
    pairs = {(g["model"], g["ours"], g["peer"]) for g in result["meta"]["gaps"] if g["granularity"] == "per_tensor"}
    assert pairs == {
        (model, ours, peer)
        for model in ("mobilenet_v1_w025", "all")
        for ours, peer in (("edgecnn_export", "ort_default"), ("edgecnn_export", "edgecnn_export_minmax"),
                           ("edgecnn_export_minmax", "ort_default"))
    }  # fmt: skip
