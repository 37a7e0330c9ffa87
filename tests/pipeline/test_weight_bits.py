"""reduce_range as the x86 target needs it: 8-bit weights wherever the u8s8 pair sums do not saturate on the
calibration samples, 7-bit only in the layers where they do; recorded in the manifest and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.analysis import u8s8_saturation as saturation
from edgecnn.pipeline import weight_bits
from edgecnn.pipeline.quantize import Quantizer
from tests.pipeline.test_weight_rounding import int8_weights


def _largest_weight(path: Path) -> dict[str, int]:
    """Each Conv/Gemm → the largest |int8| of its weights."""
    return {name: int(np.abs(q.astype(np.int32)).max()) for name, (q, _) in int8_weights(path).items()}


IMAGES = np.random.default_rng(0).standard_normal((20, 1, 32, 32)).astype(np.float32) * 2


@pytest.mark.parametrize("per_channel", [True, False])
def test_only_the_saturating_layers_keep_7bit_weights(tmp_path: Path, tiny_fp32: Path, per_channel: bool):
    dst = tmp_path / "int8.onnx"
    with Quantizer(tiny_fp32, IMAGES, per_channel=per_channel, equalize=not per_channel) as quantizer:
        info = quantizer.quantize(dst, "minmax", reduce_range=True)
        plain = quantizer.quantize(tmp_path / "8bit.onnx", "minmax", reduce_range=False)  # 8-bit everywhere
    bits = info["weight_bits"]
    assert info["reduce_range"] is True and plain["weight_bits"] is None
    assert bits["samples"] == weight_bits.MAX_SAMPLES and bits["layers"] == 15  # 14 pointwise/dense convs + Gemm
    seven = set(bits["seven_bit"])
    assert seven and bits["eight_bit"] == bits["layers"] - len(seven) > 0
    largest = _largest_weight(dst)
    for name, value in largest.items():
        assert (value <= 64) == (name in seven), name  # 7-bit: |q| ≤ 64; 8-bit: the largest is 127
    checked = weight_bits.checked_samples(IMAGES)
    assert saturation.u8s8_saturation(dst, checked)["saturating"] == {}  # what it ships does not saturate
    assert saturation.u8s8_saturation(tmp_path / "8bit.onnx", checked)["saturating"]  # 8-bit everywhere would


def test_without_widening_every_layer_is_7bit(tmp_path: Path, tiny_fp32: Path):
    dst = tmp_path / "int8.onnx"
    with Quantizer(tiny_fp32, IMAGES, widen_weights=False) as quantizer:
        info = quantizer.quantize(dst, "minmax", reduce_range=True)
    assert info["weight_bits"] is None and max(_largest_weight(dst).values()) <= 64


def test_a_graph_that_keeps_saturating_stays_7bit(tmp_path: Path, tiny_fp32: Path, monkeypatch):
    calls = []

    def always_another(path: Path, images) -> dict:  # every check finds a layer it had not found before
        calls.append(path)
        return {"layers": 15, "outputs": 1, "saturating": {f"layer{len(calls)}": {"outputs": 1, "share": 1.0}}}

    monkeypatch.setattr(saturation, "u8s8_saturation", always_another)
    dst = tmp_path / "int8.onnx"
    with Quantizer(tiny_fp32, IMAGES) as quantizer:
        info = quantizer.quantize(dst, "minmax", reduce_range=True)
    assert len(calls) == weight_bits.ROUNDS
    assert info["weight_bits"]["seven_bit"] == "all" and "still saturating" in info["weight_bits"]["kept_because"]
    assert max(_largest_weight(dst).values()) <= 64


def test_fewer_samples_are_checked_for_large_inputs():
    assert weight_bits.checked_samples(np.zeros((40, 3, 224, 224), np.float32)).shape[0] == 10
    assert weight_bits.checked_samples(np.zeros((3, 1, 32, 32), np.float32)).shape[0] == 3
    assert weight_bits.checked_samples(np.zeros((2, 3, 2048, 2048), np.float32)).shape[0] == 1


def test_an_x86_export_records_the_weight_bits_in_its_manifest_and_report(shared_export):
    result = shared_export("mobilenet")
    bits = result.manifest["stages"]["quantize"]["weight_bits"]
    assert bits["layers"] > 0 and isinstance(bits["seven_bit"], list)
    largest = _largest_weight(result.artifacts["int8_onnx"])
    assert all(largest[name] <= 64 for name in bits["seven_bit"])
    report = (result.out / "report.md").read_text()
    assert f"8-bit in {bits['eight_bit']} of {bits['layers']} layers" in report
    assert result.manifest["drift"]["passed"]


def _two_convs_one_weight(weight: int, bias: int) -> onnx.ModelProto:
    """Two Convs reading one int8 weight (through one DequantizeLinear), each with its own int32 bias."""
    from onnx import TensorProto, helper

    constants = {
        "s": np.array(0.1, np.float32), "z": np.array(0, np.uint8), "w": np.full((1, 1, 1, 1), weight, np.int8),
        "ws": np.array(0.01, np.float32), "wz": np.array(0, np.int8), "zb": np.array(0, np.int32),
        "b1": np.array([bias], np.int32), "b2": np.array([bias], np.int32), "bs": np.array(0.001, np.float32),
    }  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
        helper.make_node("DequantizeLinear", ["b1", "bs", "zb"], ["b1d"]),
        helper.make_node("DequantizeLinear", ["b2", "bs", "zb"], ["b2d"]),
        helper.make_node("Conv", ["xd", "wd", "b1d"], ["y1"], name="first"),
        helper.make_node("Conv", ["xd", "wd", "b2d"], ["y2"], name="second"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2")],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_spliced_weight_takes_every_reader_s_bias_with_it(tmp_path: Path):
    eight, seven, dst = tmp_path / "8.onnx", tmp_path / "7.onnx", tmp_path / "mixed.onnx"
    onnx.save(_two_convs_one_weight(127, 500), str(eight))
    onnx.save(_two_convs_one_weight(63, 250), str(seven))
    assert weight_bits.splice_weights(eight, seven, {"first"}, dst) == {"first", "second"}
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    assert int(inits["w"].max()) == 63 and int(inits["b1"][0]) == int(inits["b2"][0]) == 250


def test_layers_without_unique_names_stay_7bit(tmp_path: Path, tiny_fp32: Path, monkeypatch):
    monkeypatch.setattr(
        saturation, "u8s8_saturation", lambda path, images: {"layers": 15, "saturating": {}, "unnamed": 2}
    )
    dst = tmp_path / "int8.onnx"
    with Quantizer(tiny_fp32, IMAGES) as quantizer:
        info = quantizer.quantize(dst, "minmax", reduce_range=True)
    assert info["weight_bits"]["seven_bit"] == "all" and "name" in info["weight_bits"]["kept_because"]
    assert max(_largest_weight(dst).values()) <= 64


def test_a_check_that_fails_keeps_the_7bit_graph_and_says_why(tmp_path: Path, tiny_fp32: Path, monkeypatch):
    def broken(path: Path, images) -> dict:
        raise MemoryError("no room for the pair sums")

    monkeypatch.setattr(saturation, "u8s8_saturation", broken)
    dst = tmp_path / "int8.onnx"
    with Quantizer(tiny_fp32, IMAGES) as quantizer:
        info = quantizer.quantize(dst, "minmax", reduce_range=True)
    assert info["weight_bits"] == {
        "seven_bit": "all",
        "kept_because": "8-bit weights not checked: no room for the pair sums",
    }
    assert max(_largest_weight(dst).values()) <= 64
