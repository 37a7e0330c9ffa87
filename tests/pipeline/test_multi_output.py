"""Models with several outputs: named ONNX outputs, every output checked by every stage, per-output drift."""

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn.analysis.drift import Thresholds, failures, figures
from edgecnn.analysis.task_raw import DEFAULT_MIN_COSINE
from edgecnn.errors import CheckFailedError, UsageError
from edgecnn.pipeline.export import export
from edgecnn.pipeline.onnx_export import export_onnx
from edgecnn.runtime import load
from edgecnn.runtime.outputs import output_names
from tests.fixtures.multihead import build_dict, build_features_too, build_tuple

ROOT = Path(__file__).resolve().parents[2]
HEADS = [("output_0", [1, 2, 8, 8]), ("output_1", [1, 64, 4]), ("output_2", [1, 10, 8, 8])]


def _torch_outputs(module: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(x))
    values = out.values() if isinstance(out, dict) else out
    flat = []
    for value in values:
        flat += list(value) if isinstance(value, list) else [value]
    return [v.numpy() for v in flat]


@pytest.mark.slow
def test_tuple_outputs_through_onnx_ort_tflite_from_the_cli(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "faces"
    options = ["--out", str(out), "--input-shape", "1,3,32,32", "--format", "onnx,ort,tflite"]
    options += ["--calib-size", "8", "--holdout", "8"]
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", "export", "tests.fixtures.multihead:build_tuple", *options],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(o["name"], o["shape"]) for o in manifest["model"]["outputs"]] == HEADS
    stages = manifest["stages"]
    names = [name for name, _ in HEADS]
    for stage, key in (("parity", "outputs"), ("simplify", "outputs"), ("ort", "int8_outputs"), ("tflite", "outputs")):
        assert stages[stage]["status"] == "ok"
        assert list(stages[stage]["check"][key]) == names, stage
    # Drift: cosine and SQNR per output, for each int8 computation and for the int8 .tflite; no top-1.
    agreement = manifest["agreement"]
    assert agreement["top1"] is None
    for figs in (agreement["exact_qdq"], agreement["host_kernels"], agreement["formats"]["tflite"]):
        assert list(figs["outputs"]) == names
        assert all(o["cosine"] > 0.9 and o["sqnr_db"] > 10 for o in figs["outputs"].values())
    assert list(stages["tflite"]["int8"]["io"]["outputs"]) == names
    # Every artifact gives the PyTorch module's three outputs (the .tflite in NCHW again).
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = _torch_outputs(build_tuple(), x)
    for artifact in ("model.fp32.onnx", "model.fp32.ort", "model.fp32.tflite"):
        got = load(out / artifact).run_all(x)
        assert sorted(got) == sorted(names), artifact
        for name, want in zip(names, expected, strict=True):
            np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-4, err_msg=f"{artifact} {name}")
    assert "| host kernels | output_1 |" in (out / "report.md").read_text()
    # the .tflite's maps are channels-last, and the manifest and report say so (output_1 is N×64×4)
    assert manifest["model"]["tflite_output_layouts"] == {"output_0": "NHWC", "output_2": "NHWC"}
    assert (
        "- .tflite: the input and its 4-D outputs (`output_0`, `output_2`) are NHWC (transpose"
        in (out / "report.md").read_text()
    )
    interpreter = Interpreter(model_path=str(out / "model.fp32.tflite"))
    shapes = {n: list(d["shape"]) for n, d in interpreter.get_signature_runner().get_output_details().items()}
    assert shapes == {"output_0": [1, 8, 8, 2], "output_1": [1, 64, 4], "output_2": [1, 8, 8, 10]}


@pytest.mark.slow
def test_dict_outputs_keep_their_keys(tmp_path):
    result = export(
        build_dict(),
        out=tmp_path / "dict",
        input_shape="1,3,32,32",
        formats="onnx,ort,tflite",
        calib_size=8,
        holdout=8,
    )
    names = ["scores", "boxes", "extra_0"]
    assert [o["name"] for o in result.manifest["model"]["outputs"]] == names
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = _torch_outputs(build_dict(), x)
    for key in ("fp32_onnx", "fp32_tflite"):
        got = load(result.artifacts[key]).run_all(x)
        for name, want in zip(names, expected, strict=True):
            np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-4)
    int8 = load(result.artifacts["int8_tflite"]).run_all(x)
    assert sorted(int8) == sorted(names) and int8["boxes"].shape == (1, 64, 4)


