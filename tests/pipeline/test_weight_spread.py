"""The layers whose channels' weight ranges spread wide, and the mixed-granularity int8 graph that keeps only them
per channel (``weight_spread``; ``Quantizer.quantize(per_channel_weights=…)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.pipeline.quantize import Quantizer
from edgecnn.pipeline.weight_spread import SPREAD_DB, spread_db, wide_spread_weights


def test_the_spread_is_the_average_channels_noise_growth_in_db():
    assert spread_db(np.ones((4, 3, 3, 3), np.float32), 0) == 0.0  # every channel spans the same range
    weight = np.ones((2, 8), np.float32)
    weight[1] *= 0.1  # its rounding noise, relative to it, grows 100×; the other's not at all: mean 50.5
    assert spread_db(weight, 0) == pytest.approx(10 * np.log10(50.5))
    assert spread_db(weight.T, 1) == pytest.approx(10 * np.log10(50.5))  # the channel axis is the one given
    weight[1] = 0  # an all-zero channel has no range to lose
    assert spread_db(weight, 0) == 0.0


def _graph(path: Path) -> None:
    """x → Conv (one channel 20× narrower: wide) → Conv (even) → flatten → Gemm transB (wide) → MatMul (even)."""
    rng = np.random.default_rng(0)
    wide_conv = rng.uniform(-1, 1, (4, 1, 3, 3)).astype(np.float32)
    wide_conv[1:] *= 0.05
    even_conv = rng.uniform(-1, 1, (4, 4, 1, 1)).astype(np.float32)
    even_conv /= np.abs(even_conv).reshape(4, -1).max(1)[:, None, None, None]
    gemm = rng.uniform(-1, 1, (6, 4 * 4 * 4)).astype(np.float32)  # transB: (out, in), channels on axis 0
    gemm[2:] *= 0.02
    matmul = np.ones((6, 3), np.float32)  # (in, out): channels on axis 1, all alike
    weights = {"wide_conv": wide_conv, "even_conv": even_conv, "gemm_w": gemm, "matmul_w": matmul}
    nodes = [
        helper.make_node("Conv", ["x", "wide_conv"], ["a"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "even_conv"], ["b"], name="conv1"),
        helper.make_node("Flatten", ["b"], ["c"], name="flat"),
        helper.make_node("Gemm", ["c", "gemm_w"], ["d"], name="gemm", transB=1),
        helper.make_node("MatMul", ["d", "matmul_w"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes, "spread",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )  # fmt: skip
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_the_wide_layers_are_found_on_each_op_types_channel_axis(tmp_path: Path):
    _graph(tmp_path / "g.onnx")
    wide = wide_spread_weights(tmp_path / "g.onnx")
    assert set(wide) == {"wide_conv", "gemm_w"} and all(v > SPREAD_DB for v in wide.values())
    assert wide_spread_weights(tmp_path / "g.onnx", threshold_db=1e9) == {}


def _scale_sizes(path: Path) -> dict[str, int]:
    """Each quantized weight's DequantizeLinear scale element count (1: per tensor), by the float weight's name."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    sizes = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].dtype == np.int8:
            sizes[node.input[0]] = int(np.size(inits[node.input[1]]))
    return sizes


@pytest.mark.parametrize("options", [{}, {"bias_correct": True, "round_weights": True}, {"reduce_range": True}])
def test_a_mixed_graph_keeps_per_channel_only_the_weights_named(tmp_path: Path, tiny_fp32: Path, options: dict):
    """Per-tensor weights but for the one named — with bias correction and weight rounding (each on its layer's
    grid) and with reduce_range's 7/8-bit widening, which quantize again: the named one stays per channel."""
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    reduce_range = options.pop("reduce_range", False)
    with Quantizer(tiny_fp32, images, per_channel=False, **options) as quantizer:
        model = onnx.load(str(quantizer.preprocessed))
        convs = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
        named = convs[3]
        info = quantizer.quantize(tmp_path / "mixed.onnx", reduce_range=reduce_range, per_channel_weights=(named,))
        plain = quantizer.quantize(tmp_path / "plain.onnx", reduce_range=reduce_range)
        grids = set(quantizer._rounded)  # the rounding grids made: the mixed graph's is its own
    assert info["per_channel"] is False and info["per_channel_weights"] == [named]
    assert "per_channel_weights" not in plain
    sizes = {k.removesuffix("_quantized"): v for k, v in _scale_sizes(tmp_path / "mixed.onnx").items()}
    per_channel = {name for name, size in sizes.items() if size > 1}
    assert len(per_channel) == 1 and next(iter(per_channel)).startswith(named), sizes
    assert set(_scale_sizes(tmp_path / "plain.onnx").values()) == {1}
    if options.get("round_weights"):
        assert info["weight_rounding"]["layers"] > 0, info["weight_rounding"]
        assert grids == {(False, reduce_range, (named,)), (False, reduce_range, ())}


def test_a_quantizer_made_mixed_makes_it_again_by_default(tmp_path: Path, tiny_fp32: Path):
    """The weights choice sets the shipped twin's ``per_channel_weights``: a later quantization (the drift repair's)
    keeps that granularity unless told otherwise."""
    images = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    with Quantizer(tiny_fp32, images, per_channel=False) as quantizer:
        named = next(n.input[1] for n in onnx.load(str(quantizer.preprocessed)).graph.node if n.op_type == "Conv")
        quantizer.per_channel_weights = (named,)
        assert quantizer.quantize(tmp_path / "again.onnx", "percentile")["per_channel_weights"] == [named]
        assert "per_channel_weights" not in quantizer.quantize(tmp_path / "pc.onnx", per_channel=True)
        assert "per_channel_weights" not in quantizer.quantize(tmp_path / "pt.onnx", per_channel_weights=())
