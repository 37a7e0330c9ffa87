"""MODEL as torchvision name, import path with a checkpoint, and ONNX file; agreement on real digits."""

import json

import numpy as np
import pytest
import torch

from edgecnn.pipeline.export import export
from edgecnn.runtime import load


@pytest.mark.slow
def test_import_path_model_with_checkpoint_agrees_on_real_data(tmp_path, tinynet_checkpoint, digits_npz):
    out = tmp_path / "tiny"
    result = export(
        "tests.fixtures.tinynet:build_net",
        out=out,
        weights=tinynet_checkpoint["path"],
        input_shape="1,1,32,32",
        calib=digits_npz["path"],
        calib_size=64,
        holdout=128,
    )
    manifest = result.manifest
    assert manifest["model"]["weights"]["path"] == tinynet_checkpoint["path"]
    assert manifest["calibration"]["labels"] and not manifest["calibration"]["synthetic"]
    agreement = manifest["agreement"]
    assert agreement["samples"] == 128 and agreement["basis"] == "host_kernels"  # x86-avx2 profile
    assert agreement["top1"] >= 0.95 and agreement["cosine"] >= 0.99
    # The fp32 artifact has the trained model's accuracy.
    assert agreement["fp32_accuracy"] >= tinynet_checkpoint["accuracy"] - 0.05
    assert manifest["stages"]["quantize"]["reduce_range"] is True  # x86 without VNNI
    speed = manifest["drift"]["speed"]  # measured here, the target being this host; a slower int8 is said
    assert speed["basis"].startswith("measured on this host") and speed["faster"] in ("int8", "fp32")
    slower = [w for w in manifest["warnings"] if w.startswith("the int8 ONNX/ORT model is ")]
    host = [manifest["drift"]["host_unlike_target"]] if "host_unlike_target" in manifest["drift"] else []
    assert len(slower) == (speed["faster"] == "fp32")
    tflite = manifest["stages"]["tflite"]["int8"]["speed"]  # the .tflite's, timed in LiteRT
    tflite_slower = [w for w in manifest["warnings"] if w.startswith("the int8 .tflite is ")]
    assert len(tflite_slower) == (tflite["faster"] == "fp32")
    split = [w for w in manifest["warnings"] if "XNNPACK takes" in w]  # a .tflite XNNPACK splits is said
    records = [manifest["stages"]["tflite"]["xnnpack"], manifest["stages"]["tflite"]["int8"]["xnnpack"]]
    assert len(split) == sum(bool(r["undelegated"]) for r in records)
    assert sorted(manifest["warnings"]) == sorted(host + slower + tflite_slower + split)


@pytest.mark.slow
def test_torchvision_model_with_weights(tmp_path):
    import torchvision

    model = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=5)
    weights = tmp_path / "mnv3.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "tv"
    result = export(
        "torchvision:mobilenet_v3_small",
        out=out,
        weights=weights,
        num_classes=5,
        input_shape="1,3,64,64",
        calib_size=4,
        holdout=4,
    )
    assert result.manifest["model"]["kind"] == "torchvision"
    assert result.manifest["stages"]["parity"]["status"] == "ok"
    assert any("unvalidated" in w for w in result.manifest["warnings"])


@pytest.mark.slow
def test_onnx_file_as_model_skips_tracing(tmp_path, tinynet_checkpoint, digits_npz):
    first = export(
        "tests.fixtures.tinynet:build_net",
        out=tmp_path / "a",
        weights=tinynet_checkpoint["path"],
        input_shape="1,1,32,32",
        quantize=False,
        formats="onnx",
    )
    fp32 = first.artifacts["fp32_onnx"]
    second = export(str(fp32), out=tmp_path / "b", calib=digits_npz["path"], calib_size=16, holdout=16)
    stages = second.manifest["stages"]
    assert stages["export"]["given"] == str(fp32)
    assert stages["parity"]["status"] == "skipped"
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(load(second.artifacts["fp32_onnx"])(x), load(fp32)(x), rtol=1e-5, atol=1e-5)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["model"]["kind"] == "onnx"
