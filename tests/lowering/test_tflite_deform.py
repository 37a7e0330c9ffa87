"""The TFLite lowering of the ops a rewritten DeformConv uses, one by one and as a whole deformable layer."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import edgecnn.ops
from edgecnn.lowering.onnx import rewrite_deform_conv
from edgecnn.lowering.tflite import convert, unsupported_nodes
from edgecnn.pipeline.onnx_export import export_onnx
from edgecnn.pipeline.simplify import simplify
from tests.lowering.tflite_check import (
    MAX_ERRORS,
    RESOLVERS,
    TOLERANCE,
    check,
    make_model,
    relative_error,
    run_ort,
    run_tflite,
)

node = helper.make_node
RNG = np.random.default_rng(4321)


def _to_float(src: str, dst: str) -> onnx.NodeProto:
    return node("Cast", [src], [dst], to=TensorProto.FLOAT)


# --- op by op
def test_floor():
    check(make_model([node("Floor", ["x"], ["y"])], {"x": [1, 3, 4, 5]}, ["y"]), "deform-ops", scale=5.0)


@pytest.mark.parametrize("to", [TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL])
def test_cast_round_trip(to):
    """Float → ``to`` → float; float → int truncates toward zero as in ONNX."""
    nodes = [node("Cast", ["x"], ["i"], to=to), _to_float("i", "y")]
    check(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"]), "deform-ops", scale=5.0)


@pytest.mark.parametrize("op", ["GreaterOrEqual", "LessOrEqual", "Greater", "Less", "Equal"])
@pytest.mark.parametrize("other", ["scalar", "channel", "activation"])
def test_comparison(op, other):
    shape = [1, 4, 3, 5]
    inits, inputs = {}, {"x": shape}
    if other == "scalar":
        inits["c"] = np.array(0.0, np.float32)
    elif other == "channel":
        inits["c"] = np.array([-1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 4, 1, 1)
    else:
        inputs["c"] = shape
    feeds = {"x": np.floor(RNG.uniform(-3, 3, shape)).astype(np.float32)}  # integers: Equal is not all False
    if other == "activation":
        feeds["c"] = np.floor(RNG.uniform(-3, 3, shape)).astype(np.float32)
    nodes = [node(op, ["x", "c"], ["b"]), _to_float("b", "y")]
    check(make_model(nodes, inputs, ["y"], inits), "deform-ops", feeds=feeds)


@pytest.mark.parametrize("op", ["And", "Or"])
def test_logical(op):
    inits = {"zero": np.array(0.0, np.float32)}
    nodes = [
        node("Greater", ["a", "zero"], ["pa"]),
        node("Greater", ["b", "zero"], ["pb"]),
        node(op, ["pa", "pb"], ["both"]),
        node("Not", ["both"], ["neither"]),
        _to_float("both", "y"),
        _to_float("neither", "z"),
    ]
    check(make_model(nodes, {"a": [2, 7], "b": [2, 7]}, ["y", "z"], inits), "deform-ops")


@pytest.mark.parametrize("shape", [[1, 3, 4, 5], [2, 9]])
def test_where(shape):
    inits = {"zero": np.array(0.0, np.float32), "fill": np.array(7.5, np.float32)}
    nodes = [node("GreaterOrEqual", ["x", "zero"], ["keep"]), node("Where", ["keep", "x", "fill"], ["y"])]
    check(make_model(nodes, {"x": shape}, ["y"], inits), "deform-ops")


@pytest.mark.parametrize("index_type", [TensorProto.INT64, TensorProto.INT32])
def test_gather_rows_with_computed_indices(index_type):
    """The DeformConv pattern: rows of a 2-D table at indices computed in float and cast."""
    rows, cols = 11, 6
    nodes = [
        node("Floor", ["u"], ["f"]),
        node("Cast", ["f"], ["i"], to=index_type),
        node("Gather", ["table", "i"], ["y"], axis=0),
    ]
    model = make_model(nodes, {"table": [rows, cols], "u": [2, 9]}, ["y"])
    feeds = {
        "table": RNG.standard_normal((rows, cols)).astype(np.float32),
        "u": RNG.uniform(0, rows, (2, 9)).astype(np.float32),
    }
    check(model, "deform-ops", feeds=feeds)


@pytest.mark.parametrize(
    ("shape", "axis", "indices"),
    [
        ([2, 5, 7], 0, np.array(1, np.int64)),  # a scalar index drops the axis
        ([2, 5, 7], 1, np.array([4, 0, -1, 2], np.int64)),  # a negative index
        ([1, 6, 4, 5], 1, np.array([5, 1, 3], np.int64)),  # channels of an NHWC activation
        ([1, 6, 4, 5], 3, np.array([[0, 4], [2, 2]], np.int64)),  # a 4-D output of rank 5
    ],
)
def test_gather_constant_indices(shape, axis, indices):
    model = make_model([node("Gather", ["x", "i"], ["y"], axis=axis)], {"x": shape}, ["y"], {"i": indices})
    check(model, "deform-ops")


@pytest.mark.parametrize(
    ("shape", "starts", "ends", "axes", "steps"),
    [
        ([1, 27, 6, 6], [0], [18], [1], None),  # the offset half of a DCNv2 offset conv, on NHWC channels
        ([1, 27, 6, 6], [18], [2**62], [1], None),  # the mask part, an 'until the end' end
        ([1, 8, 7, 9], [1, -6], [-1, 100], [2, 3], [2, 3]),  # spatial axes with steps
        ([2, 9, 5], [-1, 4], [-100, 0], [1, 2], [-2, -1]),  # negative steps running past index 0
        ([3, 10], [2], [8], [-1], [1]),
    ],
)
def test_slice(shape, starts, ends, axes, steps):
    inits = {"s": np.array(starts, np.int64), "e": np.array(ends, np.int64), "a": np.array(axes, np.int64)}
    inputs = ["x", "s", "e", "a"]
    if steps is not None:
        inits["p"] = np.array(steps, np.int64)
        inputs.append("p")
    check(make_model([node("Slice", inputs, ["y"])], {"x": shape}, ["y"], inits), "deform-ops")


@pytest.mark.parametrize(
    ("a", "b", "b_constant"),
    [
        ([1, 10, 12], [1, 12, 5], True),  # the DeformConv MatMul with group=1: FULLY_CONNECTED
        ([3, 10, 4], [3, 4, 5], True),  # grouped: BATCH_MATMUL
        ([3, 10, 4], [3, 4, 5], False),
        ([2, 3, 10, 4], [3, 4, 5], True),  # broadcast batch dims
        ([10, 4], [2, 4, 5], False),
    ],
)
def test_batched_matmul(a, b, b_constant):
    inits = {"b": RNG.standard_normal(b).astype(np.float32)} if b_constant else {}
    inputs = {"a": a} if b_constant else {"a": a, "b": b}
    model = make_model([node("MatMul", ["a", "b"], ["y"])], inputs, ["y"], inits)
    check(model, "deform-ops")
    if b_constant and b[0] == 1:
        assert "BATCH_MATMUL" not in convert(model).op_counts


# --- a whole deformable layer
def _deform_model(tmp_path, modulated: bool, stride: int) -> tuple[onnx.ModelProto, list[str]]:
    """A Conv and a DeformConv layer, exported, simplified and rewritten; and the rewrite's float nodes."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        edgecnn.ops.DeformConv2d(8, 8, 3, stride=stride, padding=1, modulated=modulated),
    )
    with torch.no_grad():
        module[1].offset_conv.weight.normal_(0.0, 0.3)  # non-zero offsets (the layer starts at zero)
    exported, simplified = tmp_path / "model.onnx", tmp_path / "simplified.onnx"
    export_onnx(module.eval(), (1, 3, 12, 12), exported)
    simplify(exported, simplified)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(simplified)))
    assert any(n.op_type == "DeformConv" for n in model.graph.node)
    rewritten, float_nodes = rewrite_deform_conv(model)
    types = {n.name: n.op_type for n in model.graph.node}
    (names,) = float_nodes.values()
    branch = {types[n] for n in names if n in types}  # the nodes that were in the graph before the rewrite
    assert branch == ({"Conv", "Slice", "Sigmoid", "Mul"} if modulated else {"Conv"}), branch
    return rewritten, names


