"""Normalization, activation and reduction lowerings against ONNX Runtime, on small graphs built with onnx.helper."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.errors import UsageError
from edgecnn.lowering.tflite import convert
from tests.lowering.tflite_check import check, make_model

node = helper.make_node
RNG = np.random.default_rng(4321)


def _weights(*shape: int, offset: float = 0.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5 + offset).astype(np.float32)


def _positive(shape, low: float = 0.1, high: float = 4.0) -> dict[str, np.ndarray]:
    return {"x": RNG.uniform(low, high, size=shape).astype(np.float32)}


def _model_shaped_like_input(nodes: list, shape: list[int], inits: dict, opset: int) -> onnx.ModelProto:
    """A model whose output has the input's shape, declared: ONNX infers none for GroupNormalization."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    if opset >= 21:  # the checker of onnx 1.23 calls GroupNormalization-18 deprecated (ONNX Runtime still runs it)
        onnx.checker.check_model(model, full_check=True)
    return model


# --- LayerNormalization
@pytest.mark.parametrize(
    ("shape", "axis", "bias"),
    [
        ([2, 5, 16], -1, True),  # ViT tokens
        ([2, 5, 16], -1, False),
        ([3, 8], -1, True),
        ([2, 5, 6], 1, True),  # over the last two axes
        ([1, 6, 4, 5], 1, True),  # over C, H, W of an NCHW map
        ([1, 6, 4, 5], -1, True),
        ([1, 6, 4, 5], 2, False),
    ],
)
def test_layer_norm(shape, axis, bias):
    normalized = shape[axis % len(shape) :]
    inits = {"s": _weights(*normalized, offset=1.0)}
    names = ["x", "s"]
    if bias:
        inits["b"] = _weights(*normalized)
        names.append("b")
    model = make_model([node("LayerNormalization", names, ["y"], axis=axis, epsilon=1e-5)], {"x": shape}, ["y"], inits)
    check(model, "layernorm", scale=3.0)
    counts = convert(model).op_counts
    assert "TRANSPOSE" not in counts
    assert counts == {"MEAN": 2, "SUB": 1, "MUL": 3, "ADD": 1 + bias, "RSQRT": 1}


def test_layer_norm_channel_last_after_a_transpose():
    """ConvNeXt: Conv → Transpose to NHWC → LayerNorm over the last axis (channels) → Transpose back."""
    inits = {"w": _weights(8, 3, 3, 3), "s": _weights(8, offset=1.0), "b": _weights(8)}
    nodes = [
        node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
        node("LayerNormalization", ["t", "s", "b"], ["n"], axis=-1, epsilon=1e-6),
        node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2]),
    ]
    model = make_model(nodes, {"x": [1, 3, 5, 6]}, ["y"], inits)
    check(model, "layernorm", scale=2.0)
    assert "TRANSPOSE" not in convert(model).op_counts  # both Transposes only relabel the NHWC tensor's axes


