"""Models with several inputs: --input-shape name=N,C,H,W per input, .npz calibration per input, every stage."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn.data.calibration import load_input_calibration
from edgecnn.errors import UsageError
from edgecnn.pipeline.export import export
from edgecnn.pipeline.source import parse_input_shapes, resolve_source, source_recipe
from edgecnn.runtime import load
from tests.fixtures.multihead import build_two_inputs

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ("image=1,3,32,32", "depth=1,1,32,32")


@pytest.fixture
def two_input_npz(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "calib.npz"
    np.savez(
        path,
        image=rng.standard_normal((16, 3, 32, 32)).astype(np.float32),
        depth=rng.standard_normal((16, 1, 32, 32)).astype(np.float32),
    )
    return path


@pytest.mark.slow
def test_two_inputs_through_every_format(tmp_path, two_input_npz):
    result = export(
        "tests.fixtures.multihead:build_two_inputs",
        out=tmp_path / "two",
        input_shape=SHAPES,
        calib=str(two_input_npz),
        calib_size=12,
        holdout=4,
        formats="onnx,ort,tflite",
    )
    manifest = result.manifest
    assert manifest["model"]["inputs"] == [
        {"name": "image", "shape": [1, 3, 32, 32]},
        {"name": "depth", "shape": [1, 1, 32, 32]},
    ]
    assert manifest["calibration"]["count"] == 12 and manifest["calibration"]["held_out"] == 4
    assert all(manifest["stages"][s]["status"] == "ok" for s in ("parity", "simplify", "quantize", "ort", "tflite"))
    assert set(manifest["stages"]["tflite"]["int8"]["io"]["inputs"]) == {"image", "depth"}
    rng = np.random.default_rng(3)
    x = {"image": rng.standard_normal((2, 3, 32, 32)), "depth": rng.standard_normal((2, 1, 32, 32))}
    x = {k: v.astype(np.float32) for k, v in x.items()}
    with torch.no_grad():
        want = build_two_inputs().eval()(torch.from_numpy(x["image"]), torch.from_numpy(x["depth"])).numpy()
    for key in ("fp32_onnx", "fp32_ort", "fp32_tflite"):
        np.testing.assert_allclose(load(result.artifacts[key])(x), want, rtol=1e-4, atol=1e-4, err_msg=key)
    assert load(result.artifacts["int8_tflite"])(x).shape == (2, 4)


def test_parse_input_shapes():
    assert parse_input_shapes(("1,3,32,32",)) == (1, 3, 32, 32)
    assert parse_input_shapes("1,3,32,32") == (1, 3, 32, 32)
    assert parse_input_shapes((1, 3, 32, 32)) == (1, 3, 32, 32)
    assert parse_input_shapes(()) is None
    assert parse_input_shapes(SHAPES) == {"image": (1, 3, 32, 32), "depth": (1, 1, 32, 32)}
    assert parse_input_shapes({"image": "1,3,8,8"}) == {"image": (1, 3, 8, 8)}
    # an ONNX input's name need not be a Python identifier (torch.onnx's 'input.1', TensorFlow's 'x:0')
    assert parse_input_shapes(("input.1=1,3,8,8", "x:0=1,3,8,8")) == {"input.1": (1, 3, 8, 8), "x:0": (1, 3, 8, 8)}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (("1,3,32,32", "1,1,32,32"), "is given 2 times without input names: give it once for a model with one"),
        (("image=1,3,32,32", "1,1,32,32"), "'1,1,32,32' has no input name"),
        (("image=1,3,32,32", "image=1,1,32,32"), "names input 'image' twice"),
        (("image=1,3,32,32", "depth=2,1,32,32"), "same batch size"),
        (("image=1,3,32,32", " =1,1,32,32"), "names no input: write NAME=N,C,H,W"),
        (("image=1,32,32", "depth=1,1,32,32"), "edgecnn takes image inputs"),
    ],
)
def test_bad_input_shapes_are_one_line(given, message):
    with pytest.raises(UsageError, match=message):
        parse_input_shapes(given)


def test_names_must_be_the_first_forward_arguments():
    spec = "tests.fixtures.multihead:build_two_inputs"
    with pytest.raises(UsageError, match=r"names rgb, but the forward .* takes \(image, depth\)"):
        resolve_source(spec, input_shape={"image": (1, 3, 8, 8), "rgb": (1, 1, 8, 8)})
    source = resolve_source(spec, input_shape={"depth": (1, 1, 8, 8), "image": (1, 3, 8, 8)})
    assert list(source.inputs) == ["image", "depth"] and source.input_shape == (1, 3, 8, 8)  # forward's order
    with pytest.raises(UsageError, match="takes one input"):
        resolve_source("torchvision:resnet18", input_shape={"a": (1, 3, 32, 32), "b": (1, 3, 32, 32)})


def test_calibration_npz_needs_one_float_array_per_input(tmp_path, two_input_npz):
    source = resolve_source("tests.fixtures.multihead:build_two_inputs", input_shape=parse_input_shapes(SHAPES))
    recipe = source_recipe(source)
    shapes = {"image": (3, 32, 32), "depth": (1, 32, 32)}
    calib, held = load_input_calibration(str(two_input_npz), shapes, recipe, 12, 4)
    assert len(calib) == 12 and len(held) == 4 and calib.images["depth"].shape == (12, 1, 32, 32)
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(UsageError, match="no array for input"):
        load_input_calibration(str(bad), shapes, recipe, 4, 0)
    np.savez(bad, image=np.zeros((4, 3, 32, 32), np.float32), depth=np.zeros((4, 32, 32, 1), np.uint8))
    with pytest.raises(UsageError, match="input 'depth' must be float32 N×1×32×32"):
        load_input_calibration(str(bad), shapes, recipe, 4, 0)
    with pytest.raises(UsageError, match=r"needs an \.npz"):
        load_input_calibration(str(tmp_path), shapes, recipe, 4, 0)


def test_cli_names_each_input():
    shapes = ["--input-shape", "image=1,3,32,32", "--input-shape", "1,1,32,32"]
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", "export", "tests.fixtures.multihead:build_two_inputs", *shapes],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "edgecnn: error: --input-shape '1,1,32,32' has no input name: with several inputs name each as in forward, "
        "e.g. --input-shape image=1,3,224,224 --input-shape depth=1,1,224,224"
    ]


def _two_input_onnx(path: Path) -> Path:
    """The two-input network as an ONNX file another tool wrote: opset 17, a free batch dim on each input."""
    free = {"image": {0: "n"}, "depth": {0: "n"}}
    sample = (torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            build_two_inputs().eval(),
            sample,
            str(path),
            input_names=["image", "depth"],
            output_names=["embedding"],
            opset_version=17,
            dynamo=False,
            dynamic_axes=free,
        )
    return path


@pytest.mark.slow
def test_an_onnx_model_with_two_inputs_exports_and_drifts(tmp_path, two_input_npz):
    """An ONNX MODEL with two inputs: named --input-shape (the other's free batch follows), .npz per input, a static
    batch of 2 (calibration fed in pairs), every format; then ``edgecnn drift`` on its artifacts, REF as the ONNX file
    and as the PyTorch module."""
    from edgecnn.commands.drift import drift

    given = _two_input_onnx(tmp_path / "two.onnx")
    result = export(
        str(given),
        out=tmp_path / "out",
        input_shape={"image": (2, 3, 32, 32)},
        calib=str(two_input_npz),
        calib_size=11,
        holdout=5,
        formats="onnx,ort,tflite",
        allow_drift=True,  # random weights: a 4-way arg-max on noise flips; the cosine below is what is judged
    )
    manifest = result.manifest
    assert manifest["model"]["inputs"] == [
        {"name": "image", "shape": [2, 3, 32, 32]},
        {"name": "depth", "shape": [2, 1, 32, 32]},
    ]
    assert manifest["stages"]["export"]["fixed_dims"] == {"image: n": 2, "depth: n": 2}
    assert all(manifest["stages"][s]["status"] == "ok" for s in ("simplify", "quantize", "ort", "tflite"))
    rng = np.random.default_rng(4)
    x = {"image": rng.standard_normal((3, 3, 32, 32)), "depth": rng.standard_normal((3, 1, 32, 32))}
    x = {k: v.astype(np.float32) for k, v in x.items()}  # three samples: batches of two, the last one padded
    with torch.no_grad():
        want = build_two_inputs().eval()(torch.from_numpy(x["image"]), torch.from_numpy(x["depth"])).numpy()
    for key in ("fp32_onnx", "fp32_ort", "fp32_tflite"):
        np.testing.assert_allclose(load(result.artifacts[key])(x), want, rtol=1e-4, atol=1e-4, err_msg=key)
    for reference in (str(given), "tests.fixtures.multihead:build_two_inputs"):
        for target in ("int8_onnx", "int8_tflite"):
            report = drift(reference, str(result.artifacts[target]), str(two_input_npz))
            assert report["samples"] == 16 and report["cosine"] > 0.99, (reference, target)


def test_onnx_input_shapes_name_the_onnx_inputs(tmp_path):
    given = str(_two_input_onnx(tmp_path / "two.onnx"))
    with pytest.raises(UsageError, match=r"has 2 inputs \(image, depth\): name the one\(s\) --input-shape sets"):
        resolve_source(given, input_shape=(1, 3, 32, 32))
    with pytest.raises(UsageError, match=r"names rgb, but the inputs of .* are image, depth"):
        resolve_source(given, input_shape={"rgb": (1, 3, 32, 32)})
    with pytest.raises(UsageError, match=r"--input-shape 1,1,8,8 does not fit input 'depth'"):
        resolve_source(given, input_shape={"depth": (1, 1, 8, 8)})
    source = resolve_source(given)
    assert source.inputs == {"image": (1, 3, 32, 32), "depth": (1, 1, 32, 32)}


def test_a_recipe_names_the_task_per_output(tmp_path, two_input_npz):
    """A recipe's ``task`` is --task's default: here the embedding output is judged by rank-1 agreement."""
    given = _two_input_onnx(tmp_path / "two.onnx")
    default = (ROOT / "export_recipes" / "default.yaml").read_text(encoding="utf-8")
    (tmp_path / "r.yaml").write_text(default + "task: embedding=embedding\n", encoding="utf-8")
    result = export(
        str(given),
        out=tmp_path / "out",
        recipe=str(tmp_path / "r.yaml"),
        calib=str(two_input_npz),
        calib_size=8,
        holdout=8,
        formats="onnx",
        allow_drift=True,
    )
    output = result.manifest["agreement"]["host_kernels"]["outputs"]["embedding"]
    assert output["task"] == "embedding" and output["rank1_agreement"] is not None
    (tmp_path / "bad.yaml").write_text(default + "task: embeding\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.yaml: task: unknown task 'embeding'; did you mean 'embedding'"):
        export(str(given), out=tmp_path / "out2", recipe=str(tmp_path / "bad.yaml"), calib=str(two_input_npz))


def test_inspect_takes_a_shape_per_input():
    from edgecnn.pipeline.inspect import inspect_model

    report = inspect_model(
        "tests.fixtures.multihead:build_two_inputs", input_shape=("image=1,3,8,8", "depth=1,1,8,8"), formats="onnx"
    )
    assert [(i["name"], i["shape"]) for i in report["inputs"]] == [("image", [1, 3, 8, 8]), ("depth", [1, 1, 8, 8])]
    assert report["macs"] > 0
