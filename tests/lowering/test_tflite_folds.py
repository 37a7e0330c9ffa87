"""Patterns lowered to fewer TFLite ops, against ONNX Runtime: a HardSigmoid's alpha into the Conv before it, the
reshape that drops a reduction's kept axes into that reduction (issue #15: never more ops than litert-torch)."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

from edgecnn.lowering.tflite import convert, lower
from tests.lowering.tflite_check import check, make_model

node = helper.make_node
RNG = np.random.default_rng(15)


def _weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


# --- Conv → HardSigmoid
@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "pads", "groups"),
    [(4, 6, 1, 1, 0, 1), (4, 6, 3, 2, 1, 1), (6, 6, 3, 1, 1, 6), (6, 6, 5, 2, 2, 6), (4, 6, 3, 1, 1, 2)],
    ids=["1x1", "3x3-s2-pad", "dw", "dw-s2-pad", "g2"],
)
@pytest.mark.parametrize(
    "attrs", [{}, {"alpha": 1 / 6, "beta": 0.5}, {"alpha": -0.7, "beta": 0.1}, {"alpha": 0.3, "beta": 0.0}]
)
def test_conv_then_hard_sigmoid_is_one_conv_and_a_clamp(c_in, c_out, k, stride, pads, groups, attrs):
    inits = {"w": _weights(c_out, c_in // groups, k, k), "b": _weights(c_out)}
    conv = node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride] * 2, pads=[pads] * 4, group=groups
    )
    model = make_model([conv, node("HardSigmoid", ["y"], ["z"], **attrs)], {"x": [1, c_in, 8, 8]}, ["z"], inits)
    check(model, "fold-hard-sigmoid", scale=3.0)
    counts = convert(model).op_counts
    assert counts.pop("MUL") == 1 and "ADD" not in counts and "RELU_0_TO_1" not in counts


def test_squeeze_excitation_gate_is_mean_two_convs_add_and_two_muls():
    """MobileNetV3's gate: x · HardSigmoid(Conv(Relu(Conv(GlobalAveragePool(x)))))."""
    inits = {"w1": _weights(2, 8, 1, 1), "b1": _weights(2), "w2": _weights(8, 2, 1, 1), "b2": _weights(8)}
    nodes = [
        node("GlobalAveragePool", ["x"], ["pooled"]),
        node("Conv", ["pooled", "w1", "b1"], ["squeezed"], kernel_shape=[1, 1]),
        node("Relu", ["squeezed"], ["relu"]),
        node("Conv", ["relu", "w2", "b2"], ["excited"], kernel_shape=[1, 1]),
        node("HardSigmoid", ["excited"], ["gate"], alpha=1 / 6, beta=0.5),
        node("Mul", ["x", "gate"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, 8, 6, 6]}, ["y"], inits)
    check(model, "fold-hard-sigmoid", scale=3.0)
    assert convert(model).op_counts == {"MEAN": 1, "CONV_2D": 2, "MUL": 2}  # litert-torch's ops


def test_hard_sigmoid_folded_into_a_conv_takes_beta_into_the_bias():
    inits = {"w": _weights(3, 4, 1, 1), "b": _weights(3)}
    nodes = [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1]), node("HardSigmoid", ["y"], ["z"], beta=0.5)]
    model = schema.ModelT.InitFromPackedBuf(lower(make_model(nodes, {"x": [1, 4, 2, 2]}, ["z"], inits)), 0)
    conv = next(op for op in model.subgraphs[0].operators if op.inputs[2] >= 0 and len(op.inputs) == 3)
    bias = model.buffers[model.subgraphs[0].tensors[conv.inputs[2]].buffer].data
    np.testing.assert_allclose(np.frombuffer(bytes(bias), np.float32), 6 * 0.2 * inits["b"] + 3.0, rtol=1e-6)


def test_an_untrained_gate_whose_bias_overflows_int8_stays_float():
    """Behind a near-zero input, beta in the bias overflows its int32 (input scale × weight scale units): the int8
    quantization keeps that conv float, and the gate still agrees with fp32."""
    from edgecnn.lowering.tflite.quantize import quantize_tflite

    inits = {"w": _weights(3, 4, 1, 1), "b": _weights(3), "tiny": np.array(1e-9, np.float32)}
    nodes = [
        node("Mul", ["x", "tiny"], ["small"]),
        node("Conv", ["small", "w", "b"], ["y"], kernel_shape=[1, 1]),
        node("HardSigmoid", ["y"], ["z"], alpha=1 / 6, beta=0.5),
    ]
    model = make_model(nodes, {"x": [1, 4, 4, 4]}, ["z"], inits)
    x = np.random.default_rng(0).standard_normal((8, 4, 4, 4)).astype(np.float32)
    quantized = quantize_tflite(lower(model), x)
    assert any("bias" in reason for reason in quantized.kept_float.values()), quantized.kept_float


