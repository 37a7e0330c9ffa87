"""End-to-end export of every zoo family at a small input size: every stage runs and checks."""

import json

import numpy as np
import pytest

from edgecnn.pipeline.export import export
from edgecnn.pipeline.source import sha256_file
from edgecnn.runtime import load

FAMILIES = [
    ("mobilenet_v1", {"width": 0.25}),
    ("mobilenet_v2", {"width": 0.35}),
    ("mobilenet_v3_small", {}),
    ("efficientnet_b0", {}),
    ("efficientnet_lite0", {}),
    ("resnet18", {}),
    ("densenet121", {"growth_rate": 8}),
    ("resnet50_dcn", {}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scaling"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_export_every_family(tmp_path, name, scaling):
    out = tmp_path / "out"
    result = export(
        name, profile="raspberrypi4", out=out, resolution=32, num_classes=10, calib_size=8, holdout=8, **scaling
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    assert [s for s, v in manifest["stages"].items() if v["status"] != "ok"] == ["custom"]  # only with --deform custom
    assert set(manifest["artifacts"]) >= {"fp32_onnx", "int8_onnx", "fp32_ort", "int8_ort"}
    for entry in manifest["artifacts"].values():
        path = out / entry["path"]
        assert path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]
    assert manifest["stages"]["parity"]["check"]["relative_error"] <= 1e-4
    assert manifest["stages"]["ort"]["check"]["int8_relative_error"] <= 1e-6
    assert manifest["stages"]["ort"]["target_platform"] == "arm"
    assert manifest["model"]["input_shape"] == [1, 3, 32, 32]
    assert 0 <= manifest["agreement"]["top1"] <= 1
    # raspberrypi4's formats include tflite: lowered and checked, or skipped with the reason when an op has no lowering.
    if name == "resnet50_dcn":  # lowered through the gather decomposition, its sampling path float in int8
        assert manifest["stages"]["tflite"]["deform"] == "gather decomposition"
        assert manifest["stages"]["tflite"]["int8"]["float_scopes"] == 1
        assert "int8_tflite" in manifest["artifacts"]
    # Every family, DCN included, has a checked fp32 .tflite.
    assert manifest["stages"]["tflite"]["check"]["relative_error"] <= 1e-4
    assert manifest["model"]["tflite_input_layout"] == "NHWC"
    x_nchw = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(
        load(out / "model.fp32.tflite")(x_nchw),
        load(out / "model.fp32.onnx")(x_nchw),
        atol=1e-4 * float(np.ptp(load(out / "model.fp32.onnx")(x_nchw))) + 1e-7,
    )
    assert (out / "report.md").read_text().startswith(f"# edgecnn export: {name}")
    # The int8 .ort really runs and equals the int8 .onnx on a fresh input.
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(load(out / "model.int8.ort")(x), load(out / "model.int8.onnx")(x))
    assert not list(tmp_path.glob(".out.*"))  # no leftovers beside OUT


def test_dcn_export_keeps_the_standard_deformconv_op(tmp_path):
    import onnx

    out = tmp_path / "dcn"
    export(
        "resnet50_dcnv2",
        out=out,
        profile="raspberrypi4",  # what the test reads is the fp32 graph: no x86 timed choice
        resolution=32,
        num_classes=4,
        calib_size=4,
        holdout=4,
        formats="onnx",
        dynamic_batch=True,
    )
    ops = {n.op_type for n in onnx.load(str(out / "model.fp32.onnx")).graph.node}
    assert "DeformConv" in ops
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert load(out / "model.fp32.onnx")(x).shape == (3, 4)  # dynamic batch


def test_tflite_requested_for_an_unlowerable_op_fails_that_format_only(tmp_path):
    import subprocess
    import sys

    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("LRN", ["input"], ["lrn"], "lrn", size=3),
        helper.make_node("GlobalAveragePool", ["lrn"], ["pool"], "pool"),
        helper.make_node("Flatten", ["pool"], ["logits"], "flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), tmp_path / "lrn.onnx")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecnn",
            "export",
            str(tmp_path / "lrn.onnx"),
            "--format",
            "tflite",
            "--no-quantize",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 4, result.stderr  # partial: the ONNX artifact is written, the .tflite is not
    assert "LRN (lrn)" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "o" / "model.fp32.onnx").is_file() and not list((tmp_path / "o").glob("*.tflite"))


def test_tflite_nchw_io(tmp_path):
    result = export(
        "mobilenet_v1",
        out=tmp_path / "o",
        width=0.25,
        resolution=32,
        formats="tflite",
        nchw_io=True,
        quantize=False,
    )
    assert result.manifest["model"]["tflite_input_layout"] == "NCHW"
    assert result.manifest["stages"]["tflite"]["check"]["relative_error"] <= 1e-4


def test_dcn_custom_op_twins(tmp_path):
    import onnx

    result = export(
        "resnet50_dcn",
        out=tmp_path / "o",
        width=0.25,
        resolution=32,
        num_classes=4,
        calib_size=4,
        holdout=4,
        formats="onnx",
        deform="custom",
    )
    for key in ("fp32_mmdeploy_onnx", "int8_mmdeploy_onnx"):
        ops = {(n.domain, n.op_type) for n in onnx.load(str(result.artifacts[key])).graph.node}
        assert ("mmdeploy", "MMCVDeformConv2d") in ops and ("", "DeformConv") not in ops
    assert result.manifest["stages"]["custom"]["status"] == "ok"
    # The runnable artifacts keep the standard op.
    assert any(n.op_type == "DeformConv" for n in onnx.load(str(result.artifacts["fp32_onnx"])).graph.node)
