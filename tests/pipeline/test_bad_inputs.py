"""Every user mistake is one line on stderr, a non-zero exit, no traceback, and nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def run_export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # for the tests.fixtures import-path models
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", "export", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )


def assert_clean_failure(result, tmp_path: Path, message: str, code: int = 1) -> None:
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))  # no partial directory left beside OUT


def _png(path: Path, mode: str = "RGB", size=(40, 30)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=128 if mode == "L" else (10, 200, 30)).save(path)
    return path


@pytest.fixture
def mismatched_weights(tmp_path) -> Path:
    import torch

    from edgecnn.models import create_model

    path = tmp_path / "r18_1000.pt"
    torch.save(create_model("resnet18", num_classes=1000).state_dict(), path)
    return path


CASES = {
    "unknown model": (["mobilenet_v5"], "unknown model 'mobilenet_v5'; did you mean 'mobilenet_v2'"),
    "unknown profile": (["mobilenet", "--profile", "raspberrypi3"], "unknown profile 'raspberrypi3'; did you mean"),
    "unknown recipe": (["mobilenet", "--recipe", "mobilenett"], "did you mean 'mobilenet'"),
    "unknown format": (["mobilenet", "--format", "onnx,ortt"], "did you mean 'ort'"),
    "tflite option without tflite": (
        ["mobilenet", "--format", "onnx,ort", "--nchw-io"],
        "--nchw-io applies to --format tflite, which this export does not make (formats: onnx, ort)",
    ),
    "tflite-io without tflite": (["mobilenet", "--format", "onnx", "--tflite-io", "float"], "--tflite-io applies"),
    "missing weights": (["resnet18", "--weights", "nope.pt"], "weights file nope.pt does not exist"),
    "unknown option for model": (["resnet18", "--phi", "1"], "has no option phi"),
    "bad opset": (["resnet18", "--opset", "11"], "--opset must be between 19 and 21"),
    "missing calib": (["resnet18", "--calib", "nowhere/"], "does not exist"),
    "unknown torchvision model": (["torchvision:resnet5"], "did you mean 'resnet50'"),
    "import path without module": (["no_such_pkg.mod:build"], "cannot import 'no_such_pkg.mod'"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_arguments(tmp_path, case):
    args, message = CASES[case]
    assert_clean_failure(run_export(tmp_path, *args), tmp_path, message)


def test_corrupt_weights(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"this is not a checkpoint")
    assert_clean_failure(run_export(tmp_path, "resnet18", "--weights", "bad.pt"), tmp_path, "cannot be loaded")


def test_mismatched_weights_list_the_keys(tmp_path, mismatched_weights):
    result = run_export(tmp_path, "resnet18", "--num-classes", "10", "--weights", str(mismatched_weights))
    assert_clean_failure(result, tmp_path, "wrong shapes: head.3.bias, head.3.weight")
    assert "--num-classes" in result.stderr


def test_weights_for_another_architecture(tmp_path, mismatched_weights):
    result = run_export(tmp_path, "mobilenet_v1", "--weights", str(mismatched_weights))
    assert_clean_failure(result, tmp_path, "missing keys: ")


def test_empty_calibration_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_failure(run_export(tmp_path, "resnet18", "--calib", "empty"), tmp_path, "has no images")


def test_calibration_folder_without_images(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hello")
    assert_clean_failure(run_export(tmp_path, "resnet18", "--calib", "docs"), tmp_path, "has no images (1 other files")


def test_unreadable_image(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "imgs" / "b.jpg").write_bytes(b"not a jpeg")
    assert_clean_failure(
        run_export(tmp_path, "resnet18", "--calib", "imgs", "--resolution", "32"), tmp_path, "is not a readable image"
    )


def test_wrong_channel_count(tmp_path):
    _png(tmp_path / "grey" / "a.png", mode="L")
    assert_clean_failure(
        run_export(tmp_path, "resnet18", "--calib", "grey"), tmp_path, "has 1 channel(s); the model takes 3"
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 3, 16, 16), np.float32), "must be N×3×224×224"),
        (np.zeros((4, 3, 224, 224), np.float64), "got float64"),
        (np.zeros((4, 224, 224, 1), np.uint8), "uint8 images must be N×H×W×C with C=3"),
    ],
    ids=["wrong-shape", "wrong-dtype", "wrong-channels"],
)
def test_bad_npz(tmp_path, array, message):
    np.savez(tmp_path / "calib.npz", images=array)
    assert_clean_failure(run_export(tmp_path, "resnet18", "--calib", "calib.npz"), tmp_path, message)


def test_npz_without_images(tmp_path):
    np.savez(tmp_path / "calib.npz", pixels=np.zeros((2, 3, 224, 224), np.float32))
    assert_clean_failure(run_export(tmp_path, "resnet18", "--calib", "calib.npz"), tmp_path, "has no 'images'")


def test_non_onnx_file_as_model(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    assert_clean_failure(run_export(tmp_path, "model.onnx"), tmp_path, "is not an ONNX model")


def test_existing_output_directory_needs_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_export(tmp_path, "resnet18")
    assert result.returncode == 1 and "exists; pass --force" in result.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_parity_failure_reports_both_numbers(tmp_path):
    result = run_export(tmp_path, "tests.fixtures.tinynet:NoisyNet", "--input-shape", "1,1,16,16", "--calib-size", "4")
    assert_clean_failure(result, tmp_path, "parity ORT fp32 vs PyTorch: max abs error", code=2)
    assert "of the output range, over the 0.0001 threshold" in result.stderr
