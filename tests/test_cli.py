import json
import subprocess
import sys

import pytest

from edgecnn import __version__


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=300)


def test_version():
    result = run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_models_json_has_the_documented_keys():
    result = run("models", "mobilenet_v1", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["mobilenet_v1"]
    row = rows[0]
    assert {"name", "family", "params", "macs", "input_size"} <= set(row)
    assert row["input_size"] == [3, 224, 224]
    assert abs(row["macs"] / 569e6 - 1) < 0.03


def test_models_table_lists_the_zoo():
    result = run("models")
    assert result.returncode == 0, result.stderr
    for name in ("resnet18", "densenet121", "efficientnet_b7", "resnet50_dcnv2", "mobilenet_v3_large"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "resnt"), "did you mean 'resnet'"),
        (("modls",), "Did you mean 'models'"),
        (("models", "--bogus"), "No such option"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message):
    result = run(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [(), ("models",), ("export",)])
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_export_json_on_stdout_progress_on_stderr(tmp_path):
    out = tmp_path / "mv1"
    result = run(
        "export",
        "mobilenet",
        "--width",
        "0.25",
        "--resolution",
        "32",
        "--num-classes",
        "10",
        "--calib-size",
        "4",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["model"]["scaling"] == {"width": 0.25, "resolution": 32}
    for key in ("edgecnn_version", "tools", "model", "profile", "calibration", "stages", "artifacts", "agreement"):
        assert key in manifest
    assert manifest["profile"]["name"] == "x86-avx2"
    for stage in ("export", "parity", "simplify", "quantize", "drift", "ort"):
        assert f"✓ {stage}" in result.stderr
    assert "warning: calibrating on synthetic data" in result.stderr


def test_export_summary_table(tmp_path):
    out = tmp_path / "r18"
    result = run(
        "export",
        "resnet18",
        "--resolution",
        "32",
        "--no-quantize",
        "--format",
        "onnx",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "model.fp32.onnx" in result.stdout and "model.int8.onnx" not in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.fp32.onnx", "report.md"]


@pytest.mark.parametrize(
    ("model", "option", "value"), [("efficientnet", "--depth", "1.4"), ("densenet121", "--growth-rate", "12")]
)
def test_predict_takes_every_knob(model, option, value):
    result = run("predict", model, option, value, "--resolution", "96", "--profile", "x86-avx2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plain = json.loads(run("predict", model, "--resolution", "96", "--profile", "x86-avx2", "--json").stdout)
    assert report["macs_m"] != plain["macs_m"]  # the knob reached the model
    bad = run("predict", model, option, "0", "--profile", "x86-avx2")
    assert bad.returncode == 1 and "must be" in bad.stderr and "Traceback" not in bad.stderr
