"""Fixtures of the bench tests: tiny artifacts of every format, a real sshd on 127.0.0.1, a fresh venv."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import _once

SSHD = "/usr/sbin/sshd"
# pip's messages when the index cannot be reached.
NETWORK_ERRORS = ("connection", "network", "resolve", "timed out", "proxy", "no matching distribution")


def conv_relu_onnx(path: Path, channels: int = 8, size: int = 16, seed: int = 0) -> Path:
    """A Conv(3→channels, 3×3, pad 1) + Relu ONNX model with a static 1×3×size×size input."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["logits"]),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, channels, size, size])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _make_artifacts(folder: Path) -> dict:
    import numpy as np

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import quantize_tflite
    from edgecnn.pipeline.ort_format import convert_to_ort

    onnx_path = conv_relu_onnx(folder / "conv.onnx")
    ort_path = convert_to_ort(onnx_path, folder, arm=False)["ort"]
    lowered = convert(onnx_path)
    (folder / "conv.tflite").write_bytes(lowered.data)
    calibration = np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32)
    quantized = quantize_tflite(lowered.data, calibration, lowered.input_layout)
    (folder / "conv.int8.tflite").write_bytes(quantized.data)
    (folder / "corrupt.onnx").write_bytes(os.urandom(512))
    (folder / "corrupt.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + os.urandom(256))
    return {
        "onnx": str(onnx_path),
        "ort": str(ort_path),
        "tflite": str(folder / "conv.tflite"),
        "int8_tflite": str(folder / "conv.int8.tflite"),
        "corrupt_onnx": str(folder / "corrupt.onnx"),
        "corrupt_tflite": str(folder / "corrupt.tflite"),
        "input_scale": quantized.input_scale,
        "input_zero_point": quantized.input_zero_point,
    }


@pytest.fixture(scope="session")
def artifacts(shared_dir) -> dict:
    """Paths of conv.onnx, conv.ort, conv.tflite, conv.int8.tflite (int8 I/O) and two corrupt files."""
    return _once(shared_dir / "bench_artifacts" / "artifacts.json", _make_artifacts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> dict:
    """A real OpenSSH server on 127.0.0.1:<free port> for this user, with generated host and client keys."""
    if not Path(SSHD).is_file() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs Debian's openssh-server (/usr/sbin/sshd) and the ssh client: .ci/run installs them")
    folder = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(folder / "host_ed25519")
    client_pub = _keygen(folder / "client_ed25519")
    _keygen(folder / "stranger_ed25519")  # a key the server does not know
    _keygen(folder / "other_host_ed25519")  # a host key that is not the server's
    (folder / "authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    other = (folder / "other_host_ed25519.pub").read_text().split()
    (folder / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_ed25519'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = (folder / "sshd.log").open("w")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            pytest.fail(f"sshd exited {process.returncode}: {(folder / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("sshd did not listen within 15 s")
    yield {
        "host": f"{getpass.getuser()}@127.0.0.1",
        "port": port,
        "identity": folder / "client_ed25519",
        "stranger": folder / "stranger_ed25519",
        "known_hosts": folder / "known_hosts",
        "wrong_known_hosts": folder / "wrong_known_hosts",
        "python": sys.executable,
        "folder": folder,
    }
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _make_fresh_venv(folder: Path) -> dict:
    venv = folder / "venv"
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "numpy", "ai-edge-litert"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        lowered = done.stderr.lower()
        offline = any(word in lowered for word in NETWORK_ERRORS)
        return {"error": (done.stderr.strip().splitlines() or ["pip failed"])[-1], "offline": offline}
    return {"python": str(python)}


@pytest.fixture(scope="session")
def fresh_venv(shared_dir) -> str:
    """The python of a new venv holding only numpy and ai-edge-litert (made once per test run)."""
    made = _once(shared_dir / "bench_fresh_venv" / "venv.json", _make_fresh_venv)
    if made.get("offline"):
        pytest.skip(f"PyPI unreachable, cannot install numpy and ai-edge-litert: {made['error']}")
    assert "error" not in made, f"pip install numpy ai-edge-litert failed in a fresh venv: {made['error']}"
    return made["python"]
