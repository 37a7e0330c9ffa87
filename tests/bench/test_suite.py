"""`run_suite`: a probe set timed in one session, written as RESULTS.json for `edgecnn calibrate-profile`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgecnn.bench import run_suite
from edgecnn.bench.api import RESULTS_SCHEMA, TIMING_KEYS
from edgecnn.errors import UsageError
from tests.bench.conftest import conv_relu_onnx
from tests.bench.test_ssh import ssh_options


@pytest.fixture
def probes(tmp_path) -> list[dict]:
    return [
        {
            "name": f"conv3x3_c{channels}",
            "artifact": conv_relu_onnx(tmp_path / f"conv_c{channels}.onnx", channels=channels),
            "model": "conv_relu",
            "config": {"channels": channels, "size": 16},
            "dtype": "fp32",
            "features": [{"op": "Conv", "macs": 3 * 9 * channels * 256}],
        }
        for channels in (4, 16)
    ]


def check_payload(payload: dict, host: str) -> None:
    assert payload["schema"] == RESULTS_SCHEMA and payload["profile"] == "x86-avx2"
    assert payload["host"] == host and payload["threads"] == 1
    assert payload["runtime"]["name"] == "onnxruntime" and payload["device"]["cores"] >= 1
    assert [row["name"] for row in payload["results"]] == ["conv3x3_c4", "conv3x3_c16"]
    for row in payload["results"]:
        assert row["artifact"] in ("conv_c4.onnx", "conv_c16.onnx")
        assert row["config"]["size"] == 16 and row["features"][0]["op"] == "Conv" and row["dtype"] == "fp32"
        assert set(TIMING_KEYS) <= set(row) and row["runs"] == 5
        assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]


def test_run_suite_writes_results_json(probes, tmp_path):
    out = tmp_path / "out" / "RESULTS.json"
    payload = run_suite(probes, out, "x86-avx2", runs=5, warmup=1)
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(payload))
    check_payload(written, "local")
    assert [p.name for p in out.parent.iterdir()] == ["RESULTS.json"]  # no temporary file left


def test_run_suite_on_a_device(probes, tmp_path, sshd):
    out = tmp_path / "RESULTS.json"
    options = ssh_options(sshd)
    run_suite(probes, out, "x86-avx2", runs=5, warmup=1, **options)
    check_payload(json.loads(out.read_text()), sshd["host"])


def test_suite_usage_errors(probes, tmp_path):
    with pytest.raises(UsageError, match="empty"):
        run_suite([], tmp_path / "r.json", "x86-avx2")
    argv = [sys.executable, "-m", "edgecnn", "bench", "--suite", "probes"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 1 and "--suite probes needs --profile P and --out RESULTS.json" in done.stderr
    both = subprocess.run([*argv, str(probes[0]["artifact"])], capture_output=True, text=True)
    assert both.returncode == 1 and "either ARTIFACTs or --suite" in both.stderr


def test_run_suite_in_rounds_merges_each_artifact(probes, tmp_path):
    out = tmp_path / "RESULTS.json"
    seen: list[str] = []
    run_suite(probes, out, "x86-avx2", runs=5, warmup=1, rounds=3, progress=seen.append)
    rows = json.loads(out.read_text())["results"]
    # round-robin: the whole list once per round
    assert [m.split("] ")[1] for m in seen] == ["conv_c4.onnx", "conv_c16.onnx"] * 3
    assert seen[0].startswith("round 1/3 ") and seen[-1].startswith("round 3/3 ")
    for row in rows:
        assert row["rounds"] == 3 and row["runs"] == 15 and len(row["round_p50_ms"]) == 3
        assert row["p50_ms"] == sorted(row["round_p50_ms"])[1]  # the median round


def test_merge_rounds_takes_min_of_minima_and_median_of_the_rest():
    from edgecnn.bench.api import merge_rounds

    def result(low: float, p50: float, rss: float | None) -> dict:
        figures = {"min_ms": low, "p50_ms": p50, "p90_ms": p50 + 1, "p99_ms": p50 + 2, "mean_ms": p50}
        return {"artifact": "a.onnx", "runs": 10, **figures, "std_ms": 0.1, "load_ms": 5.0, "peak_rss_mb": rss}

    merged = merge_rounds([result(1.0, 1.2, 50.0), result(1.5, 1.9, None), result(0.9, 1.1, 60.0)])
    assert merged["min_ms"] == 0.9 and merged["p50_ms"] == 1.2 and merged["p99_ms"] == 3.2
    assert merged["runs"] == 30 and merged["peak_rss_mb"] == 60.0 and merged["round_p50_ms"] == [1.2, 1.9, 1.1]


def test_rounds_must_be_positive(probes, tmp_path):
    with pytest.raises(UsageError, match="--rounds must be between 1 and 1,000, not 0"):
        run_suite(probes, tmp_path / "r.json", "x86-avx2", rounds=0)