@pytest.mark.parametrize(("modulated", "stride"), [(True, 1), (False, 1), (True, 2)], ids=["v2", "v1", "v2-stride2"])
def test_deformable_layer_matches_onnx_runtime(tmp_path, modulated, stride):
    model, _ = _deform_model(tmp_path, modulated, stride)
    assert unsupported_nodes(model) == {}
    lowered = convert(model)
    assert lowered.op_counts.get("GATHER", 0) >= 4
    name = model.graph.input[0].name
    worst = 0.0
    for seed in (0, 1):
        x = np.random.default_rng(seed).standard_normal((1, 3, 12, 12)).astype(np.float32)
        expected = run_ort(model, {name: x})
        for resolver in RESOLVERS:
            actual = run_tflite(lowered.data, {name: x.transpose(0, 2, 3, 1)}, resolver)
            for out, reference in expected.items():
                assert reference.shape == (1, 8, 12 // stride, 12 // stride)
                assert float(reference.std()) > 0.0
                worst = max(worst, relative_error(actual[out], reference.transpose(0, 2, 3, 1)))
    MAX_ERRORS["deform-layer"] = max(MAX_ERRORS.get("deform-layer", 0.0), worst)
    assert worst <= TOLERANCE, f"relative error {worst:.3g} > {TOLERANCE}"


# --- int8: the sampling path stays float
def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def test_int8_keeps_the_offset_branch_and_sampling_path_float(tmp_path):
    """With the rewrite's float nodes as a scope, only the weight MatMul side of the layer is int8."""
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_litert import schema_py_generated as schema

    from edgecnn.lowering.tflite.builder import OPERATOR_NAMES
    from edgecnn.lowering.tflite.quantize import node_scope, quantize_tflite

    model, names = _deform_model(tmp_path, modulated=True, stride=1)
    scope = node_scope(model, names)
    lowered = convert(model)
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((32, 3, 12, 12)).astype(np.float32)
    x = rng.standard_normal((8, 3, 12, 12)).astype(np.float32).transpose(0, 2, 3, 1)
    name = model.graph.input[0].name
    reference = np.concatenate([run_tflite(lowered.data, {name: s[None]}, RESOLVERS[0])["logits"] for s in x])
    cosines = {}
    for label, scopes in (("all int8", ()), ("sampling float", (scope,))):
        quantized = quantize_tflite(lowered.data, calibration, keep_float_scopes=scopes, io="float")
        out = [run_tflite(quantized.data, {name: s[None]}, RESOLVERS[0])["logits"] for s in x]
        cosines[label] = _cosine(np.concatenate(out), reference)
    flat = schema.ModelT.InitFromPackedBuf(bytearray(quantized.data), 0)
    graph, codes = flat.subgraphs[0], [c.builtinCode for c in flat.operatorCodes]
    int8 = {
        OPERATOR_NAMES[codes[op.opcodeIndex]]
        for op in graph.operators
        if graph.tensors[op.outputs[0]].type == schema.TensorType.INT8
    }
    assert "FULLY_CONNECTED" in int8  # the weight MatMul
    assert not int8 & {"GATHER", "FLOOR", "SELECT_V2", "LOGISTIC", "STRIDED_SLICE", "SUB"}
    assert sum(graph.tensors[op.outputs[0]].type == schema.TensorType.INT8 for op in graph.operators) >= 4
    assert cosines["sampling float"] >= 0.99 and cosines["sampling float"] > cosines["all int8"] + 0.05, cosines