def test_convnext_block_with_linear_layers_and_gelu():
    """ConvNeXt's MLP as Linear layers: Transpose to channels-last, LayerNorm, MatMul, GELU, MatMul, scale, back."""
    inits = {
        "dw": _weights(8, 1, 3, 3),
        "s": _weights(8, offset=1.0),
        "b": _weights(8),
        "w1": _weights(8, 16),
        "w2": _weights(16, 8),
        "gamma": _weights(8),
    }
    nodes = [
        node("Conv", ["x", "dw"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
        node("LayerNormalization", ["t", "s", "b"], ["n"], axis=-1, epsilon=1e-6),
        node("MatMul", ["n", "w1"], ["h"]),
        node("Gelu", ["h"], ["g"]),
        node("MatMul", ["g", "w2"], ["m"]),
        node("Mul", ["m", "gamma"], ["ls"]),
        node("Transpose", ["ls"], ["back"], perm=[0, 3, 1, 2]),
        node("Add", ["x", "back"], ["y"]),
    ]
    check(make_model(nodes, {"x": [1, 8, 4, 5]}, ["y"], inits), "layernorm", scale=2.0)


def test_transpose_read_once_only_relabels_axes():
    nodes = [
        node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        node("Relu", ["t"], ["r"]),
        node("Transpose", ["r"], ["y"], perm=[0, 3, 1, 2]),
    ]
    model = make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"])
    check(model, "transpose", scale=2.0)
    assert convert(model).op_counts == {"RELU": 1}


def test_transpose_read_twice_is_moved_once():
    nodes = [node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), node("Relu", ["t"], ["y"]), node("Exp", ["t"], ["z"])]
    model = make_model(nodes, {"x": [1, 3, 4, 5]}, ["y", "z"])
    check(model, "transpose")
    assert convert(model).op_counts == {"TRANSPOSE": 1, "RELU": 1, "EXP": 1}


def test_layer_norm_scale_of_ones_and_no_bias_is_the_plain_standardization():
    inits = {"s": np.ones(16, np.float32)}
    model = make_model([node("LayerNormalization", ["x", "s"], ["y"])], {"x": [4, 16]}, ["y"], inits)
    check(model, "layernorm")
    assert convert(model).op_counts == {"MEAN": 2, "SUB": 1, "MUL": 2, "ADD": 1, "RSQRT": 1}


def test_layer_norm_with_scale_and_bias_computed_in_the_graph():
    nodes = [
        node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        node("Sigmoid", ["s"], ["gate"]),
        node("LayerNormalization", ["t", "gate", "b"], ["y"], axis=-1),
    ]
    check(make_model(nodes, {"x": [1, 6, 4, 5], "s": [6], "b": [6]}, ["y"]), "layernorm", scale=2.0)


def test_layer_norm_as_the_legacy_exporter_writes_it():
    """Before opset 17: ReduceMean, Sub, Pow 2, ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β — each op lowered."""
    inits = {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32)}
    inits |= {"s": _weights(16, offset=1.0), "b": _weights(16)}
    nodes = [
        node("ReduceMean", ["x"], ["mean"], axes=[-1]),
        node("Sub", ["x", "mean"], ["d"]),
        node("Pow", ["d", "two"], ["d2"]),
        node("ReduceMean", ["d2"], ["var"], axes=[-1]),
        node("Add", ["var", "eps"], ["ve"]),
        node("Sqrt", ["ve"], ["std"]),
        node("Div", ["d", "std"], ["n"]),
        node("Mul", ["n", "s"], ["g"]),
        node("Add", ["g", "b"], ["y"]),
    ]
    model = make_model(nodes, {"x": [2, 5, 16]}, ["y"], inits, opset=11)
    check(model, "layernorm", scale=3.0)
    assert convert(model).op_counts == {"MEAN": 2, "SUB": 1, "MUL": 2, "ADD": 2, "SQRT": 1, "DIV": 1}


def test_layer_norm_mean_output_is_rejected():
    inits = {"s": np.ones(4, np.float32)}
    nodes = [node("LayerNormalization", ["x", "s"], ["y", "m"], name="ln")]
    model = make_model(nodes, {"x": [2, 4]}, ["y", "m"], inits)
    with pytest.raises(UsageError, match=r"LayerNormalization node 'ln'.*Mean / InvStdDev"):
        convert(model)


# --- InstanceNormalization / GroupNormalization
@pytest.mark.parametrize("shape", [[1, 6, 5, 4], [2, 3, 7], [2, 4, 3, 3]])
def test_instance_norm(shape):
    c = shape[1]
    inits = {"s": _weights(c, offset=1.0), "b": _weights(c)}
    nodes = [node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)]
    model = make_model(nodes, {"x": shape}, ["y"], inits)
    check(model, "instancenorm", scale=2.0)
    assert "TRANSPOSE" not in convert(model).op_counts


@pytest.mark.parametrize(
    ("shape", "groups", "opset"),
    [
        ([1, 8, 4, 5], 2, 21),
        ([1, 8, 4, 5], 4, 18),
        ([2, 6, 3, 3], 3, 21),
        ([2, 6, 7], 2, 21),
        ([2, 6, 7], 3, 18),
        ([1, 4, 3, 3], 4, 21),  # one channel per group
        ([1, 4, 3, 3], 1, 18),  # one group: LayerNorm over C, H, W
        ([3, 8], 2, 21),  # no spatial axes
        ([1, 4, 2, 3, 3], 2, 21),  # 3-D maps
    ],
)
def test_group_norm(shape, groups, opset):
    per = shape[1] if opset >= 21 else groups
    inits = {"s": _weights(per, offset=1.0), "b": _weights(per)}
    nodes = [node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=1e-5)]
    model = _model_shaped_like_input(nodes, shape, inits, opset)
    check(model, "groupnorm", scale=2.0)
    assert "TRANSPOSE" not in convert(model).op_counts


