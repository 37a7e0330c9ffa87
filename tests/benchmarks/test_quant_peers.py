"""benchmarks/quant_peers.py on one untrained tiny model: ORT and edgecnn rows, NNCF's row when its venv is here."""

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
quant_peers = importlib.import_module("quant_peers")
DISAGREE = quant_peers.DISAGREE

TINY = "mobilenet_v1_w025"


@pytest.fixture(scope="module")
def data():
    """A small slice of the digits: 16 calibration images, 24 held out."""
    full = quant_peers.Data.make()
    return quant_peers.Data(full.train_x, full.train_y, full.calib[:16], full.holdout[:24], full.labels[:24])


def test_run_takes_the_benchmark_and_not_its_peer_script():
    names = importlib.import_module("run").benchmark_paths()
    assert "quant_peers" in names and "_nncf_peer_quantize" not in names


def test_without_the_peer_its_rows_say_nncf_was_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    missing = tmp_path / "no-venv" / "python"
    assert quant_peers.main(["--only", TINY, "--epochs", "0", "--no-tflite", "--peer-python", str(missing)]) == 0
    result = json.loads((tmp_path / "results" / "quant_peers.json").read_text())
    rows = result["rows"]
    assert [r["quantizer"] for r in rows] == ["fp32"] + 2 * list(quant_peers.QUANTIZERS)
    assert result["meta"]["nncf"] == f"not run (no peer python at {missing})"
    for row in rows:
        if row["quantizer"] == "nncf":
            assert row["error"].startswith("nncf: not run (no peer python") and "qdq_agreement" not in row
        else:
            assert "error" not in row and row["bytes"] > 0 and 0 < row["min_ms"] <= row["p50_ms"]
    int8 = [r for r in rows if r["quantizer"] not in ("fp32", "nncf")]
    for row in int8:
        assert 0 <= row["qdq_agreement"] <= 1 and 0 <= row["host_accuracy"] <= 1 and row["qdq_cosine"] <= 1.0001
    fp32 = rows[0]["bytes"]
    assert all(r["bytes"] < fp32 for r in int8)  # int8 weights
    copied = {r["granularity"]: r["identical_copy_ratio"] for r in rows if "identical_copy_ratio" in r}
    assert set(copied) == set(quant_peers.GRANULARITIES) and all(0.5 < ratio < 2 for ratio in copied.values())
    assert {r["quantizer"] for r in rows if "identical_copy_ratio" in r} == {"edgecnn_export"}  # no row of the copy
    assert {g["model"] for g in result["meta"]["edgecnn_gaps"]} == {TINY}


def test_ort_defaults_are_per_tensor_and_the_quantizer_honours_per_tensor(tmp_path: Path, data):
    fp32, family = quant_peers.fp32_model(TINY, data, tmp_path, epochs=0)
    made = quant_peers.quantizers(quant_peers.Peer(tmp_path / "none"), family, data.calib, tmp_path / "c.npy")
    sizes = {}
    for name, granularity in (("ort_default", "per_channel"), ("edgecnn", "per_tensor"), ("edgecnn", "per_channel")):
        dst = tmp_path / f"{name}.{granularity}.onnx"
        made[name](fp32, dst, granularity)
        sizes[name, granularity] = dst.stat().st_size
    # per-channel weights carry a scale and zero point per output channel: a larger file than per-tensor
    assert sizes["edgecnn", "per_channel"] > sizes["edgecnn", "per_tensor"]
    assert sizes["ort_default", "per_channel"] < sizes["edgecnn", "per_channel"]


def test_gaps_compare_the_export_with_the_best_peer():
    def row(quantizer: str, granularity: str = "per_channel", **figures: object) -> dict:
        return {"model": "m", "granularity": granularity, "quantizer": quantizer, **figures}

    rows = [
        row("ort_default", qdq_agreement=0.9, qdq_accuracy=0.8, qdq_cosine=0.999, min_ms=1.0),  # closest logits
        row(
            "nncf",
            qdq_agreement=0.95,
            qdq_accuracy=0.85,
            qdq_cosine=0.99,
            qdq_sqnr_db=6.0,
            min_ms=2.0,
            **{DISAGREE: frozenset({1, 2})},
        ),
        row("edgecnn", qdq_agreement=0.5, qdq_accuracy=0.5, qdq_cosine=0.5, min_ms=0.5),  # alone: not what ships
        row(
            "edgecnn_export",
            qdq_agreement=0.93,
            qdq_accuracy=0.86,
            qdq_cosine=0.998,
            qdq_sqnr_db=25.0,
            min_ms=1.1,
            identical_copy_ratio=1.004,
            **{DISAGREE: frozenset({2, 3, 4})},
        ),
        row("nncf", "per_tensor", error="nncf: not run"),
        row(
            "ort_default", "per_tensor", qdq_agreement=0.1, qdq_accuracy=0.1, qdq_cosine=0.1, min_ms=0.5
        ),  # fast, but broken
        row(
            "nncf", "per_tensor", qdq_agreement=0.985, qdq_accuracy=0.9, qdq_cosine=0.99, qdq_sqnr_db=20, min_ms=2.0
        ),  # within 1 point: usable
        row(
            "edgecnn_export",
            "per_tensor",
            qdq_agreement=0.99,
            qdq_accuracy=0.9,
            qdq_cosine=0.995,
            qdq_sqnr_db=19.5,
            min_ms=1.0,
        ),
    ]
    assert quant_peers.gaps(rows) == [
        {"model": "m", "granularity": "per_channel", "best_peer": "nncf", "agreement_gap_pts": -2.0,
         "only_ours_wrong": 2, "only_peer_wrong": 1, "agreement_gap_p": 1.0,  # 2 vs 1 digits: no difference
         "accuracy_gap_pts": 1.0, "sqnr_gap_db": 19.0, "closest_peer": "ort_default", "cosine_gap": -0.001,
         "fastest_peer": "ort_default", "latency_ratio": 1.1,
         "fastest_usable_peer": "nncf", "usable_latency_ratio": 0.55,  # ort_default: 3 points below
         "identical_copy_ratio": 1.004},
        {"model": "m", "granularity": "per_tensor", "best_peer": "nncf", "agreement_gap_pts": 0.5,
         "only_ours_wrong": None, "only_peer_wrong": None, "agreement_gap_p": None,  # no digits kept: no test
         "accuracy_gap_pts": 0.0, "sqnr_gap_db": -0.5, "closest_peer": "nncf", "cosine_gap": 0.005,
         "fastest_peer": "ort_default", "latency_ratio": 2.0,
         "fastest_usable_peer": "nncf", "usable_latency_ratio": 0.5, "identical_copy_ratio": None},
    ]  # fmt: skip


