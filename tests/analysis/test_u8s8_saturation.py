"""The u8s8 pair sums of ONNX Runtime's x86 kernels without VNNI, computed: which pairs saturate, on real graphs.

The pairing is the one measured on an emulated AVX2 CPU without VNNI (``benchmarks/x86_saturation.py``): for a
convolution the reduction runs kernel row, kernel column, input channel fastest, and elements 2j, 2j+1 share a
16-bit sum; for Gemm/MatMul the input features. With ``$EDGECNN_X86_EMULATOR`` set, the last test checks the
computation against those kernels themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.analysis.u8s8_saturation import u8s8_saturation

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "_x86_kernels_run.py"
STEP = 0.125  # the emulated tests' output quantization step


def _qdq(weights: np.ndarray, shape: list, op: str = "Conv", group: int = 1, out: tuple = (3.0, 0)) -> onnx.ModelProto:
    """x → Q/DQ (scale 1/255, uint8) → op with int8 weights at scale 1/127 → Q/DQ (``out``: its range's width and
    zero point): an input of ones is uint8 255."""
    constants = {
        "xs": np.array(1 / 255, np.float32), "xz": np.array(0, np.uint8),
        "w": weights.astype(np.int8), "ws": np.array(1 / 127, np.float32), "wz": np.array(0, np.int8),
        "ys": np.array(out[0] / 255, np.float32), "yz": np.array(out[1], np.uint8),
    }  # fmt: skip
    attributes = {"group": group} if op == "Conv" else {}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
        helper.make_node(op, ["xd", "wd"], ["y"], name="layer", **attributes),
        helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _saturating(model: onnx.ModelProto, shape: list[int], tmp_path: Path) -> int | None:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    found = u8s8_saturation(path, np.ones(shape, np.float32))
    return None if not found["layers"] else found["saturating"].get("layer", {}).get("outputs", 0)


def test_a_1x1_conv_saturates_only_on_neighbouring_channel_pairs(tmp_path: Path):
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3), (4, 5), (0, 4)]
    weights = np.zeros((len(pairs), 8, 1, 1))
    for row, (a, b) in enumerate(pairs):
        weights[row, [a, b]] = 127
    path = tmp_path / "m.onnx"
    onnx.save(_qdq(weights, [1, 8, 1, 1]), str(path))
    found = u8s8_saturation(path, np.ones((1, 8, 1, 1), np.float32))
    assert found["layers"] == 1 and found["outputs"] == len(pairs)
    assert found["saturating"]["layer"]["outputs"] == 3  # (0, 1), (2, 3), (4, 5)
    single = np.zeros((1, 8, 1, 1))
    single[0, [0, 1]] = 63  # 7-bit weights: 255 × 63 × 2 = 32130 fits
    assert _saturating(_qdq(single, [1, 8, 1, 1]), [1, 8, 1, 1], tmp_path) == 0


@pytest.mark.parametrize(
    ("channels", "first", "second", "saturates"),
    [
        (2, (0, 0, 0), (1, 0, 0), True),  # the same tap, neighbouring channels: elements 0 and 1
        (2, (0, 0, 0), (0, 0, 1), False),  # the same channel, neighbouring columns: elements 0 and 2
        (2, (0, 1, 1), (1, 1, 1), True),  # elements 8 and 9
        (1, (0, 0, 0), (0, 0, 1), True),  # one channel: taps 0 and 1
        (1, (0, 0, 2), (0, 1, 0), True),  # taps 2 and 3, across a kernel row
        (1, (0, 0, 1), (0, 0, 2), False),  # taps 1 and 2
    ],
)
def test_a_3x3_conv_pairs_kernel_row_column_then_channel(tmp_path, channels, first, second, saturates):
    weights = np.zeros((1, channels, 3, 3))
    weights[(0, *first)] = weights[(0, *second)] = 127
    shape = [1, channels, 3, 3]
    assert _saturating(_qdq(weights, shape), shape, tmp_path) == int(saturates)


def test_depthwise_convs_are_left_out_and_grouped_ones_pair_within_a_group(tmp_path: Path):
    depthwise = np.full((4, 1, 3, 3), 127.0)
    assert _saturating(_qdq(depthwise, [1, 4, 3, 3], group=4), [1, 4, 3, 3], tmp_path) is None
    multiplier = np.full((8, 1, 3, 3), 127.0)  # a group of one input channel, two outputs: the GEMM kernel
    assert _saturating(_qdq(multiplier, [1, 4, 3, 3], group=4), [1, 4, 3, 3], tmp_path) == 8
    grouped = np.full((2, 2, 1, 1), 127.0)  # two groups of two channels, each output one saturating pair
    assert _saturating(_qdq(grouped, [1, 4, 1, 1], group=2), [1, 4, 1, 1], tmp_path) == 2


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_matmul_and_gemm_pair_neighbouring_input_features(tmp_path: Path, op: str):
    weights = np.array([[127, 127], [127, 0], [0, 127], [0, 0]])  # K × outputs: column 0 pairs k0+k1
    assert _saturating(_qdq(weights, [1, 4], op=op), [1, 4], tmp_path) == 1


def test_padding_reads_the_zero_point_and_smaller_inputs_do_not_saturate(tmp_path: Path):
    weights = np.zeros((1, 1, 3, 3))
    weights[0, 0, 0, :2] = 127
    model = _qdq(weights, [1, 1, 4, 4])
    model.graph.node[3].attribute.append(helper.make_attribute("pads", [1, 1, 1, 1]))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    ones = np.ones((1, 1, 4, 4), np.float32)
    # outputs 4×4; the pair (tap 0, tap 1) sits on the padded row for the top four outputs, on the padded column
    # for the left ones: saturating where both read the image, 3 rows × 3 columns
    assert u8s8_saturation(path, ones)["saturating"]["layer"]["outputs"] == 9
    assert not u8s8_saturation(path, ones * 0.5)["saturating"]  # 128 × 127 × 2 = 32512 fits


def test_a_conv_with_auto_pad_is_not_computed(tmp_path: Path):
    model = _qdq(np.ones((1, 1, 3, 3)), [1, 1, 4, 4])
    model.graph.node[3].attribute.append(helper.make_attribute("auto_pad", "SAME_UPPER"))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    found = u8s8_saturation(path, np.zeros((1, 1, 4, 4), np.float32))
    assert found["saturating"]["layer"]["not_computed"] == "auto_pad"


def test_layers_without_a_name_of_their_own_are_counted(tmp_path: Path):
    model = _qdq(np.ones((1, 8, 1, 1)), [1, 8, 1, 1])
    model.graph.node[3].name = ""
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert u8s8_saturation(path, np.zeros((1, 8, 1, 1), np.float32))["unnamed"] == 1


def test_a_layer_it_cannot_compute_counts_as_saturating(tmp_path: Path):
    """A 1-D convolution: its pairs are not computed here, so it keeps the 7-bit guard."""
    path = tmp_path / "m.onnx"
    onnx.save(_qdq(np.ones((2, 4, 3)), [1, 4, 5]), str(path))
    found = u8s8_saturation(path, np.zeros((1, 4, 5), np.float32))
    assert found["layers"] == 1 and found["saturating"]["layer"]["not_computed"] == "3-D weights"


def _differs_on_the_emulator(model: onnx.ModelProto, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """Where the model's outputs on ``x`` from ONNX Runtime on the emulated CPU differ from the exact QDQ ones."""
    sys.path.insert(0, str(RUNNER.parent))
    from x86_saturation import emulator

    from edgecnn.runtime.loader import load

    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    np.save(tmp_path / "x.npy", x)
    prefix, env, _ = emulator(None)
    subprocess.run([*prefix, sys.executable, str(RUNNER), str(tmp_path / "x.npy"), str(path)], check=True, env=env)
    exact = next(iter(load(path, optimization="disable").run_all(x).values()))
    return np.abs(np.load(str(path) + ".out.npy") - exact) > 0


