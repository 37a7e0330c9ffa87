"""`edgecnn inspect`: inputs, outputs, ops per format, params, MACs and the export plan, without exporting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto

from edgecnn.cli import cli
from edgecnn.models.complexity import count_macs, describe_model
from edgecnn.pipeline.inspect import inspect_model
from tests.fixtures.onnx_models import helper_onnx, one_node_onnx, torch_onnx
from tests.fixtures.tinynet import build_net
from tests.reliability.conftest import run_edgecnn


def test_zoo_model_matches_the_zoo_table_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = inspect_model("mobilenet_v1", scaling={"width": 0.25, "resolution": 32})
    assert report["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert report["outputs"] == [{"name": "logits", "shape": [1, 1000], "dtype": "float32"}]
    zoo = describe_model("mobilenet_v1", width=0.25, resolution=32)
    assert (report["params"], report["macs"]) == (zoo["params"], zoo["macs"])
    assert {row["op"] for row in report["ops"]} >= {"Conv", "Gemm"}
    assert all(row["onnx"] and row["ort"] and row["tflite"] for row in report["ops"])
    plan = report["export"]
    assert plan["refused"] is None and not plan["opset"]["upgrade"]
    assert list(plan["stages"]) == ["export", "parity", "simplify", "tflite_ops", "quantize", "drift", "ort", "tflite"]
    assert set(plan["stages"].values()) == {"runs"}
    assert all(s == {"status": "ok"} for s in plan["formats"].values()) and plan["expected_exit_code"] == 0
    assert list(tmp_path.iterdir()) == []


def test_old_onnx_file_shows_the_upgrade_the_fixed_dims_and_its_macs(tmp_path):
    given = torch_onnx(tmp_path / "net.onnx", 11, free_dims=(0, 2, 3))
    report = inspect_model(str(given), input_shape="1,3,32,32", formats="onnx", quantize=False)
    assert report["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert report["outputs"][0]["shape"] == [1, 10]
    opset = report["export"]["opset"]
    assert opset["original"] == 11 and opset["working"] == 20 and opset["upgrade"]
    assert opset["fixed_dims"] == {"batch": 1, "height": 32, "width": 32}
    assert "quantize" not in report["export"]["stages"] and "parity" not in report["export"]["stages"]
    assert report["counted_by"] == "ONNX graph"
    assert report["macs"] == count_macs(build_net(10, 3), (3, 32, 32))  # the graph's convs and FC, BN folded
    assert sorted(tmp_path.iterdir()) == [given]


def test_an_op_without_a_tflite_lowering_is_named_with_its_nodes(tmp_path):
    given = helper_onnx(tmp_path / "lp.onnx", pool="GlobalLpPool", normalize=True)
    report = inspect_model(str(given), formats="onnx,ort,tflite")
    rows = {row["op"]: row for row in report["ops"]}
    assert rows["GlobalLpPool"]["unsupported_nodes"] == ["pool"] and not rows["GlobalLpPool"]["tflite"]
    assert rows["LpNormalization"]["unsupported_nodes"] == ["norm"]
    assert rows["Conv"]["tflite"] and rows["Conv"]["onnx"] and rows["Conv"]["ort"]
    plan = report["export"]
    tflite = plan["formats"]["tflite"]
    assert tflite["status"] == "fails" and "GlobalLpPool (pool)" in tflite["reason"]
    assert plan["stages"]["tflite_ops"] == "fails" and plan["stages"]["tflite"] == "not reached"
    assert plan["formats"]["ort"] == {"status": "ok"} and plan["expected_exit_code"] == 4
    from_profile = inspect_model(str(given), profile="raspberrypi4")  # tflite from the profile: skipped, exit 0
    assert from_profile["export"]["formats"]["tflite"]["status"] == "skipped"
    assert from_profile["export"]["expected_exit_code"] == 0


def test_an_input_too_large_to_calibrate_on_is_a_refusal_as_export_says(tmp_path):
    """Export refuses calibration samples that would not fit in memory before allocating them; inspect said
    'expected exit 0' for such a model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3])]
    graph = helper.make_graph(
        nodes,
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 100_000, 100_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])],
        [weight],
    )
    path = tmp_path / "huge.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    plan = inspect_model(str(path), formats="onnx")["export"]
    assert plan["expected_exit_code"] == 1 and "need about" in str(plan["refused"]), plan


