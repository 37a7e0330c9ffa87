"""Any ONNX classifier: old opsets upgraded (and checked), free dims fixed, what int8 cannot take refused."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn.errors import UsageError
from edgecnn.pipeline.export import export
from edgecnn.pipeline.onnx_input import default_opset, refusals, upgrade_opset
from edgecnn.runtime import load
from tests.fixtures.onnx_models import helper_onnx, one_node_onnx, torch_onnx, view_onnx

QUICK = {"calib_size": 8, "holdout": 4}
ALL_FORMATS = ("fp32_onnx", "int8_onnx", "fp32_ort", "int8_ort", "fp32_tflite", "int8_tflite")


def _dequantize_axes_are_valid(path) -> None:
    model = onnx.load(str(path))
    assert default_opset(model) >= 13  # DequantizeLinear has `axis` from opset 13
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.slow
@pytest.mark.parametrize("opset", [11, 7])
def test_old_torch_export_goes_through_every_stage(tmp_path, opset):
    """The reported failure: an opset-11 classifier wrote an int8 graph ORT refused (DequantizeLinear axis)."""
    given = torch_onnx(tmp_path / f"net{opset}.onnx", opset, free_dims=(0, 2, 3))
    result = export(str(given), out=tmp_path / "out", formats="onnx,ort,tflite", input_shape="1,3,32,32", **QUICK)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    stage = manifest["stages"]["export"]
    assert stage["opset"] == {
        "original": opset,
        "working": 20,
        "converted": True,
        "converter": "onnx.version_converter",
    }
    assert stage["fixed_dims"] == {"batch": 1, "height": 32, "width": 32}
    assert stage["check"]["conversion_relative_error"] <= 1e-4
    assert all(manifest["stages"][s]["status"] == "ok" for s in ("simplify", "quantize", "drift", "ort", "tflite"))
    assert set(ALL_FORMATS) <= set(result.artifacts)
    _dequantize_axes_are_valid(result.artifacts["int8_onnx"])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(load(result.artifacts["fp32_onnx"])(x), load(given)(x), rtol=1e-4, atol=1e-4)


def test_model_at_a_working_opset_is_not_converted_unless_asked(tmp_path):
    given = helper_onnx(tmp_path / "m.onnx", opset=19)
    kept = export(str(given), out=tmp_path / "a", formats="onnx", quantize=False)
    assert kept.manifest["stages"]["export"]["opset"] == {"original": 19, "working": 19, "converted": False}
    assert "conversion_relative_error" not in kept.manifest["stages"]["export"]["check"]
    asked = export(str(given), out=tmp_path / "b", formats="onnx", quantize=False, opset=21)
    assert asked.manifest["stages"]["export"]["opset"]["working"] == 21
    assert default_opset(onnx.load(str(asked.artifacts["fp32_onnx"]))) == 21


def test_free_spatial_dims_need_input_shape(tmp_path):
    given = torch_onnx(tmp_path / "m.onnx", 11, free_dims=(0, 2, 3))
    with pytest.raises(UsageError, match="give --input-shape"):
        export(str(given), out=tmp_path / "out", formats="onnx", **QUICK)
    assert not (tmp_path / "out").exists()


def test_a_conversion_the_converter_cannot_do_names_the_op(tmp_path):
    given = one_node_onnx(
        tmp_path / "m.onnx", {"op_type": "ImageScaler", "inputs": ["x"], "outputs": ["y"], "name": "scaler"}, 7
    )
    with pytest.raises(UsageError) as caught:
        export(str(given), out=tmp_path / "out", formats="onnx", quantize=False)
    message = str(caught.value)
    assert "cannot be upgraded from opset 7 to 20" in message and "ImageScaler 'scaler'" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_converter_assertion_is_one_readable_reason():
    model = onnx.load_from_string(
        helper.make_model(
            helper.make_graph(
                [helper.make_node("BatchNormalization", list("xsbmv"), ["y"], name="bn", spatial=0)],
                "g",
                [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "xsbmv"],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            ),
            opset_imports=[helper.make_opsetid("", 7)],
        ).SerializeToString()
    )
    with pytest.raises(UsageError, match=r"BatchNormalization 'bn': Attribute spatial must have value 1; re-export"):
        upgrade_opset(model, 20, "m.onnx")


@pytest.mark.parametrize(
    ("node", "opset", "inputs", "reason"),
    [
        (
            {
                "op_type": "BatchNormalization",
                "inputs": ["x", "s", "b", "m", "v"],
                "outputs": ["y", "rm", "rv"],
                "name": "bn",
            },
            15,
            None,
            "training-mode graph (BatchNormalization 'bn' (training_mode=1))",
        ),
        (
            {"op_type": "Relu", "inputs": ["x"], "outputs": ["y"], "name": "relu"},
            13,
            {"x": TensorProto.INT64},
            "'x' is int64",
        ),
        (
            {"op_type": "Relu", "inputs": ["x"], "outputs": ["y"], "name": "relu"},
            6,
            None,
            "opset 6 is older than ONNX Runtime loads",
        ),
    ],
)
def test_what_cannot_be_quantized_is_refused_with_the_reason(tmp_path, node, opset, inputs, reason):
    given = one_node_onnx(tmp_path / "m.onnx", node, opset, inputs)
    with pytest.raises(UsageError) as caught:
        export(str(given), out=tmp_path / "out", formats="onnx", **QUICK)
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_dropout_in_training_mode_and_control_flow_are_named():
    flag = helper.make_tensor("t", TensorProto.BOOL, [], [True])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["d"], ["o"])],
        "b",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Dropout", ["x", "", "t"], ["d"], name="drop"),
            helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
            helper.make_node("If", ["c"], ["y"], name="branch", then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [flag],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    reasons = refusals(model)
    assert any("Dropout 'drop' (training_mode=true)" in r for r in reasons)
    assert any("control flow (If 'branch')" in r and "--no-quantize" in r for r in reasons)
    assert not any("control flow" in r for r in refusals(model, quantize=False))
    model.graph.initializer[0].int32_data[:] = [0]  # Dropout with a constant false training_mode is inference
    assert not any("Dropout" in r for r in refusals(model))


def test_old_model_with_external_data_is_upgraded_with_its_weights(tmp_path):
    given = torch_onnx(tmp_path / "net.onnx", 11)
    model = onnx.load(str(given))
    external = tmp_path / "ext" / "net.onnx"
    external.parent.mkdir()
    onnx.save_model(model, str(external), save_as_external_data=True, location="net.onnx.data", size_threshold=0)
    result = export(str(external), out=tmp_path / "out", formats="onnx", quantize=False)
    assert result.manifest["stages"]["export"]["opset"]["converted"]
    assert not list((tmp_path / "out").glob("*.data"))  # weights embedded in the artifact
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(load(result.artifacts["fp32_onnx"])(x), load(given)(x), rtol=1e-4, atol=1e-4)


def test_a_free_batch_is_fixed_so_shape_arithmetic_folds_and_reaches_tflite(tmp_path):
    given = view_onnx(tmp_path / "view9.onnx", opset=9)
    assert "Shape" in {n.op_type for n in onnx.load(str(given)).graph.node}
    result = export(str(given), out=tmp_path / "out", formats="onnx,tflite", quantize=False)
    stages = result.manifest["stages"]
    assert stages["export"]["fixed_dims"] == {"n": 1} and stages["export"]["opset"]["original"] == 9
    assert "Shape" not in {n.op_type for n in onnx.load(str(result.artifacts["fp32_onnx"])).graph.node}
    assert stages["tflite"]["status"] == "ok" and "fp32_tflite" in result.artifacts
