"""Error-compensating weight rounding of the int8 .tflite: ai-edge-quantizer lands on the integers chosen, on the
nearest rounding's grid, and the outputs get closer to fp32 — for every linear op and layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")

from edgecnn.lowering.tflite import convert
from edgecnn.lowering.tflite.bias_correction import linear_ops
from edgecnn.lowering.tflite.quantize import TfliteQuantizer
from tests.lowering.test_tflite_bias_correction import CONVS, _layer, _samples, _size
from tests.lowering.tflite_check import run_ort


def _integers(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each int8 linear op's weights (by tensor name) as integers, and their scales."""
    return {layer.weight_name: (np.rint(layer.weight / _broadcast(layer)), layer.scale) for layer in linear_ops(data)}


def _broadcast(layer) -> np.ndarray:
    if layer.scale.size == 1:
        return layer.scale.reshape(())
    shape = [1] * layer.weight.ndim
    shape[3 if layer.op_type == "DEPTHWISE_CONV_2D" else 0] = -1
    return layer.scale.reshape(shape)


def _error(model, quantized, samples: np.ndarray) -> float:
    """The mean squared error of the int8 model's outputs against fp32 (ONNX Runtime)."""
    from tests.lowering.test_tflite_int8 import run

    actual = run(quantized.data, samples, quantized)
    expected = np.concatenate([run_ort(model, {"x": s[None]})["y"] for s in samples])
    if expected.ndim == 4:
        expected = expected.transpose(0, 2, 3, 1)
    return float(np.mean((actual.reshape(expected.shape) - expected) ** 2))


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("kind", [*CONVS, "fully_connected", "matmul_rows"])
def test_the_rounding_keeps_the_grid_and_gets_closer_to_fp32(kind, per_channel):
    model, samples = _layer(kind), _samples(_size(kind))
    lowered = convert(model)
    quantizer = TfliteQuantizer(lowered.data, samples[:128], lowered.input_layout, per_channel=per_channel)
    plain, rounded = quantizer.quantize_bytes(), quantizer.quantize_bytes(round_weights=True)
    nearest, chosen = _integers(plain.data), _integers(rounded.data)
    assert set(nearest) == set(chosen) and chosen
    moved = 0
    for name, (q, scale) in chosen.items():
        np.testing.assert_allclose(scale, nearest[name][1], rtol=1e-6)  # the same grid
        moved += int((q != nearest[name][0]).sum())
    assert moved == sum(quantizer._moved.values()) > 0  # ai-edge-quantizer rounded to the integers chosen
    layers = 2 if kind == "grouped_conv" else 1
    record = rounded.weight_rounding
    assert record["layers"] == layers and record["samples"] == 128 and record["weights_moved"] > 0, record
    assert plain.weight_rounding is None
    before, after = _error(model, plain, samples[128:]), _error(model, rounded, samples[128:])  # unseen samples
    print(f"\n{kind} per_channel={per_channel}: output MSE {before:.3g} → {after:.3g}")
    assert after < before, (before, after)


def test_rounding_and_bias_correction_compose(tmp_path):
    """The correction is measured against the fp32 weights and written into the rounded model: both records, the
    rounded integers kept, and the repair can switch the rounding on."""
    model, samples = _layer("depthwise"), _samples()
    lowered = convert(model)
    quantizer = TfliteQuantizer(lowered.data, samples[:64], lowered.input_layout, per_channel=False)
    assert "round_weights" in quantizer.remedy_techniques
    rounded = quantizer.quantize_bytes(round_weights=True)
    both = quantizer.quantize_bytes(round_weights=True, bias_correct=True)
    assert both.weight_rounding["layers"] == both.bias_correction["layers"] == 1
    for name, (q, _) in _integers(rounded.data).items():
        np.testing.assert_array_equal(q, _integers(both.data)[name][0])
    record = quantizer.quantize(tmp_path / "m.tflite", round_weights=True)
    assert record["weight_rounding"]["layers"] == 1 and record["bias_correction"] is None