def _pair_sums(rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (row, output): whether a pair (2j, 2j+1) saturates, and what saturation loses in output units."""
    a = rows.astype(np.int32)
    a = np.pad(a, ((0, 0), (0, a.shape[1] % 2))).reshape(a.shape[0], -1, 2)
    w = weights.astype(np.int32)
    w = np.pad(w, ((0, 0), (0, w.shape[1] % 2))).reshape(w.shape[0], -1, 2)
    sums = a[:, :, 0, None] * w[:, :, 0].T[None] + a[:, :, 1, None] * w[:, :, 1].T[None]
    lost = (sums - np.clip(sums, -32768, 32767)).sum(axis=1) / (255 * 127)
    return ((sums > 32767) | (sums < -32768)).any(axis=1), np.abs(lost)


@pytest.mark.skipif(not os.environ.get("EDGECNN_X86_EMULATOR"), reason="no x86 emulator ($EDGECNN_X86_EMULATOR)")
@pytest.mark.parametrize(
    ("channels", "outputs", "kernel", "group", "stride", "pad"),
    [
        (8, 16, 3, 1, 1, 0),  # ONNX Runtime's symmetric conv kernel (C % 4 == 0, M ≥ 16)
        (3, 8, 3, 1, 2, 1),  # a first conv: odd channels, im2col and GEMM, pairs across kernel taps
        (4, 6, 1, 1, 1, 0),  # few outputs
        (4, 8, 3, 2, 1, 1),  # grouped
        (4, 8, 3, 4, 1, 1),  # one input channel a group, two outputs: GEMM, not the depthwise kernel
    ],
)
def test_the_outputs_computed_to_saturate_are_those_the_emulated_kernels_get_wrong(
    tmp_path: Path, channels: int, outputs: int, kernel: int, group: int, stride: int, pad: int
):
    """A random conv on random uint8 inputs, run by ONNX Runtime on the emulated AVX2 CPU without VNNI: every
    output that differs from the exact QDQ one is one computed to saturate, and every output whose computed
    saturation loses more than an output step differs (a pair just over the limit loses less than that)."""
    from edgecnn.analysis import u8s8_saturation as module

    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, (outputs, channels // group, kernel, kernel))
    model = _qdq(weights, ["n", channels, 7, 7], group=group, out=(255 * STEP, 128))
    conv = model.graph.node[3]
    conv.attribute.extend([helper.make_attribute("strides", [stride] * 2), helper.make_attribute("pads", [pad] * 4)])
    x = rng.integers(0, 256, (4, channels, 7, 7)).astype(np.float32) / 255
    emulated_differs = _differs_on_the_emulator(model, x, tmp_path)
    layer = module._layers(model)[0]
    rows, kernels = module._conv_columns(np.round(x * 255).astype(np.uint8), layer)
    groups = [_pair_sums(r, k) for r, k in zip(rows, kernels, strict=True)]
    predicted = np.concatenate([p for p, _ in groups], axis=1)  # (N·OH·OW) × outputs
    lost = np.concatenate([lo for _, lo in groups], axis=1)
    differs = emulated_differs.transpose(0, 2, 3, 1).reshape(predicted.shape)
    assert differs.any() and not (differs & ~predicted).any()  # nothing saturates that is not computed to
    assert differs[lost > 1.5 * STEP].all()  # and what loses more than an output step differs


@pytest.mark.skipif(not os.environ.get("EDGECNN_X86_EMULATOR"), reason="no x86 emulator ($EDGECNN_X86_EMULATOR)")
def test_a_gemm_saturates_where_computed_on_the_emulated_kernels(tmp_path: Path):
    rng = np.random.default_rng(1)
    weights = rng.integers(-127, 128, (11, 12))  # K × outputs, odd K
    x = rng.integers(0, 256, (64, 11)).astype(np.float32) / 255
    differs = _differs_on_the_emulator(_qdq(weights, ["n", 11], op="MatMul", out=(255 * STEP, 128)), x, tmp_path)
    predicted, lost = _pair_sums(np.round(x * 255), weights.T)
    assert differs.any() and not (differs & ~predicted).any() and differs[lost > 1.5 * STEP].all()