def test_a_node_a_tflite_lowering_refuses_fails_tflite_as_export_would(tmp_path):
    report = inspect_model(str(helper_onnx(tmp_path / "cubic.onnx", resize="cubic")), formats="onnx,tflite")
    plan = report["export"]
    assert plan["formats"]["tflite"]["status"] == "fails" and plan["expected_exit_code"] == 4
    assert "Resize node 'resize'" in plan["formats"]["tflite"]["reason"]
    assert plan["stages"]["tflite_ops"] == "fails"
    assert {row["op"]: row["tflite"] for row in report["ops"]}["Resize"]  # the op type has a lowering
    assert (
        inspect_model(str(helper_onnx(tmp_path / "cubic.onnx", resize="cubic")), formats="onnx")["export"][
            "expected_exit_code"
        ]
        == 0
    )


@pytest.mark.parametrize(
    ("node", "opset", "words"),
    [
        (
            {"op_type": "BatchNormalization", "inputs": list("xsbmv"), "outputs": ["y", "rm", "rv"], "name": "bn"},
            15,
            "training-mode graph (BatchNormalization 'bn'",
        ),
        ({"op_type": "ImageScaler", "inputs": ["x"], "outputs": ["y"], "name": "scaler"}, 7, "ImageScaler 'scaler'"),
        ({"op_type": "Relu", "inputs": ["x"], "outputs": ["y"], "name": "relu"}, 6, "opset 6 is older than"),
    ],
)
def test_what_export_would_refuse_is_said_not_raised(tmp_path, node, opset, words):
    given = one_node_onnx(tmp_path / "m.onnx", node, opset, {"x": TensorProto.FLOAT})
    report = inspect_model(str(given), formats="onnx")
    assert words in report["export"]["refused"] and report["export"]["expected_exit_code"] == 1


def test_the_command_prints_tables_and_json(tmp_path):
    given = helper_onnx(tmp_path / "lp.onnx", pool="GlobalLpPool")
    shown = run_edgecnn(tmp_path, "inspect", str(given), "--format", "onnx,tflite")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "GlobalLpPool │ 1 │ ✓ │ ✗ │ pool" in text
    assert "upgrade opset 13 → 20" in text and "tflite: fails: the TFLite lowering has no GlobalLpPool" in text
    as_json = run_edgecnn(tmp_path, "inspect", str(given), "--format", "onnx,tflite", "--json")
    assert json.loads(as_json.stdout)["export"]["formats"]["tflite"]["status"] == "fails"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lp.onnx"]
    helped = CliRunner().invoke(cli, ["inspect", "--help"])
    assert "what `edgecnn export`" in " ".join(helped.output.split()) and "Examples:" in helped.output


def test_a_family_the_planner_would_scale_says_so():
    report = inspect_model("mobilenet", profile="raspberrypi4", scaling={"width": None}, input_shape="1,3,32,32")
    assert any("planner choose the scaling for raspberrypi4" in note for note in report["notes"])
    assert report["model"]["name"] == "mobilenet_v1"


def test_an_int8_onnx_counts_its_int8_weights_not_its_scales(tmp_path):
    """A QDQ graph holds its weights as int8 constants a DequantizeLinear reads: only its float scales were counted
    (72 params for a 1,562-parameter net)."""
    from edgecnn.pipeline.export import export

    out = tmp_path / "out"
    export(str(torch_onnx(tmp_path / "net.onnx", 13)), out=out, formats="onnx", calib_size=8, holdout=4)
    fp32, int8 = (inspect_model(str(out / f"model.{kind}.onnx"))["params"] for kind in ("fp32", "int8"))
    weights = sum(p.numel() for p in build_net(10, 3).parameters() if p.dim() > 1)  # convolutions and FC
    assert fp32 >= weights and weights <= int8 <= 1.05 * fp32
