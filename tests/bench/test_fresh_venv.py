"""The harness file runs in a fresh venv that holds only numpy and ai-edge-litert (what a device has)."""

from __future__ import annotations

import json
import shutil
import subprocess

from edgecnn.bench.api import HARNESS
from tests.bench.test_harness import check_result


def test_harness_runs_in_a_venv_with_only_numpy_and_ai_edge_litert(fresh_venv, artifacts, tmp_path):
    missing = subprocess.run(
        [fresh_venv, "-c", "import importlib.util as u; print([m for m in ('edgecnn', 'torch', 'onnx', "
         "'onnxruntime') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert missing.stdout.strip() == "[]"
    harness = shutil.copy(HARNESS, tmp_path / "harness.py")
    model = shutil.copy(artifacts["int8_tflite"], tmp_path / "model.tflite")
    done = subprocess.run(
        [fresh_venv, str(harness), str(model), "--runs", "20", "--threads", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    check_result(result, runs=20, this_python=False)
    assert result["runtime"]["name"] == "ai_edge_litert" and result["delegate"] == "xnnpack"
    assert result["inputs"][0]["dtype"] == "int8" and result["threads"] == 2
    onnx_model = shutil.copy(artifacts["onnx"], tmp_path / "model.onnx")
    no_ort = subprocess.run([fresh_venv, str(harness), str(onnx_model)], capture_output=True, text=True, cwd=tmp_path)
    assert no_ort.returncode == 1
    assert json.loads(no_ort.stdout)["error"].endswith("fix: pip install onnxruntime")
