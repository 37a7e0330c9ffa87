"""`edgecnn bench --host` against a real sshd on 127.0.0.1: results, clean-up, and each failure as one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecnn.bench import bench
from edgecnn.errors import BenchError
from tests.bench.conftest import free_port
from tests.bench.test_harness import check_result


def ssh_options(sshd: dict, **overrides) -> dict:
    options = {
        "host": sshd["host"],
        "port": sshd["port"],
        "identity": sshd["identity"],
        "known_hosts": sshd["known_hosts"],
        "python": sshd["python"],
        "connect_timeout": 5,
        "timeout": 120,
    }
    options.update(overrides)
    return options


def test_remote_bench_runs_collects_and_removes_its_directory(sshd, artifacts, tmp_path):
    # A local name with a space and a quote: it must not reach the remote shell.
    odd = tmp_path / "my model's.onnx"
    shutil.copy(artifacts["onnx"], odd)
    results = bench([odd, artifacts["int8_tflite"]], runs=10, warmup=1, **ssh_options(sshd))
    assert [r["artifact"] for r in results] == ["my model's.onnx", "conv.int8.tflite"]
    for result in results:
        check_result(result, runs=10)
        assert result["host"] == sshd["host"]
    remote_dir = Path(results[0]["remote_dir"])
    assert remote_dir.name.startswith("edgecnn-bench.")
    assert not remote_dir.exists()
    assert results[1]["inputs"][0]["dtype"] == "int8" and results[1]["delegate"] == "xnnpack"


def test_remote_bench_on_the_command_line(sshd, artifacts, tmp_path):
    argv = [sys.executable, "-m", "edgecnn", "bench", artifacts["ort"], "--host", sshd["host"]]
    argv += ["--port", str(sshd["port"]), "--identity", str(sshd["identity"])]
    argv += ["--known-hosts", str(sshd["known_hosts"]), "--python", sshd["python"], "-n", "5", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    check_result(result, runs=5)
    assert not Path(result["remote_dir"]).exists()


def remote_error(sshd, artifact, **overrides) -> str:
    with pytest.raises(BenchError) as caught:
        bench([artifact], runs=3, **ssh_options(sshd, **overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_wrong_host_key_is_refused(sshd, artifacts):
    message = remote_error(sshd, artifacts["onnx"], known_hosts=sshd["wrong_known_hosts"])
    assert "host key not trusted" in message and "known_hosts" in message


def test_unknown_host_key_is_refused(sshd, artifacts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    assert "host key not trusted" in remote_error(sshd, artifacts["onnx"], known_hosts=empty)


def test_unknown_client_key_is_refused(sshd, artifacts):
    message = remote_error(sshd, artifacts["onnx"], identity=sshd["stranger"])
    assert "authentication refused" in message and "ssh-copy-id" in message


def test_closed_port_is_a_clear_error_within_the_timeout(sshd, artifacts):
    started = time.monotonic()
    message = remote_error(sshd, artifacts["onnx"], port=free_port(), connect_timeout=3)
    assert time.monotonic() - started < 10
    assert message.startswith("cannot reach") and "refused" in message.lower()


def test_unroutable_host_times_out_within_the_connect_timeout(artifacts, sshd):
    started = time.monotonic()
    message = remote_error(sshd, artifacts["onnx"], host="192.0.2.1", port=22, connect_timeout=2)  # TEST-NET-1
    assert time.monotonic() - started < 15
    assert message.startswith("cannot reach 192.0.2.1:22")


def test_missing_remote_python(sshd, artifacts):
    message = remote_error(sshd, artifacts["onnx"], python="/nonexistent/python3")
    assert "no Python at '/nonexistent/python3'" in message and "--python" in message


def test_remote_python_without_numpy_says_which_pip_install(sshd, artifacts):
    bare = "/usr/bin/python3"
    probe = subprocess.run([bare, "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{bare} has numpy")
    message = remote_error(sshd, artifacts["onnx"], python=bare)
    assert message == f"{sshd['host']}:{sshd['port']}: numpy is not installed for {bare}; fix: pip install numpy"


def test_remote_python_without_onnxruntime_says_which_pip_install(sshd, artifacts, fresh_venv):
    message = remote_error(sshd, artifacts["onnx"], python=fresh_venv)
    assert f"onnxruntime is not installed for {fresh_venv}; fix: pip install onnxruntime" in message


def test_artifact_the_device_cannot_run(sshd, artifacts):
    message = remote_error(sshd, artifacts["corrupt_tflite"])
    assert message.startswith(f"{sshd['host']}:{sshd['port']}: ") and "cannot load corrupt.tflite" in message


def test_run_timeout_is_a_clean_error(sshd, artifacts):
    started = time.monotonic()
    with pytest.raises(BenchError, match=r"benchmarking conv.onnx did not finish within 2 s"):
        bench([artifacts["onnx"]], budget_s=4, **ssh_options(sshd, timeout=2))
    assert time.monotonic() - started < 8