def test_hard_sigmoid_of_a_conv_read_twice_is_not_folded():
    inits = {"w": _weights(4, 4, 1, 1)}
    nodes = [node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1]), node("HardSigmoid", ["y"], ["z"])]
    model = make_model(nodes, {"x": [1, 4, 5, 5]}, ["y", "z"], inits)
    check(model, "fold-hard-sigmoid", scale=3.0)
    assert convert(model).op_counts == {"CONV_2D": 1, "MUL": 1, "ADD": 1, "RELU_0_TO_1": 1}


def test_conv_then_hard_swish_pattern_stays_hard_swish():
    inits = {"w": _weights(4, 4, 1, 1)}
    nodes = [
        node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1]),
        node("HardSigmoid", ["y"], ["h"], alpha=1 / 6, beta=0.5),
        node("Mul", ["y", "h"], ["z"]),
    ]
    model = make_model(nodes, {"x": [1, 4, 5, 5]}, ["z"], inits)
    check(model, "fold-hard-sigmoid", scale=3.0)
    assert convert(model).op_counts == {"CONV_2D": 1, "HARD_SWISH": 1}


# --- reduction → reshape that drops its kept axes
def _pool_then(reduce: list, squeeze: list, inits: dict, hw: int = 5) -> object:
    inits = {"w": _weights(6, 3, 3, 3), "fc": _weights(10, 6), **inits}
    nodes = [node("Conv", ["x", "w"], ["f"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), *reduce, *squeeze]
    nodes.append(node("Gemm", ["flat", "fc"], ["logits"], transB=1))
    return make_model(nodes, {"x": [1, 3, hw, hw]}, ["logits"], inits)


SQUEEZE_CASES = {
    "gap-flatten": ([node("GlobalAveragePool", ["f"], ["g"])], [node("Flatten", ["g"], ["flat"], axis=1)], {}),
    "gmp-flatten": ([node("GlobalMaxPool", ["f"], ["g"])], [node("Flatten", ["g"], ["flat"])], {}),
    "mean-reshape": (
        [node("ReduceMean", ["f", "axes"], ["g"], keepdims=1)],
        [node("Reshape", ["g", "shape"], ["flat"])],
        {"axes": np.array([2, 3], np.int64), "shape": np.array([1, -1], np.int64)},
    ),
    "gap-squeeze": (
        [node("GlobalAveragePool", ["f"], ["g"])],
        [node("Squeeze", ["g", "axes"], ["flat"])],
        {"axes": np.array([2, 3], np.int64)},
    ),
}


@pytest.mark.parametrize("case", SQUEEZE_CASES)
def test_reshape_that_drops_the_reduced_axes_is_taken_into_the_reduction(case):
    reduce, squeeze, inits = SQUEEZE_CASES[case]
    model = _pool_then(reduce, squeeze, inits)
    check(model, "fold-squeeze", scale=2.0)
    counts = convert(model).op_counts
    assert "RESHAPE" not in counts and "TRANSPOSE" not in counts and counts["FULLY_CONNECTED"] == 1


def test_reshape_that_moves_data_after_a_reduction_stays():
    inits = {"axes": np.array([3], np.int64), "shape": np.array([1, 30], np.int64)}
    nodes = [node("ReduceMean", ["x", "axes"], ["g"], keepdims=1), node("Reshape", ["g", "shape"], ["y"])]
    model = make_model(nodes, {"x": [1, 6, 5, 4]}, ["y"], inits)
    check(model, "fold-squeeze")
    assert "RESHAPE" in convert(model).op_counts


def test_reduction_read_twice_keeps_its_dims():
    nodes = [node("GlobalAveragePool", ["x"], ["g"]), node("Flatten", ["g"], ["flat"])]
    model = make_model(nodes, {"x": [1, 6, 5, 4]}, ["g", "flat"], {})
    check(model, "fold-squeeze")
    assert convert(model).op_counts["RESHAPE"] == 1
