"""One range for the tensors a Concat joins, for targets whose int8 Concat takes one scale (NNAPI before API 29)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.pipeline.concat_ranges import MAX_WIDTH_RATIO, SAME_AS_INPUT, concat_groups
from edgecnn.pipeline.quantize import Quantizer


def test_concats_that_share_a_tensor_form_one_group():
    nodes = [
        helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
        helper.make_node("Concat", ["c", "d", "k"], ["e"], axis=1),  # c links the two; k has no range (a constant)
        helper.make_node("Concat", ["f", "g"], ["h"], axis=1),
        helper.make_node("Relu", ["e"], ["y"]),
    ]
    tensors = {"a", "b", "c", "d", "e", "f", "g", "h", "y"}
    assert concat_groups(nodes, tensors) == [["a", "b", "c", "d", "e"], ["f", "g", "h"]]
    assert concat_groups(nodes[3:], tensors) == []
    # ORT quantizes a MaxPool's output with its input's parameters: a MaxPool before a Concat joins its input too;
    # one after the group's last tensor (no Concat in its own component) changes nothing
    pooled = [helper.make_node("MaxPool", ["p"], ["a"], kernel_shape=[2, 2]), *nodes]
    assert concat_groups(pooled, tensors | {"p"})[0] == ["a", "b", "c", "d", "e", "p"]
    lone = [helper.make_node("MaxPool", ["q"], ["r"], kernel_shape=[2, 2]), *nodes]
    assert concat_groups(lone, tensors | {"q", "r"}) == concat_groups(nodes, tensors)


def test_the_ops_tied_to_their_input_are_those_onnx_runtime_ties():
    from onnxruntime.quantization.operators.direct_q8 import QDQDirect8BitOp
    from onnxruntime.quantization.registry import QDQRegistry

    direct = {op for op, kind in QDQRegistry.items() if issubclass(kind, QDQDirect8BitOp)}
    by_name = {op for op, kind in QDQRegistry.items() if kind.__name__ in ("QDQSplit", "QDQGather")}
    assert set(SAME_AS_INPUT) == direct | by_name


def _branches(factor: float) -> onnx.ModelProto:
    """x → Conv a (weights ×1) and Conv b (×``factor``) → Concat → Conv: two branches of different ranges joined."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "wa"),
        numpy_helper.from_array(factor * rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "wb"),
        numpy_helper.from_array(rng.standard_normal((2, 8, 1, 1)).astype(np.float32), "wc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["c"], name="concat", axis=1),
        helper.make_node("Conv", ["c", "wc"], ["y"], name="conv_c"),
    ]
    graph = helper.make_graph(
        nodes,
        "branches",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def concat_scales(path: Path) -> list[set[tuple[float, int]]]:
    """For each Concat of a QDQ graph, the (scale, zero point) of its dequantized inputs and its quantized output."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    made = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def pair(node: onnx.NodeProto) -> tuple[float, int]:
        return float(inits[node.input[1]]), int(inits[node.input[2]])

    found = []
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        inputs = [pair(made[t]) for t in node.input if t in made and made[t].op_type == "DequantizeLinear"]
        outputs = [pair(r) for r in readers.get(node.output[0], []) if r.op_type == "QuantizeLinear"]
        assert inputs and outputs, "a Concat between Q/DQ"
        found.append(set(inputs) | set(outputs))
    return found


def test_the_quantizer_gives_a_concats_tensors_one_scale(tmp_path: Path):
    source = tmp_path / "fp32.onnx"
    onnx.save(_branches(3.0), source)
    images = np.random.default_rng(1).standard_normal((16, 1, 8, 8)).astype(np.float32)
    with Quantizer(source, images, share_concat_ranges=False) as apart, Quantizer(source, images) as shared:
        info_apart = apart.quantize(tmp_path / "apart.onnx", "minmax", per_channel=False)
        info_shared = shared.quantize(tmp_path / "shared.onnx", "minmax", per_channel=False)
    assert [len(s) for s in concat_scales(tmp_path / "apart.onnx")] == [2]  # a's and b's (the output's is b's)
    assert [len(s) for s in concat_scales(tmp_path / "shared.onnx")] == [1]
    assert info_apart["concat_shared_ranges"] is None
    assert info_shared["concat_shared_ranges"] == {"groups": 1, "tensors": 3, "largest": 3, "kept_apart": []}


def test_a_group_of_unlike_ranges_keeps_them(tmp_path: Path):
    """Boxes in pixels beside scores in [0, 1] must not share a range: a group wider than MAX_WIDTH_RATIO apart
    keeps its own, and says so."""
    source = tmp_path / "fp32.onnx"
    onnx.save(_branches(4 * MAX_WIDTH_RATIO), source)
    images = np.random.default_rng(1).standard_normal((16, 1, 8, 8)).astype(np.float32)
    with Quantizer(source, images) as quantizer:
        info = quantizer.quantize(tmp_path / "int8.onnx", "minmax", per_channel=False)
    shared = info["concat_shared_ranges"]
    assert shared["groups"] == 0 and len(shared["kept_apart"]) == 1
    assert shared["kept_apart"][0]["tensors"] == 3 and shared["kept_apart"][0]["width_ratio"] > MAX_WIDTH_RATIO
    assert [len(s) for s in concat_scales(tmp_path / "int8.onnx")] == [2]


def test_an_nnapi_export_of_a_densenet_has_one_scale_per_concat(tmp_path: Path, export_trained):
    """NNAPI before API 29 runs a quantized Concat only when its inputs and output share a scale and zero point
    (else ONNX Runtime's NNAPI EP leaves it to the CPU): the digits DenseNet's per-tensor export gives them one."""
    result = export_trained("densenet", tmp_path / "nnapi", profile="android-nnapi-api28", formats="onnx")
    shared = result.manifest["stages"]["quantize"]["concat_shared_ranges"]
    assert shared["groups"] > 0 and shared["kept_apart"] == []
    scales = concat_scales(result.artifacts["int8_onnx"])
    assert scales and all(len(s) == 1 for s in scales), scales
    assert result.manifest["drift"]["passed"], result.manifest["drift"]["final"]