@pytest.mark.parametrize(("shape", "groups"), [([1, 8, 4, 5], 2), ([2, 6, 3, 3], 3), ([2, 6, 7], 2), ([1, 4, 3, 3], 4)])
def test_group_norm_as_pytorch_exports_it(shape, groups):
    """Reshape [N, G, -1] → InstanceNormalization → Reshape back → Mul γ → Add β, lowered without TRANSPOSE."""
    c, spatial = shape[1], [1] * (len(shape) - 2)
    inits = {
        "flat": np.array([0, groups, -1], np.int64),
        "back": np.array(shape, np.int64),
        "s": _weights(groups, offset=1.0),
        "b": _weights(groups),
        "gamma": _weights(c, *spatial, offset=1.0),
        "beta": _weights(c, *spatial),
    }
    nodes = [
        node("Reshape", ["x", "flat"], ["r"]),
        node("InstanceNormalization", ["r", "s", "b"], ["n"], epsilon=1e-5),
        node("Reshape", ["n", "back"], ["g"]),
        node("Mul", ["g", "gamma"], ["m"]),
        node("Add", ["m", "beta"], ["y"]),
    ]
    model = make_model(nodes, {"x": shape}, ["y"], inits)
    check(model, "groupnorm", scale=2.0)
    counts = convert(model).op_counts
    assert "TRANSPOSE" not in counts and counts["RESHAPE"] == 2 and counts["MEAN"] == 2


# --- GELU and Erf
def _gelu_pattern(order: str) -> list:
    """The Erf form of GELU as the exporters write it; ``order`` puts the 0.5 and the x multiplications around."""
    start = node("Div", ["x", "sqrt2"], ["d"]) if order != "mul-first" else node("Mul", ["inv_sqrt2", "x"], ["d"])
    nodes = [start, node("Erf", ["d"], ["e"]), node("Add", ["e", "one"], ["a"])]
    if order == "half-last":
        nodes += [node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"], ["y"])]
    else:
        nodes += [node("Mul", ["a", "half"], ["m"]), node("Mul", ["m", "x"], ["y"])]
    return nodes


GELU_CONSTANTS = {
    "sqrt2": np.array(math.sqrt(2), np.float32),
    "inv_sqrt2": np.array(1 / math.sqrt(2), np.float32),
    "one": np.array(1.0, np.float32),
    "half": np.array(0.5, np.float32),
}


@pytest.mark.parametrize("order", ["half-last", "half-first", "mul-first"])
@pytest.mark.parametrize("shape", [[2, 9], [1, 5, 12], [1, 4, 3, 5]])
def test_gelu_pattern_becomes_one_gelu(order, shape):
    model = make_model(_gelu_pattern(order), {"x": shape}, ["y"], GELU_CONSTANTS)
    check(model, "gelu", scale=3.0)
    assert convert(model).op_counts == {"GELU": 1}


def test_gelu_pattern_with_a_second_reader_is_lowered_op_by_op():
    nodes = [*_gelu_pattern("half-last"), node("Add", ["y", "e"], ["z"])]  # the Erf output is read twice
    model = make_model(nodes, {"x": [2, 9]}, ["z"], GELU_CONSTANTS)
    check(model, "gelu", scale=3.0)
    assert "GELU" not in convert(model).op_counts


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [[2, 9], [1, 4, 3, 5]])
def test_gelu_op(approximate, shape):
    model = make_model([node("Gelu", ["x"], ["y"], approximate=approximate)], {"x": shape}, ["y"], opset=20)
    check(model, "gelu", scale=3.0)
    assert convert(model).op_counts == {"GELU": 1}


