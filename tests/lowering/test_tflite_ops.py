"""Each lowered ONNX op against ONNX Runtime, on small graphs built with onnx.helper."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import OpResolverType
from onnx import helper

from edgecnn.errors import UsageError
from edgecnn.lowering.tflite import GraphBuilder, convert, lower, unsupported_nodes
from tests.lowering.tflite_check import check, make_model, run_tflite

node = helper.make_node
RNG = np.random.default_rng(1234)


def _weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


def _activation(kind: str | None, src: str, dst: str, inits: dict) -> list:
    if kind is None:
        return []
    if kind == "relu":
        return [node("Relu", [src], [dst])]
    low, high = {"relu6": (0.0, 6.0), "clip_-1_1": (-1.0, 1.0), "clip_0_inf": (0.0, None)}[kind]
    inits[f"{dst}_lo"] = np.array(low, np.float32)
    names = [src, f"{dst}_lo"]
    if high is not None:
        inits[f"{dst}_hi"] = np.array(high, np.float32)
        names.append(f"{dst}_hi")
    return [node("Clip", names, [dst])]


# --- Conv
def _pads(kind: str, k: int) -> dict:
    half = k // 2
    return {
        "0": {"pads": [0, 0, 0, 0]},
        "1": {"pads": [half, half, half, half]},
        "asym": {"pads": [half, 0, half + 1, 1]},
        "same_upper": {"auto_pad": "SAME_UPPER"},
        "same_lower": {"auto_pad": "SAME_LOWER"},
        "valid": {"auto_pad": "VALID"},
    }[kind]


def _conv_model(c_in, h, w, c_out, k, stride, pads, dilation, groups, act, bias=True):
    inits = {"w": _weights(c_out, c_in // groups, k, k)}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = _weights(c_out)
        inputs.append("b")
    attrs = {"kernel_shape": [k, k], "strides": [stride, stride], "dilations": [dilation, dilation], "group": groups}
    nodes = [node("Conv", inputs, ["y"], **attrs, **pads)]
    nodes += _activation(act, "y", "z", inits)
    return make_model(nodes, {"x": [1, c_in, h, w]}, ["z" if act else "y"], inits)


CONV_CASES = []
for i, (k, stride, grouping) in enumerate(itertools.product((1, 3, 5), (1, 2), ("1", "dw", "dw2", "g2"))):
    rng = np.random.default_rng(i)
    c_in = int(rng.choice([4, 6, 8]))
    c_out = {"1": int(rng.integers(3, 9)), "dw": c_in, "dw2": 2 * c_in, "g2": 2 * int(rng.integers(1, 5))}[grouping]
    groups = {"1": 1, "dw": c_in, "dw2": c_in, "g2": 2}[grouping]
    pads = ("0", "1", "asym", "same_upper", "same_lower", "valid")[i % 6]
    dilation = (1, 1, 2)[i % 3]
    act = (None, "relu", "relu6", None, "clip_-1_1", "clip_0_inf")[i % 6]
    h, w = (int(v) for v in rng.integers(9, 16, size=2))
    CONV_CASES.append(
        pytest.param(
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pads,
            dilation,
            groups,
            act,
            id=f"k{k}s{stride}-{grouping}-p{pads}-d{dilation}-{act}",
        )
    )
CONV_CASES += [
    pytest.param(3, 32, 32, 8, 7, 2, "1", 1, 1, "relu", id="resnet-stem"),
    pytest.param(8, 16, 16, 8, 3, 2, "1", 1, 8, "relu6", id="dw-s2-even-pad-op"),
    pytest.param(8, 15, 15, 8, 3, 2, "1", 1, 8, "relu6", id="dw-s2-odd-same"),
    pytest.param(6, 11, 9, 12, 3, 1, "asym", 2, 6, None, id="dw2-dilated-asym"),
    pytest.param(8, 10, 10, 4, 3, 1, "1", 1, 4, "relu", id="g4"),
]


@pytest.mark.parametrize(("c_in", "h", "w", "c_out", "k", "stride", "pads", "dilation", "groups", "act"), CONV_CASES)
def test_conv(c_in, h, w, c_out, k, stride, pads, dilation, groups, act):
    model = _conv_model(c_in, h, w, c_out, k, stride, _pads(pads, k), dilation, groups, act)
    check(model, "conv", scale=3.0)


def test_conv_fuses_its_only_activation_and_picks_the_op():
    dw = convert(_conv_model(8, 12, 12, 16, 3, 1, _pads("1", 3), 1, 8, "relu6"))
    assert dw.op_counts == {"DEPTHWISE_CONV_2D": 1}  # SAME padding, Clip(0,6) fused
    plain = convert(_conv_model(4, 12, 12, 6, 3, 2, _pads("1", 3), 1, 1, "relu"))
    assert plain.op_counts == {"PAD": 1, "CONV_2D": 1}  # ONNX pads 1,1 at stride 2 on even input are not TF's SAME
    grouped = convert(_conv_model(8, 12, 12, 4, 3, 1, _pads("1", 3), 1, 2, None))
    assert grouped.op_counts == {"SPLIT": 1, "CONV_2D": 2, "CONCATENATION": 1}


def test_conv_without_bias_and_with_a_second_consumer_is_not_fused():
    inits = {"w": _weights(5, 4, 3, 3)}
    nodes = [node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), node("Relu", ["y"], ["z"])]
    model = make_model(nodes, {"x": [1, 4, 8, 8]}, ["y", "z"], inits)
    check(model, "conv")
    assert convert(model).op_counts == {"CONV_2D": 1, "RELU": 1}


def test_dilated_depthwise_asks_for_op_version_2():
    data = lower(_conv_model(4, 12, 12, 4, 3, 1, _pads("1", 3), 2, 4, None))
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    versions = {code.builtinCode: code.version for code in model.operatorCodes}
    assert versions == {schema.BuiltinOperator.PAD: 1, schema.BuiltinOperator.DEPTHWISE_CONV_2D: 2}


# --- Gemm / MatMul and the flatten order
@pytest.mark.parametrize(
    ("trans_b", "alpha", "beta", "c_shape", "act"),
    [(1, 1.0, 1.0, [7], None), (0, 0.5, 2.0, [1, 7], "relu"), (1, 1.0, 1.0, None, "relu6"), (0, 1.0, 0.5, [], None)],
)
def test_gemm(trans_b, alpha, beta, c_shape, act):
    inits = {"b": _weights(7, 12) if trans_b else _weights(12, 7)}
    inputs = ["x", "b"]
    if c_shape is not None:
        inits["c"] = _weights(*c_shape)
        inputs.append("c")
    nodes = [node("Gemm", inputs, ["y"], transB=trans_b, alpha=alpha, beta=beta)]
    nodes += _activation(act, "y", "z", inits)
    check(make_model(nodes, {"x": [3, 12]}, ["z" if act else "y"], inits), "gemm")


@pytest.mark.parametrize("shape", [[2, 12], [2, 3, 12], [1, 2, 3, 12]])
def test_matmul(shape):
    model = make_model([node("MatMul", ["x", "b"], ["y"])], {"x": shape}, ["y"], {"b": _weights(12, 5)})
    check(model, "gemm")


def _conv_then(flatten: list, extra_inits: dict | None = None, hw: int = 5):
    inits = {"w": _weights(6, 3, 3, 3), "fc": _weights(10, 6 * hw * hw), **(extra_inits or {})}
    nodes = [node("Conv", ["x", "w"], ["f"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), *flatten]
    nodes.append(node("Gemm", ["flat", "fc"], ["logits"], transB=1))
    return make_model(nodes, {"x": [1, 3, hw, hw]}, ["logits"], inits)


@pytest.mark.parametrize(
    "flatten",
    [
        [node("Flatten", ["f"], ["flat"], axis=1)],
        [node("Reshape", ["f", "shape"], ["flat"])],
        [node("Relu", ["f"], ["r"]), node("Flatten", ["r"], ["flat"])],
    ],
    ids=["flatten", "reshape", "relu-flatten"],
)
def test_flatten_before_gemm_keeps_the_onnx_feature_order(flatten):
    reshape = any(n.op_type == "Reshape" for n in flatten)
    model = _conv_then(flatten, {"shape": np.array([1, -1], np.int64)} if reshape else None)
    check(model, "flatten-gemm", scale=2.0)
    assert convert(model).op_counts.get("TRANSPOSE") == 1  # NHWC -> NCHW before the RESHAPE


def test_flatten_of_a_1x1_map_needs_no_transpose():
    model = _conv_then([node("GlobalAveragePool", ["f"], ["g"]), node("Flatten", ["g"], ["flat"])], hw=1)
    check(model, "flatten-gemm")
    assert "TRANSPOSE" not in convert(model).op_counts


# --- elementwise
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(
    "const_shape", [[1, 6, 1, 1], [6, 1, 1], [1], [], [7], [1, 1, 5, 7], [1, 6, 5, 7]], ids=lambda s: f"c{s}"
)
def test_binary_with_a_constant(op, const_shape):
    value = RNG.uniform(0.5, 2.0, size=const_shape).astype(np.float32)
    nodes = [node(op, ["x", "c"], ["y"])]
    check(make_model(nodes, {"x": [1, 6, 5, 7]}, ["y"], {"c": value}), "elementwise-binary")
    swapped = [node(op, ["c", "x"], ["y"])] if op != "Div" else nodes
    check(make_model(swapped, {"x": [1, 6, 5, 7]}, ["y"], {"c": value}), "elementwise-binary")


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize(
    ("a", "b"), [([1, 6, 5, 7], [1, 6, 1, 1]), ([1, 6, 5, 7], [7]), ([2, 6], [6]), ([1, 4, 6], [1, 4, 6])]
)
def test_binary_of_two_activations(op, a, b):
    check(make_model([node(op, ["a", "b"], ["y"])], {"a": a, "b": b}, ["y"]), "elementwise-binary")


def test_add_fuses_a_following_relu():
    model = make_model(
        [node("Add", ["a", "b"], ["s"]), node("Relu", ["s"], ["y"])], {"a": [1, 4, 3, 3], "b": [1, 4, 3, 3]}, ["y"]
    )
    check(model, "elementwise-binary")
    assert convert(model).op_counts == {"ADD": 1}


UNARY = [
    ("Relu", {}),
    ("Sigmoid", {}),
    ("Tanh", {}),
    ("HardSwish", {}),
    ("LeakyRelu", {"alpha": 0.1}),
    ("HardSigmoid", {}),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
]


@pytest.mark.parametrize(("op", "attrs"), UNARY, ids=[f"{op}{attrs or ''}" for op, attrs in UNARY])
@pytest.mark.parametrize("shape", [[1, 5, 4, 6], [2, 9]])
def test_unary(op, attrs, shape):
    check(make_model([node(op, ["x"], ["y"], **attrs)], {"x": shape}, ["y"]), "elementwise-unary", scale=4.0)


@pytest.mark.parametrize(
    "bounds", [(0, 6), (0, None), (-1, 1), (0, 1), (-0.5, 0.7), (None, 0.3), (-2, None), (None, None)]
)
def test_clip(bounds):
    inits, names = {}, ["x"]
    for key, bound in zip(("lo", "hi"), bounds, strict=True):
        if bound is None:
            names.append("")
        else:
            inits[key] = np.array(bound, np.float32)
            names.append(key)
    nodes = [node("Clip", names, ["c"]), node("Sigmoid", ["c"], ["y"])]  # a Sigmoid keeps Clip(None, None) an op
    check(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"], inits), "elementwise-unary", scale=4.0)


@pytest.mark.parametrize(
    ("shape", "axis"), [([2, 9], -1), ([1, 5, 3, 4], 1), ([1, 5, 3, 4], 2), ([1, 5, 3, 4], -1), ([2, 3, 4], 1)]
)
def test_softmax(shape, axis):
    check(make_model([node("Softmax", ["x"], ["y"], axis=axis)], {"x": shape}, ["y"]), "softmax", scale=3.0)


@pytest.mark.parametrize(
    ("shape", "relu", "dead", "ops"),
    [
        ([1, 6, 5, 5], False, False, {"DEPTHWISE_CONV_2D": 1}),  # a 1×1 depthwise conv: one int8 op XNNPACK takes
        ([1, 6, 5, 5], True, False, {"DEPTHWISE_CONV_2D": 1}),  # the Relu fused
        ([2, 6, 5, 5], True, False, {"DEPTHWISE_CONV_2D": 1}),
        # a gamma shrunk to ~0 beside a shift: the int32 bias (shift / (input scale × factor / 127)) would overflow
        ([1, 6, 5, 5], True, True, {"MUL": 1, "ADD": 1}),
        ([3, 6], False, False, {"MUL": 1, "ADD": 1}),
    ],
)
def test_batch_norm(shape, relu, dead, ops):
    c = shape[1]
    inits = {"s": _weights(c) + 1, "b": _weights(c), "m": _weights(c), "v": RNG.uniform(0.5, 2, c).astype(np.float32)}
    if dead:
        inits["s"][2], inits["b"][2] = 3e-6, 20.0
    nodes = [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"], epsilon=1e-3)]
    nodes += [node("Relu", ["n"], ["y"])] if relu else []
    model = make_model(nodes, {"x": shape}, ["y" if relu else "n"], inits)
    check(model, "batchnorm", scale=2.0)
    assert convert(model).op_counts == ops


# --- pools and reductions
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op):
    check(make_model([node(op, ["x"], ["y"])], {"x": [1, 6, 5, 7]}, ["y"]), "pool")


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceSum"])
@pytest.mark.parametrize(
    ("axes", "keep"), [([2, 3], 1), ([-1, -2], 1), ([2, 3], 0), ([1], 0), ([1, 3], 0), ([0, 1], 1)]
)
def test_reduce(op, axes, keep):
    model = make_model(
        [node(op, ["x", "axes"], ["y"], keepdims=keep)], {"x": [2, 6, 5, 7]}, ["y"], {"axes": np.array(axes, np.int64)}
    )
    check(model, "pool")


POOLS = [
    ({"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 4, 8, 8]),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [1, 4, 16, 16]),  # ResNet's stem pool
    ({"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}, [1, 4, 7, 9]),  # TF SAME
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [1, 4, 9, 9]),  # TF SAME (odd)
    ({"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]}, [1, 4, 9, 8]),  # asymmetric
    ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, [1, 4, 8, 8]),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, [1, 4, 10, 10]),
    ({"kernel_shape": [5, 5], "strides": [1, 1], "auto_pad": "SAME_UPPER"}, [1, 3, 6, 6]),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, [1, 3, 5, 5]),
    ({"kernel_shape": [7, 7]}, [2, 4, 7, 7]),  # over the whole input: an old network's head
]


@pytest.mark.parametrize(("attrs", "shape"), POOLS, ids=[str(i) for i in range(len(POOLS))])
def test_max_pool(attrs, shape):
    check(make_model([node("MaxPool", ["x"], ["y"], **attrs)], {"x": shape}, ["y"]), "pool")


NON_NEGATIVE = {  # a producer whose output is never negative, and its constants
    "relu": ([node("Relu", ["x"], ["r"])], {}),
    "clip-0-6": ([node("Clip", ["x", "low", "high"], ["r"])], {"low": np.float32(0), "high": np.float32(6)}),
}


@pytest.mark.parametrize("producer", NON_NEGATIVE)
@pytest.mark.parametrize(("attrs", "shape"), POOLS, ids=[str(i) for i in range(len(POOLS))])
def test_max_pool_of_a_relu_pads_with_zeros_which_xnnpack_takes(attrs, shape, producer, tmp_path):
    """The max over a window of a ReLU's (or a Clip from 0's) output is the same padded with zeros as with the
    lowest float, and a PAD is delegated where a PADV2 is not: the graph runs in one XNNPACK partition. The same
    pool of a value that may be negative keeps its PADV2."""
    from edgecnn.runtime.xnnpack import delegation

    nodes, constants = NON_NEGATIVE[producer]
    relu = make_model([*nodes, node("MaxPool", ["r"], ["y"], **attrs)], {"x": shape}, ["y"], constants)
    check(relu, "pool")
    plain = make_model([node("MaxPool", ["x"], ["y"], **attrs)], {"x": shape}, ["y"])
    ops, plain_ops = set(convert(relu).op_counts), set(convert(plain).op_counts)
    assert "PADV2" not in ops and ("PADV2" in plain_ops) == ("PAD" in ops), (ops, plain_ops)
    path = tmp_path / "relu_pool.tflite"
    path.write_bytes(convert(relu).data)
    found = delegation(path)
    assert found.undelegated == {} and found.partitions == 1, found


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(("attrs", "shape"), POOLS, ids=[str(i) for i in range(len(POOLS))])
def test_average_pool(attrs, shape, count_include_pad):
    model = make_model(
        [node("AveragePool", ["x"], ["y"], count_include_pad=count_include_pad, **attrs)], {"x": shape}, ["y"]
    )
    check(model, "pool")
    ops = convert(model).op_counts
    if "MEAN" in ops:  # a window over the whole input
        assert ops == {"MEAN": 1} and shape[2:] == attrs["kernel_shape"], ops
        return
    same = "AVERAGE_POOL_2D" in ops  # only where TF's SAME pads are left out of the count, as ONNX's are
    assert same == (ops.get("DEPTHWISE_CONV_2D", 0) == 0) and (not same or not count_include_pad), ops


# --- shape ops
@pytest.mark.parametrize(
    ("axis", "shapes"),
    [
        (1, [[1, 3, 4, 5], [1, 2, 4, 5]]),
        (-1, [[1, 3, 4, 5], [1, 3, 4, 2]]),
        (2, [[1, 3, 4, 5], [1, 3, 1, 5]]),
        (1, [[2, 3], [2, 4]]),
    ],
)
def test_concat_with_a_constant(axis, shapes):
    constant_shape = list(shapes[0])
    constant_shape[axis] = 2
    model = make_model(
        [node("Concat", ["a", "b", "c"], ["y"], axis=axis)],
        {"a": shapes[0], "b": shapes[1]},
        ["y"],
        {"c": _weights(*constant_shape)},
    )
    check(model, "concat")


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2], [1, 0, 2, 3], [3, 2, 1, 0]])
def test_transpose(perm):
    nodes = [node("Transpose", ["x"], ["t"], perm=perm), node("Relu", ["t"], ["y"])]
    check(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"]), "transpose")


def test_transpose_to_3d_then_matmul():
    nodes = [
        node("Reshape", ["x", "s"], ["r"]),
        node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        node("MatMul", ["t", "w"], ["y"]),
    ]
    inits = {"s": np.array([1, 6, 20], np.int64), "w": _weights(6, 3)}
    check(make_model(nodes, {"x": [1, 6, 4, 5]}, ["y"], inits), "transpose")


@pytest.mark.parametrize(
    ("target", "then"), [([1, 3, 8, 5], "Relu"), ([1, 12, 5, 2], "Sigmoid"), ([2, 60], "Relu"), ([1, 6, 20], "Relu")]
)
def test_reshape_4d(target, then):
    nodes = [node("Reshape", ["x", "s"], ["r"]), node(then, ["r"], ["y"])]
    check(make_model(nodes, {"x": [1, 6, 4, 5]}, ["y"], {"s": np.array(target, np.int64)}), "reshape")


def test_squeeze_unsqueeze():
    nodes = [
        node("GlobalAveragePool", ["x"], ["g"]),
        node("Squeeze", ["g", "a23"], ["s"]),
        node("Unsqueeze", ["s", "a1"], ["u"]),
    ]
    inits = {"a23": np.array([2, 3], np.int64), "a1": np.array([1], np.int64)}
    check(make_model(nodes, {"x": [1, 6, 4, 5]}, ["u"], inits), "reshape")


@pytest.mark.parametrize(
    ("mode", "pads", "value", "axes"),
    [
        ("constant", [0, 0, 1, 2, 0, 0, 2, 1], None, None),
        ("constant", [0, 1, 1, 0, 0, 2, 0, 1], 1.5, None),
        ("reflect", [0, 0, 2, 1, 0, 0, 1, 2], None, None),
        ("constant", [1, 2, 0, 3], 0.0, [2, -1]),
    ],
)
def test_pad(mode, pads, value, axes):
    inits = {"p": np.array(pads, np.int64)}
    names = ["x", "p"]
    if value is not None:
        inits["v"] = np.array(value, np.float32)
    names.append("v" if value is not None else "")
    if axes is not None:
        inits["a"] = np.array(axes, np.int64)
        names.append("a")
    check(make_model([node("Pad", names, ["y"], mode=mode)], {"x": [1, 3, 5, 6]}, ["y"], inits), "pad")


# --- graph level
def test_nchw_io_adds_a_leading_transpose():
    model = _conv_model(3, 8, 8, 4, 3, 1, _pads("1", 3), 1, 1, "relu")
    check(model, "conv", nchw_io=True)
    lowered = convert(model, nchw_io=True)
    assert lowered.inputs == {"x": (1, 3, 8, 8)} and lowered.outputs == {"z": (1, 3 + 1, 8, 8)}
    assert lowered.op_counts == {"TRANSPOSE": 2, "CONV_2D": 1}  # input NCHW -> NHWC, output NHWC -> NCHW


def test_signature_buffers_and_schema_fields():
    data = lower(_conv_model(3, 8, 8, 4, 3, 1, _pads("1", 3), 1, 1, "relu"))
    assert data[4:8] == b"TFL3"
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    assert model.version == 3 and len(model.subgraphs) == 1
    (signature,) = model.signatureDefs
    assert signature.signatureKey == b"serving_default" or signature.signatureKey == "serving_default"
    assert len(model.buffers[0].data if model.buffers[0].data is not None else []) == 0  # the empty sentinel
    packed = schema.Model.GetRootAs(data, 0)
    for i in range(1, packed.BuffersLength()):
        buffer = packed.Buffers(i)
        if buffer.DataLength():
            assert buffer._tab.Vector(buffer._tab.Offset(4)) % 16 == 0  # constant data 16-byte aligned


def test_builder_deduplicates_operator_codes():
    builder = GraphBuilder()
    x = builder.add_tensor("x", [1, 4])
    y = builder.add_tensor("y", [1, 4])
    z = builder.add_tensor("z", [1, 4])
    builder.add_operator(schema.BuiltinOperator.RELU, [x], [y])
    builder.add_operator(schema.BuiltinOperator.RELU, [y], [z])
    builder.set_io([x], [z])
    builder.set_signature({"x": x}, {"z": z})
    assert len(builder.to_model().operatorCodes) == 1
    out = run_tflite(builder.to_bytes(), {"x": np.array([[-1, 0, 2, -3]], np.float32)}, OpResolverType.AUTO)
    np.testing.assert_array_equal(out["z"], [[0, 0, 2, 0]])


def test_unsupported_ops_are_all_listed_before_anything_is_written():
    nodes = [
        node("Hardmax", ["x"], ["a"], name="hardmax_1"),
        node("Relu", ["a"], ["b"], name="ok"),
        node("LRN", ["b"], ["c"], size=3, name="lrn"),
        node("Hardmax", ["c"], ["y"], name="hardmax_2"),
    ]
    model = make_model(nodes, {"x": [1, 4, 3, 3]}, ["y"])
    assert unsupported_nodes(model) == {"Hardmax": ["hardmax_1", "hardmax_2"], "LRN": ["lrn"]}
    with pytest.raises(UsageError) as caught:
        convert(model)
    message = str(caught.value)
    for text in ("Hardmax", "LRN", "hardmax_1", "hardmax_2", "lrn", "2 ONNX op type"):
        assert text in message
    assert "'ok'" not in message and " ok" not in message


def test_unlowerable_attributes_name_the_node():
    model = make_model(
        [node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], name="dilated")],
        {"x": [1, 2, 6, 6]},
        ["y"],
    )
    with pytest.raises(UsageError, match=r"MaxPool node 'dilated'.*dilated pooling"):
        convert(model)


def test_attributes_of_older_opsets():
    """Opset 10: Clip bounds, ReduceMean axes and Pad amounts are attributes; Softmax flattens from its axis."""
    nodes = [
        node("Clip", ["x"], ["c"], min=-0.5, max=1.5),
        node("Pad", ["c"], ["p"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=0.25),
        node("ReduceMean", ["p"], ["m"], axes=[2, 3], keepdims=0),
        node("Softmax", ["m"], ["y"], axis=1),
    ]
    check(make_model(nodes, {"x": [1, 5, 4, 6]}, ["y"], opset=10), "old-opsets", scale=2.0)