def test_mcnemar_p_of_the_digits_only_one_quantizer_gets_wrong():
    p = quant_peers.mcnemar_p
    assert p(frozenset({7}), frozenset()) == 1.0  # one digit: no evidence either way
    assert p(frozenset({1, 2}), frozenset({1, 2})) == 1.0  # the same digits wrong
    assert p(frozenset(range(10)), frozenset()) == round(2 / 2**10, 4)  # 10 to 0: the two-sided exact tail
    assert p(frozenset(range(6)), frozenset({10})) == round(2 * 8 / 2**7, 4)  # 6 to 1: C(7,0) + C(7,1) = 8


def test_nncf_in_its_venv_quantizes_per_channel_and_per_tensor(tmp_path: Path, data):
    peer = quant_peers.peer_python(None)
    if peer.missing:
        pytest.skip(f"nncf {peer.missing}: make it with `python3.11 -m venv ../venv-nncf && ../venv-nncf/bin/pip "
                    "install nncf onnx onnxruntime numpy`")  # fmt: skip
    fp32, _ = quant_peers.fp32_model(TINY, data, tmp_path, epochs=0)
    calib = tmp_path / "calib.npy"
    np.save(calib, data.calib)
    reference = quant_peers.load(fp32).run_all(data.holdout)
    for granularity in quant_peers.GRANULARITIES:
        dst = tmp_path / f"nncf.{granularity}.onnx"
        quant_peers.nncf_quantize(peer, fp32, calib, dst, granularity)
        # exact QDQ only: on this untrained net NNCF may give an activation a per-channel zero point, which ORT's
        # fused QLinearConv refuses (the benchmark records such a failure as the row's error)
        exact = quant_peers.int8_computations(dst, data.holdout, reference, data.labels, kinds=("exact_qdq",))
        assert 0 <= exact["exact_qdq"]["top1_agreement"] <= 1
    assert peer.versions["nncf"]


def test_pooled_sums_the_discordant_digits_of_every_model_per_peer():
    def row(model: str, quantizer: str, wrong: set[int]) -> dict:
        return {"model": model, "granularity": "per_channel", "quantizer": quantizer, DISAGREE: frozenset(wrong)}

    rows = [
        row("a", "edgecnn_export", {1}),
        row("a", "nncf", {1, 2, 3}),  # 0 to 2
        row("b", "edgecnn_export", set()),
        row("b", "nncf", set(range(10))),  # 0 to 10: ahead at p < 0.05
        row("c", "edgecnn_export", {5}),
        row("c", "nncf", set()),  # 1 to 0
        row("c", "ort_default", {5}),  # the same digit: nothing discordant
    ]
    pooled = {(p["granularity"], p["peer"]): p for p in quant_peers.pooled(rows)}
    nncf = pooled["per_channel", "nncf"]
    assert (nncf["models"], nncf["only_ours_wrong"], nncf["only_peer_wrong"]) == (3, 1, 12)
    assert nncf["p"] == quant_peers.mcnemar_p(frozenset({0}), frozenset(range(1, 13)))
    assert nncf["ahead_p05"] == "b" and nncf["behind_p05"] == "—"
    ort = pooled["per_channel", "ort_default"]
    assert (ort["models"], ort["only_ours_wrong"], ort["only_peer_wrong"], ort["p"]) == (1, 0, 0, 1.0)
    assert ("per_tensor", "nncf") not in pooled  # no per-tensor rows
    assert quant_peers.disagreements(rows)["a/per_channel/nncf"] == [1, 2, 3]


@pytest.mark.slow
def test_tflite_rows_have_the_export_s_timed_float_ops(tmp_path: Path, data):
    """The `.tflite` rows on an untrained MobileNetV3-small: every row made, and the export's row with the float ops
    the x86-avx2 export would time and keep (of its ADD and HARD_SWISH, or none: which is the host's business)."""
    fp32, _ = quant_peers.fp32_model("mobilenet_v3_small", data, tmp_path, epochs=0)
    rows = quant_peers.tflite_rows("mobilenet_v3_small", fp32, data, tmp_path, rounds=1, runs=2)
    made = {(r["granularity"], r["quantizer"]) for r in rows if "error" not in r}
    assert {(g, "tflite_edgecnn_export") for g in ("per_channel", "per_tensor")} <= made, rows
    exported = [r for r in rows if r["quantizer"] == "tflite_edgecnn_export"]
    kept = [set(r["float_ops"].split(",")) - {"none"} for r in exported]
    assert all(ops <= {"ADD", "HARD_SWISH"} for ops in kept) and all(r["bytes"] > 0 for r in exported), exported
    assert all(0.5 < r["identical_copy_ratio"] < 2 for r in exported)  # its copy timed among the rows
    assert not any("copy" in r["quantizer"] for r in rows)