@pytest.mark.parametrize("shape", [[3, 40], [1, 4, 3, 5]])
def test_erf(shape):
    check(make_model([node("Erf", ["x"], ["y"])], {"x": shape}, ["y"]), "erf", scale=2.0)
    feeds = {"x": np.linspace(-4, 4, int(np.prod(shape)), dtype=np.float32).reshape(shape)}
    check(make_model([node("Erf", ["x"], ["y"])], {"x": shape}, ["y"]), "erf", feeds=feeds)


# --- HardSwish written as HardSigmoid · x
@pytest.mark.parametrize("swap", [False, True])
def test_hard_sigmoid_times_input_is_one_hard_swish(swap):
    mul = node("Mul", ["h", "x"] if swap else ["x", "h"], ["y"])
    model = make_model([node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5), mul], {"x": [1, 4, 3, 5]}, ["y"])
    check(model, "hardswish", scale=4.0)
    assert convert(model).op_counts == {"HARD_SWISH": 1}


def test_hard_sigmoid_of_other_alpha_times_input_stays_apart():
    nodes = [node("HardSigmoid", ["x"], ["h"]), node("Mul", ["x", "h"], ["y"])]
    model = make_model(nodes, {"x": [1, 4, 3, 5]}, ["y"])
    check(model, "hardswish", scale=4.0)
    assert "HARD_SWISH" not in convert(model).op_counts


# --- PRelu
@pytest.mark.parametrize(
    ("shape", "slope_shape"),
    [([1, 6, 4, 5], [6, 1, 1]), ([1, 6, 4, 5], [1, 6, 1, 1]), ([1, 6, 4, 5], [1]), ([2, 7], [7]), ([2, 3, 7], [7])],
)
def test_prelu(shape, slope_shape):
    inits = {"slope": RNG.uniform(0.05, 0.5, size=slope_shape).astype(np.float32)}
    model = make_model([node("PRelu", ["x", "slope"], ["y"])], {"x": shape}, ["y"], inits)
    check(model, "prelu", scale=3.0)
    assert "TRANSPOSE" not in convert(model).op_counts


# --- Softmax / LogSoftmax
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("shape", "axis"), [([2, 9], -1), ([1, 5, 3, 4], 1), ([1, 5, 3, 4], 2), ([2, 3, 4], 1)])
def test_softmax_any_axis(op, shape, axis):
    check(make_model([node(op, ["x"], ["y"], axis=axis)], {"x": shape}, ["y"]), "softmax", scale=3.0)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("shape", "axis"), [([1, 5, 3, 4], 1), ([2, 5, 3, 4], 2), ([2, 3, 4], 1), ([2, 9], 0)])
def test_softmax_of_opset_11_flattens_from_its_axis(op, shape, axis):
    check(make_model([node(op, ["x"], ["y"], axis=axis)], {"x": shape}, ["y"], opset=11), "softmax", scale=3.0)


def test_channel_softmax_of_an_nchw_map_needs_no_transpose():
    model = make_model([node("LogSoftmax", ["x"], ["y"], axis=1)], {"x": [1, 5, 3, 4]}, ["y"])
    assert convert(model).op_counts == {"LOG_SOFTMAX": 1}


# --- unary math and Pow
@pytest.mark.parametrize("op", ["Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal"])
@pytest.mark.parametrize("shape", [[2, 9], [1, 3, 4, 5]])
def test_unary_math(op, shape):
    feeds = _positive(shape) if op in ("Sqrt", "Log", "Reciprocal") else None
    check(make_model([node(op, ["x"], ["y"])], {"x": shape}, ["y"]), "math", feeds=feeds)


@pytest.mark.parametrize("op", ["Sign", "Ceil", "Round", "Sin", "Cos"])
def test_rounding_and_trigonometry(op):
    values = np.concatenate([np.arange(-3, 3.5, 0.5), RNG.uniform(-4, 4, size=27)]).astype(np.float32)
    feeds = {"x": values.reshape(1, 2, 4, 5)}  # exact halves: ONNX and TFLite both round half to even
    check(make_model([node(op, ["x"], ["y"])], {"x": [1, 2, 4, 5]}, ["y"]), "math", feeds=feeds)


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize(
    "shapes", [[[1, 3, 4, 5]], [[1, 3, 4, 5], [1, 3, 4, 5]], [[1, 3, 4, 5], [3, 1, 1], [1, 1, 1, 5]], [[2, 6], [6]]]
)
def test_variadic(op, shapes):
    inputs = {f"x{i}": shape for i, shape in enumerate(shapes)}
    nodes = [node(op, list(inputs), ["v"]), node("Relu", ["v"], ["y"])]
    check(make_model(nodes, inputs, ["y"]), "variadic")