@pytest.mark.parametrize("io", ["int8", "float"])
def test_an_output_another_op_reads_too_stays_an_output_of_the_int8_tflite(tmp_path, io):
    """ai-edge-quantizer moved such an output to a DEQUANTIZE (float where int8 was asked) and left the signature
    naming the int8 tensor inside the graph, which LiteRT does not keep: 'Tensor data is null', exit 70."""
    from ai_edge_litert.interpreter import Interpreter

    result = export(
        build_features_too(), out=tmp_path / "f", input_shape="1,3,32,32", formats="onnx,tflite", calib_size=8,
        holdout=8, tflite_io=io,
    )  # fmt: skip
    names = ["output_0", "output_1", "output_2"]
    interpreter = Interpreter(model_path=str(result.artifacts["int8_tflite"]))
    runner = interpreter.get_signature_runner("serving_default")
    feed = {name: np.zeros(d["shape"], d["dtype"]) for name, d in runner.get_input_details().items()}
    dtypes = {name: value.dtype for name, value in runner(**feed).items()}
    assert dtypes == dict.fromkeys(names, np.dtype(np.int8 if io == "int8" else np.float32))
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    want, got = load(result.artifacts["fp32_onnx"]).run_all(x), load(result.artifacts["int8_tflite"]).run_all(x)
    for name in names:
        cosine = np.dot(got[name].ravel(), want[name].ravel()) / np.linalg.norm(got[name]) / np.linalg.norm(want[name])
        assert cosine > 0.99, name


class NoisyHead(nn.Module):
    """Two heads, the second adding fresh noise: only a check of every output can catch it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.mean((2, 3)), y + torch.randn_like(y)


def test_parity_checks_every_output_and_names_the_failing_one(tmp_path):
    with pytest.raises(CheckFailedError, match=r"parity ORT fp32 vs PyTorch \(output 'output_1'\)"):
        export(NoisyHead(), out=tmp_path / "noisy", input_shape="1,3,32,32", formats="onnx", calib_size=2, holdout=0)


Pair = namedtuple("Pair", "scores boxes")


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("tensor", ["logits"]),
        (("t", "t", "t"), ["output_0", "output_1", "output_2"]),
        ({"out": "t", "aux": "t"}, ["out", "aux"]),
        (("t", {"a": "t", "b": ["t", "t"]}), ["output_0", "output_1_a", "output_1_b_0", "output_1_b_1"]),
        (Pair("t", "t"), ["scores", "boxes"]),
    ],
)
def test_output_names(value, names):
    def build(v):
        if v in ("t", "tensor"):
            return torch.zeros(1)
        if isinstance(v, dict):
            return {k: build(i) for k, i in v.items()}
        if isinstance(v, Pair):
            return Pair(*map(build, v))
        return type(v)(build(i) for i in v)

    assert output_names(build(value)) == names


def test_outputs_that_are_not_tensors_are_one_line_errors():
    with pytest.raises(UsageError, match="returns NoneType at output 'output_1'"):
        output_names((torch.zeros(1), None))
    with pytest.raises(UsageError, match="clashing names: output_0"):
        output_names({"output_0": torch.zeros(1), "x": [torch.zeros(1)], 0: torch.zeros(1)})


def test_drift_judges_each_output_without_a_classification_output():
    rng = np.random.default_rng(0)
    reference = {"probs": rng.random((8, 2, 4, 4)), "boxes": rng.standard_normal((8, 16, 4))}
    target = {"probs": reference["probs"] + 1e-3, "boxes": rng.standard_normal((8, 16, 4))}  # boxes unrelated
    figs = figures(reference, target)
    assert figs["top1_agreement"] is None and set(figs["outputs"]) == {"probs", "boxes"}
    assert figs["cosine"] == figs["outputs"]["boxes"]["cosine"] < DEFAULT_MIN_COSINE
    missed = failures(figs, Thresholds())
    assert len(missed) == 1 and missed[0].startswith("output 'boxes': cosine")
    # One N×classes output keeps the classification figures.
    logits = rng.standard_normal((8, 10))
    assert figures(logits, logits)["top1_agreement"] == 1.0


def test_a_multi_output_runner_refuses_to_pick_one(tmp_path):
    path = tmp_path / "heads.onnx"
    export_onnx(build_tuple(), (1, 3, 32, 32), path)
    runner = load(path)
    assert len(runner.run_all(np.zeros((1, 3, 32, 32), np.float32))) == 3
    with pytest.raises(UsageError, match="has 3 outputs"):
        runner(np.zeros((1, 3, 32, 32), np.float32))
