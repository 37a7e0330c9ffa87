"""DeformConv → mmdeploy's custom ops: golden attributes and inputs, validated against registered schemas."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgecnn.errors import UsageError
from edgecnn.lowering.onnx import to_mmdeploy


def deform_model(mask: bool, bias: bool, pads=(1, 1, 1, 1)) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inputs = ["X", "W", "offset", "B" if bias else "", "mask" if mask else ""]
    while inputs and not inputs[-1]:
        inputs.pop()
    node = helper.make_node(
        "DeformConv",
        inputs,
        ["Y"],
        "dcn",
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=list(pads),
        dilations=[1, 1],
        group=2,
        offset_group=2,
    )
    value = helper.make_tensor_value_info
    graph_inputs = [
        value("X", onnx.TensorProto.FLOAT, [1, 4, 9, 9]),
        value("offset", onnx.TensorProto.FLOAT, [1, 36, 5, 5]),
    ]
    if mask:
        graph_inputs.append(value("mask", onnx.TensorProto.FLOAT, [1, 18, 5, 5]))
    inits = [numpy_helper.from_array(rng.standard_normal((6, 2, 3, 3)).astype(np.float32), "W")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "B"))
    graph = helper.make_graph([node], "g", graph_inputs, [value("Y", onnx.TensorProto.FLOAT, [1, 6, 5, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_modulated_golden():
    model = to_mmdeploy(deform_model(mask=True, bias=True))
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("mmdeploy", "MMCVModulatedDeformConv2d")
    assert list(node.input) == ["X", "offset", "mask", "W", "B"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "groups": 2, "deform_groups": 2}
    assert any(o.domain == "mmdeploy" for o in model.opset_import)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 6, 5, 5]


def test_plain_golden_with_bias_added_after():
    model = to_mmdeploy(deform_model(mask=False, bias=True))
    ops = [(n.domain, n.op_type) for n in model.graph.node]
    assert ops == [("mmdeploy", "MMCVDeformConv2d"), ("", "Reshape"), ("", "Add")]
    node = model.graph.node[0]
    assert list(node.input) == ["X", "offset", "W"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["bias"] == 0 and attrs["im2col_step"] == 32 and attrs["padding"] == [1, 1]
    assert model.graph.node[2].output[0] == "Y"


def test_schema_rejects_a_wrong_node():
    model = to_mmdeploy(deform_model(mask=True, bias=False))
    model.graph.node[0].attribute.append(helper.make_attribute("kernel", 3))  # not in the schema
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)


def test_asymmetric_padding_is_refused():
    with pytest.raises(UsageError, match="symmetric padding"):
        to_mmdeploy(deform_model(mask=True, bias=False, pads=(1, 1, 2, 2)))