def test_variadic_with_a_constant():
    nodes = [node("Max", ["x", "c", "x2"], ["y"])]
    inits = {"c": np.array([0.5], np.float32)}
    check(make_model(nodes, {"x": [1, 3, 4, 5], "x2": [1, 3, 4, 5]}, ["y"], inits), "variadic")


@pytest.mark.parametrize("op", ["Elu", "Softplus", "Mish"])
@pytest.mark.parametrize("shape", [[2, 9], [1, 3, 4, 5]])
def test_smooth_activations(op, shape):
    check(make_model([node(op, ["x"], ["y"])], {"x": shape}, ["y"]), "math", scale=4.0)
    feeds = {"x": np.linspace(-100, 100, int(np.prod(shape)), dtype=np.float32).reshape(shape)}  # exp overflows
    check(make_model([node(op, ["x"], ["y"])], {"x": shape}, ["y"]), "math", feeds=feeds)


@pytest.mark.parametrize(
    ("exponent", "ops"),
    [
        (2.0, {"MUL": 1}),
        (3.0, {"MUL": 2}),
        (0.5, {"SQRT": 1}),
        (-0.5, {"RSQRT": 1}),
        (-1.0, {"DIV": 1}),
        (1.5, {"POW": 1}),
        (1.0, {}),
    ],
)
@pytest.mark.parametrize("shape", [[2, 9], [1, 3, 4, 5]])
def test_pow_by_a_constant(exponent, ops, shape):
    inits = {"e": np.array(exponent, np.float32)}
    nodes = [node("Pow", ["x", "e"], ["p"]), node("Relu", ["p"], ["y"])]  # a Relu keeps Pow 1 an op to compare
    model = make_model(nodes, {"x": shape}, ["y"], inits)
    check(model, "pow", feeds=_positive(shape, 0.2, 2.0))
    assert convert(model).op_counts == {**ops, "RELU": 1}


def test_pow_by_a_tensor():
    model = make_model([node("Pow", ["x", "e"], ["y"])], {"x": [1, 3, 4, 5], "e": [1, 3, 1, 1]}, ["y"])
    feeds = {**_positive([1, 3, 4, 5], 0.2, 2.0), "e": RNG.uniform(-2, 2, size=(1, 3, 1, 1)).astype(np.float32)}
    check(model, "pow", feeds=feeds)


# --- reductions
REDUCTIONS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2"]
REDUCTIONS += ["ReduceSumSquare"]
AXES = [([2, 3], 1), ([1], 0), ([1], 1), ([1, 3], 0), ([-1], 0), ([0, 1, 2, 3], 0)]


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize(("axes", "keep"), AXES, ids=[f"{a}-k{k}" for a, k in AXES])
@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_any_axes(op, axes, keep, opset):
    shape = [2, 4, 3, 5]
    if opset >= 18 or op == "ReduceSum":
        model = make_model(
            [node(op, ["x", "axes"], ["y"], keepdims=keep)],
            {"x": shape},
            ["y"],
            {"axes": np.array(axes, np.int64)},
            opset=opset,
        )
    else:
        model = make_model([node(op, ["x"], ["y"], axes=axes, keepdims=keep)], {"x": shape}, ["y"], opset=opset)
    feeds = {"x": RNG.uniform(0.5, 1.5, size=shape).astype(np.float32)} if op == "ReduceProd" else None
    check(model, "reduce", feeds=feeds)
    # Only dropping W of an NHWC map leaves (N, H, C) in TFLite for an ONNX (N, C, H): one TRANSPOSE puts it back.
    assert convert(model).op_counts.get("TRANSPOSE", 0) == (1 if (axes, keep) == ([-1], 0) else 0)


@pytest.mark.parametrize("op", ["ReduceL2", "ReduceMin"])
@pytest.mark.parametrize("shape", [[3, 7], [2, 3, 7]])
def test_reduce_lower_ranks(op, shape):
    model = make_model(
        [node(op, ["x", "axes"], ["y"], keepdims=1)], {"x": shape}, ["y"], {"axes": np.array([-1], np.int64)}
    )
    check(model, "reduce")


