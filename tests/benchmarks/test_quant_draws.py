"""benchmarks/quant_draws.py: the gaps over calibration draws, and a run on one untrained tiny model."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")
quant_draws = importlib.import_module("quant_draws")
quant_peers = importlib.import_module("quant_peers")
COUNTS, SQNRS = quant_draws.COUNTS, quant_draws.SQNRS


def test_gaps_count_the_draws_each_side_wins_and_pool_the_models():
    def row(model: str, quantizer: str, counts: list[int]) -> dict:
        sqnrs = [20.0 + c for c in counts]  # made-up SQNRs: the gap is the difference of their means
        return {"model": model, "granularity": "per_channel", "quantizer": quantizer, COUNTS: counts, SQNRS: sqnrs}

    rows = [
        row("a", "edgecnn_export", [3, 5, 4]),
        row("a", "nncf", [4, 5, 6]),  # edgecnn wins 2 draws, ties 1
        row("a", "ort_default", [1, 1, 1]),  # loses all 3
        row("b", "edgecnn_export", [2, 2, 2]),
        row("b", "nncf", [2, 1, 3]),
        {"model": "b", "granularity": "per_channel", "quantizer": "ort_default", "error": "failed"},
    ]
    gaps = {(g["model"], g["peer"]): g for g in quant_draws.gaps(rows)}
    a_nncf = gaps["a", "nncf"]
    assert (a_nncf["wins"], a_nncf["ties"], a_nncf["losses"]) == (2, 1, 0)
    assert a_nncf["mean_gap_digits"] == -1.0 and a_nncf["sign_p"] == quant_peers.sign_p(2, 0)
    assert a_nncf["sqnr_gap_db"] == -1.0
    assert (gaps["a", "ort_default"]["losses"], gaps["a", "ort_default"]["mean_gap_digits"]) == (3, 3.0)
    assert ("b", "ort_default") not in gaps  # a failed peer has no gap
    pooled = gaps["all", "nncf"]
    assert (pooled["draws"], pooled["wins"], pooled["ties"], pooled["losses"]) == (6, 3, 2, 1)
    assert pooled["edgecnn_mean"] == round((3 + 5 + 4 + 6) / 6, 2) and pooled["peer_mean"] == round(21 / 6, 2)
    assert gaps["all", "ort_default"]["draws"] == 3  # pooled over the models the peer quantized
    assert pooled["sqnr_gap_db"] == round((-1.0 + 0.0) / 2, 2)  # the models' gaps, averaged


def test_sign_p_is_the_exact_two_sided_binomial():
    assert quant_peers.sign_p(0, 0) == 1.0 and quant_peers.sign_p(3, 0) == 0.25
    assert quant_peers.sign_p(10, 0) == round(2 / 2**10, 4) and quant_peers.sign_p(1, 6) == round(16 / 2**7, 4)


def test_calibration_draws_start_with_quant_peers_set():
    data = quant_peers.Data.make()
    draws = quant_draws.calibration_draws(data, 3)
    assert len(draws) == 3 and list(draws[0]) == list(range(quant_peers.CALIB))
    assert all(len(set(d)) == quant_peers.CALIB and max(d) < len(data.train_x) for d in draws)
    assert list(draws[1]) != list(draws[2])


def test_a_run_writes_every_quantizer_per_draw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    missing = tmp_path / "no-venv" / "python"
    argv = ["--only", "mobilenet_v1_w025", "--epochs", "0", "--draws", "2", "--peer-python", str(missing)]
    assert quant_draws.main(argv) == 0
    result = json.loads((tmp_path / "results" / "quant_draws.json").read_text())
    rows = {(r["granularity"], r["quantizer"]): r for r in result["rows"]}
    assert set(rows) == {(g, q) for g in quant_peers.GRANULARITIES for q in quant_draws.QUANTIZERS}
    assert rows["per_channel", "nncf"]["error"].startswith("nncf: not run (no peer python")
    for (_, quantizer), row in rows.items():
        if quantizer != "nncf":
            counts = [int(c) for c in row["per_draw"].split()]
            assert len(counts) == 2 and all(0 <= c <= len(quant_peers.Data.make().holdout) for c in counts)
            assert row["low"] == min(counts) and row["high"] == max(counts) and COUNTS not in row
            assert SQNRS not in row and 0 < row["sqnr_db"] < 100
    assert {(g["model"], g["peer"]) for g in result["meta"]["gaps"]} == {
        ("mobilenet_v1_w025", "ort_default"),
        ("all", "ort_default"),
    }
