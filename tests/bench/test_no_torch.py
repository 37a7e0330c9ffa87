"""`edgecnn bench` and its code path never import torch (a device has none)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_import_without_torch import BLOCK_TORCH


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True)


def test_bench_help_runs_without_torch():
    done = run_blocked("from edgecnn.cli import main; sys.argv = ['edgecnn', 'bench', '--help']; main()")
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "Examples:" in done.stdout


def test_bench_code_path_imports_no_torch(artifacts):
    done = run_blocked(
        "from edgecnn.cli import main\n"
        "try:\n"
        f"    main(['bench', {artifacts['onnx']!r}, {artifacts['tflite']!r}, '-n', '3', '--json'])\n"
        "except SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        "heavy = [m for m in ('torch', 'torchvision', 'onnx', 'onnxruntime', 'ai_edge_litert') "
        "if sys.modules.get(m) is not None]\n"
        "assert not heavy, heavy\n"
    )
    assert done.returncode == 0, done.stderr
    assert '"p50_ms"' in done.stdout


def test_core_install_has_no_torch_and_device_extra_is_what_the_harness_needs():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}

    assert names(project["dependencies"]) == {"numpy", "click", "pyyaml", "rich"}
    extras = project["optional-dependencies"]
    assert names(extras["device"]) == {"numpy", "onnxruntime", "ai-edge-litert"}
    assert {"torch", "torchvision", "onnx", "onnxruntime"} <= names(extras["export"])
    assert "edgecnn" in names(extras["dev"])  # dev installs the export extra too


def test_export_without_torch_says_which_extra_to_install():
    done = run_blocked("from edgecnn.cli import main; main(['export', 'mobilenet'])")
    assert done.returncode == 1, done.stderr
    assert "pip install 'edgecnn[export]'" in done.stderr and "Traceback" not in done.stderr
