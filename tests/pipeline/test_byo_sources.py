"""Bring your own model: torchvision segmentation builders without a network, and timm:NAME with timm's data config."""

import socket
import sys

import numpy as np
import pytest
import torch

from edgecnn.data.calibration import load_calibration
from edgecnn.errors import UnknownNameError, UsageError
from edgecnn.pipeline.export import export
from edgecnn.pipeline.source import resolve_source, source_recipe


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connection attempt fails, and no weights cached in ~/.cache/torch can be found."""

    def refuse(*args, **kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.mark.slow
def test_torchvision_segmentation_builds_without_network_and_passes_parity(tmp_path, no_network):
    result = export(
        "torchvision:lraspp_mobilenet_v3_large",
        out=tmp_path / "seg",
        input_shape="1,3,64,64",
        formats="onnx",
        quantize=False,
    )
    manifest = result.manifest
    assert manifest["stages"]["parity"]["status"] == "ok"
    assert manifest["stages"]["parity"]["check"]["relative_error"] <= 1e-4
    # torchvision segmentation models return {"out": …}: the dict key names the ONNX output.
    assert manifest["model"]["outputs"] == [{"name": "out", "shape": [1, 21, 64, 64]}]


def test_torchvision_builders_take_no_backbone_download(no_network):
    source = resolve_source("torchvision:deeplabv3_mobilenet_v3_large", input_shape=(1, 3, 64, 64), num_classes=3)
    assert source.module.classifier[-1].out_channels == 3


def test_timm_model_takes_timm_preprocessing_and_input_size(no_network):
    source = resolve_source("timm:test_resnet")
    assert source.kind == "timm" and source.input_shape == (1, 3, 160, 160)  # timm's input_size
    recipe = source_recipe(source)
    assert recipe.mean == (0.5, 0.5, 0.5) and recipe.std == (0.5, 0.5, 0.5)
    assert recipe.interpolation == "bilinear" and recipe.crop_fraction == pytest.approx(0.95)
    assert source.preprocessing_origin.startswith("timm data config of timm:test_resnet")
    # A recipe named on the command line wins, and says so.
    assert source_recipe(source, "default").mean != (0.5, 0.5, 0.5)
    assert source.preprocessing_origin.startswith("recipe ")


def test_timm_preprocessing_feeds_calibration(tmp_path):
    source = resolve_source("timm:test_resnet", input_shape=(1, 3, 32, 32))
    white = tmp_path / "white.npz"
    np.savez(white, images=np.full((3, 32, 32, 3), 255, np.uint8))
    calib, _ = load_calibration(str(white), (3, 32, 32), source_recipe(source), 3, 0)
    np.testing.assert_allclose(calib.images, 1.0)  # (1 - 0.5) / 0.5 with timm's mean and std


@pytest.mark.slow
def test_timm_export_with_weights_records_the_preprocessing(tmp_path, no_network):
    import timm

    weights = tmp_path / "resnet.pt"
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=4).state_dict(), weights)
    result = export(
        "timm:test_resnet",
        out=tmp_path / "timm",
        weights=weights,
        num_classes=4,
        input_shape="1,3,32,32",
        formats="onnx",
        quantize=False,
    )
    model = result.manifest["model"]
    assert model["kind"] == "timm" and model["weights"]["path"] == str(weights)
    assert model["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and model["mean"] == [0.5, 0.5, 0.5]
    assert model["preprocessing_origin"].startswith("timm data config")
    assert model["outputs"] == [{"name": "logits", "shape": [1, 4]}]
    assert result.manifest["stages"]["parity"]["status"] == "ok"


def test_timm_unknown_name_suggests_the_nearest():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        resolve_source("timm:resnet18x")


def test_timm_weights_that_do_not_fit_are_one_line(tmp_path):
    weights = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(UsageError, match="does not fit the model"):
        resolve_source("timm:test_resnet", weights=weights)


def test_timm_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError, as when it is not installed
    with pytest.raises(UsageError, match=r"pip install 'edgecnn\[timm\]'"):
        resolve_source("timm:test_resnet")


def test_random_weights_come_from_the_seed_and_leave_the_callers_generator_alone():
    """Two exports of a model without weights got different random weights (and artifacts) each run; now they
    start from --seed, and torch's global generator is left as the caller had it."""
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first, again, other = (
        resolve_source(spec, seed=seed).module.state_dict()
        for spec, seed in (("mobilenet_v1", 0), ("mobilenet_v1", 0), ("mobilenet_v1", 1))
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
    vision = [resolve_source("torchvision:resnet18", seed=0).module.state_dict() for _ in range(2)]
    assert all(torch.equal(vision[0][k], vision[1][k]) for k in vision[0])


def test_a_single_input_may_be_named_by_its_onnx_name_or_forward_argument():
    """One named --input-shape is checked against forward (a wrong name was ignored); 'input', the ONNX input's own
    name, stays accepted as it was."""
    from edgecnn.errors import UsageError
    from edgecnn.pipeline.source import parse_input_shapes, resolve_source

    knobs = {"width": 0.25, "resolution": 32}
    for name in ("input", "x"):
        shape = parse_input_shapes(f"{name}=1,3,32,32")
        assert resolve_source("mobilenet_v1", scaling=knobs, input_shape=shape).input_shape == (1, 3, 32, 32)
    with pytest.raises(UsageError, match=r"--input-shape names image, but the forward of MODEL"):
        resolve_source("mobilenet_v1", scaling=knobs, input_shape=parse_input_shapes("image=1,3,32,32"))
