"""Helpers of the reliability tests: run the CLI in a subprocess, make bad files, check a clean failure."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def default_signals() -> None:
    """In a child (``preexec_fn``): SIGINT, SIGTERM and SIGHUP as an interactive shell gives them. A runner under
    nohup passes SIGHUP on ignored, and a shell starts a background job with SIGINT ignored (so Python installs no
    KeyboardInterrupt handler); edgecnn rightly leaves an ignored signal ignored — which is not what the signal tests
    are about."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def run_edgecnn(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m edgecnn ARGS`` in ``cwd``, the repo on PYTHONPATH (for the tests.fixtures models)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    full_env.pop("EDGECNN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=full_env
    )


def run_export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``edgecnn export ARGS --out out`` in ``tmp_path``."""
    return run_edgecnn(tmp_path, "export", *args, "--out", str(tmp_path / "out"))


def files_under(folder: Path) -> set[Path]:
    """Every path under ``folder`` (to check that a failed command wrote nothing)."""
    return set(folder.rglob("*"))


def assert_clean_failure(result, tmp_path: Path, message: str, code: int = 1, before: set[Path] | None = None) -> None:
    """Exit ``code``, exactly one ``edgecnn: error:`` line holding ``message``, no traceback, nothing written."""
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))  # no partial directory left beside OUT
    if before is not None:
        assert files_under(tmp_path) == before, sorted(map(str, files_under(tmp_path) - before))


def png(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Path:
    """A small PNG of one colour."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color = {"L": 128, "LA": (128, 255)}.get(mode, (10, 200, 30))
    Image.new(mode, size, color=color).save(path)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width``×``height`` pixels (a decompression bomb's header) and holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


def tiny_onnx(path: Path, classes: int = 10, shape: tuple[int, ...] = (1, 3, 8, 8), external: bool = False) -> Path:
    """A Flatten + Gemm classifier as ONNX (weights in ``PATH.data`` when ``external``)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    features = int(np.prod(shape[1:]))
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((classes, features)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(classes, np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], classes])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path
