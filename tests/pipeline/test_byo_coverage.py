"""The fast subset of benchmarks/byo_coverage.py: third-party architectures through every stage, at 64 px.

Each model is exported by the CLI with random weights, ``--format onnx,ort,tflite``, and must reach int8
`.onnx`/`.ort` and fp32 and int8 `.tflite` with parity; pure CNNs need no TRANSPOSE in their `.tflite`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("timm")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
coverage = importlib.import_module("byo_coverage")

FAST_SUBSET = {  # spec → whether it is a pure CNN (no TRANSPOSE expected)
    "torchvision:mobilenet_v3_small": True,
    "torchvision:shufflenet_v2_x1_0": False,  # channel shuffle: Reshape → Transpose → Reshape
    "timm:lcnet_050": True,
    "timm:convnext_atto": False,  # LayerNorm over channels
}


@pytest.mark.slow
@pytest.mark.parametrize("spec", FAST_SUBSET)
def test_a_third_party_model_goes_through_every_stage(tmp_path, spec):
    assert spec in coverage.MODELS
    row = coverage.cover(spec, 64, tmp_path, timeout=600, calib=8)
    assert row["exit"] == 0, row
    assert row["onnx_ort_ok"] and row["tflite_ok"], row
    assert row["parity_rel"] <= coverage.PARITY and row["tflite_fp32_rel"] <= coverage.PARITY, row
    assert row["int8_cosine"] > 0.9 and row["tflite_int8_cosine"] > 0.8, row
    if FAST_SUBSET[spec]:
        assert row["transposes"] == 0, row


def test_goals_count_what_the_issue_asks():
    rows = [
        {"onnx_ort_ok": True, "tflite_ok": True, "told_s": 5.0},
        {"onnx_ort_ok": True, "tflite_ok": False, "told_s": 12.0},
        {"onnx_ort_ok": False, "tflite_ok": False, "told_s": 45.0},
    ]
    assert coverage.goals(rows) == {
        "models": 3,
        "onnx_ort_fraction": 0.667,
        "tflite_fraction": 0.333,
        "failures_told_within_30s": 1,
        "failures": 2,
    }