def test_attention_keeps_its_4d_values_in_onnx_order():
    """ViT attention: 4-D (N, heads, tokens, dim) values stay in ONNX order; only the real permutations move data."""
    inits = {
        "wqkv": _weights(8, 24),
        "split": np.array([1, 4, 3, 2, 4], np.int64),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "two": np.array([2], np.int64),
        "three": np.array([3], np.int64),
        "scale": np.array(0.5, np.float32),
        "merge": np.array([1, 4, 8], np.int64),
        "wo": _weights(8, 8),
    }
    nodes = [
        node("LayerNormalization", ["x", "ln_s"], ["n"], axis=-1),
        node("MatMul", ["n", "wqkv"], ["qkv"]),
        node("Reshape", ["qkv", "split"], ["r"]),
        node("Transpose", ["r"], ["p"], perm=[2, 0, 3, 1, 4]),
    ]
    for i, (start, stop) in enumerate((("zero", "one"), ("one", "two"), ("two", "three"))):
        nodes += [node("Slice", ["p", start, stop, "zero"], [f"s{i}"]), node("Squeeze", [f"s{i}", "zero"], [f"h{i}"])]
    nodes += [
        node("Transpose", ["h1"], ["kt"], perm=[0, 1, 3, 2]),
        node("MatMul", ["h0", "kt"], ["logits"]),
        node("Mul", ["logits", "scale"], ["scaled"]),
        node("Softmax", ["scaled"], ["attn"], axis=-1),
        node("MatMul", ["attn", "h2"], ["o"]),
        node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        node("Reshape", ["ot", "merge"], ["m"]),
        node("MatMul", ["m", "wo"], ["y"]),
    ]
    inits["ln_s"] = _weights(8, offset=1.0)
    model = make_model(nodes, {"x": [1, 4, 8]}, ["y"], inits)
    check(model, "attention", scale=2.0)
    # The qkv permutation (read three times) and the heads merged back; kᵀ is read with BATCH_MATMUL's adj_y.
    assert convert(model).op_counts["TRANSPOSE"] == 2


# --- int8: a ViT-like block (patch embedding, LayerNorm, MLP with GELU) through ai-edge-quantizer
def _vit_block() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    channels, hidden = 8, 16
    inits = {
        "w": (rng.standard_normal((channels, 3, 4, 4)) * 0.3).astype(np.float32),
        "shape": np.array([1, channels, 4], np.int64),
        "s": (1 + 0.2 * rng.standard_normal(channels)).astype(np.float32),
        "b": (0.2 * rng.standard_normal(channels)).astype(np.float32),
        "w1": (rng.standard_normal((channels, hidden)) * 0.5).astype(np.float32),
        "w2": (rng.standard_normal((hidden, channels)) * 0.3).astype(np.float32),
        **GELU_CONSTANTS,
    }
    gelu = [node(n.op_type, [{"x": "h"}.get(i, i) for i in n.input], n.output) for n in _gelu_pattern("half-last")]
    nodes = [
        node("Conv", ["x", "w"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        node("Reshape", ["p", "shape"], ["r"]),
        node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        node("LayerNormalization", ["t", "s", "b"], ["n"], axis=-1, name="ln"),
        node("MatMul", ["n", "w1"], ["h"]),
        *[n for n in gelu if n.output[0] != "y"],
        node("Mul", ["m", "half"], ["g"]),
        node("MatMul", ["g", "w2"], ["y"]),
    ]
    return make_model(nodes, {"x": [1, 3, 8, 8]}, ["y"], inits)


def _int8_cosine(model: onnx.ModelProto, data: bytes, scopes: tuple[str, ...] = ()) -> tuple[float, dict[str, int]]:
    """Cosine of the int8 .tflite's outputs with ONNX Runtime's fp32 ones on random inputs, and its op counts."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.lowering.tflite.quantize import quantize_tflite
    from tests.lowering.tflite_check import run_ort

    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((128, 3, 8, 8)).astype(np.float32)
    quantized = quantize_tflite(data, calibration, "NHWC", keep_float_scopes=scopes)
    interpreter = Interpreter(model_content=quantized.data, num_threads=1)
    interpreter.allocate_tensors()
    detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    actual, expected = [], []
    for sample in rng.standard_normal((16, 1, 3, 8, 8)).astype(np.float32):
        q = np.round(sample.transpose(0, 2, 3, 1) / quantized.input_scale) + quantized.input_zero_point
        interpreter.set_tensor(detail_in["index"], np.clip(q, -128, 127).astype(np.int8))
        interpreter.invoke()
        out = interpreter.get_tensor(detail_out["index"]).astype(np.float32) - quantized.output_zero_point
        actual.append(quantized.output_scale * out.ravel())
        expected.append(run_ort(model, {"x": sample})["y"].ravel())
    a, e = np.concatenate(actual), np.concatenate(expected)
    return float(a @ e / np.linalg.norm(a) / np.linalg.norm(e)), quantized.op_counts


def test_layer_norm_and_gelu_quantize_to_int8_and_agree_with_fp32():
    """Every op of the LayerNorm decomposition and GELU has an int8 kernel; the LayerNorm is where int8 loses most
    (per-tensor scales for the variance and its RSQRT): cosine 0.97 all int8, 0.99 with the LayerNorm kept float."""
    pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")
    from edgecnn.lowering.tflite.quantize import node_scope

    model = _vit_block()
    lowered = convert(model)
    assert {"GELU": 1, "RSQRT": 1, "MEAN": 2}.items() <= lowered.op_counts.items()
    cosine, counts = _int8_cosine(model, lowered.data)
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(counts)  # full integer: nothing stayed in float
    float_ln, counts = _int8_cosine(model, lowered.data, (node_scope(model, ["ln"]),))
    assert counts["DEQUANTIZE"] == counts["QUANTIZE"] == 1  # around the LayerNorm ops only
    print(f"\nLayerNorm + GELU block vs fp32 ONNX Runtime: int8 cosine {cosine:.4f}, LayerNorm in float {float_ln:.4f}")
    assert cosine >= 0.95, cosine
    assert float_ln >= 0.98 and float_ln > cosine, float_ln


# --- real exports: what PyTorch's dynamo exporter writes for these layers
def _export(module, shape: tuple[int, ...], opset: int, path) -> onnx.ModelProto:
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    raw = path.with_suffix(".raw.onnx")
    export_onnx(module.eval(), shape, raw, opset=opset)
    simplify(raw, path)
    return onnx.load(str(path))


@pytest.mark.slow
@pytest.mark.parametrize("opset", [18, 20])  # GELU: the Erf pattern at 18, the Gelu op at 20
def test_pytorch_layers_export_and_lower(opset, tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Layers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.group = nn.GroupNorm(2, 8)
            self.prelu = nn.PReLU(8)
            self.instance = nn.InstanceNorm2d(8, affine=True)
            self.norm = nn.LayerNorm(8)
            self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8), nn.Mish())
            for layer in (self.group, self.instance, self.norm):
                nn.init.normal_(layer.weight, 1.0, 0.3)
                nn.init.normal_(layer.bias, 0.0, 0.3)

        def forward(self, x):
            x = self.instance(self.prelu(self.group(self.conv(x))))
            return x + self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)

    model = _export(Layers(), (1, 3, 6, 7), opset, tmp_path / "layers.onnx")
    check(model, f"pytorch-opset{opset}", scale=2.0)
    counts = convert(model).op_counts
    assert counts["GELU"] == 1 and counts["PRELU"] == 1 and counts["RSQRT"] == 3
    assert counts.get("TRANSPOSE", 0) <= 2  # the Linear layers want (N, H, W, C) in ONNX order: one each way


@pytest.mark.slow
def test_timm_convnext_lowers_without_transposes(tmp_path):
    timm = pytest.importorskip("timm")
    import torch

    torch.manual_seed(0)
    model = _export(timm.create_model("convnext_atto", num_classes=10), (1, 3, 32, 32), 20, tmp_path / "cnx.onnx")
    check(model, "timm-convnext", scale=1.0)
    counts = convert(model).op_counts
    assert counts["RSQRT"] == 17 and counts["GELU"] == 12  # every LayerNorm and GELU of the network
    assert "TRANSPOSE" not in counts
