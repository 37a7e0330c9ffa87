"""Bias correction of the int8 .tflite: the mean shift per output channel that per-tensor int8 weights add to a
convolution, a depthwise convolution and a fully connected layer is measured and taken out of the bias."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")

from onnx import helper

from edgecnn.lowering.tflite import convert
from edgecnn.lowering.tflite.quantize import TfliteQuantizer
from tests.lowering.tflite_check import make_model, run_ort

SAMPLES = 256
SPREAD = np.array([1.0, 0.03, 0.05, 0.02, 0.8, 0.04])  # one weight scale per tensor: the small channels round coarsely


CONVS = {  # kind: (group, weight shape, strides, pads, input size)
    "conv_same": (1, (6, 4, 3, 3), [1, 1], [1, 1, 1, 1], 7),
    "conv_stride_2": (1, (6, 4, 3, 3), [2, 2], [1, 1, 1, 1], 7),  # not SAME: lowered as PAD + VALID
    "conv_same_stride_2": (1, (6, 4, 3, 3), [2, 2], [0, 0, 1, 1], 8),  # SAME with its odd pixel after
    "grouped_conv": (2, (6, 2, 3, 3), [1, 1], [1, 1, 1, 1], 7),  # lowered as a CONV_2D per group
    "depthwise": (4, (8, 1, 3, 3), [1, 1], [1, 1, 1, 1], 7),  # two outputs per input channel
}


def _layer(kind: str):
    """A one-layer ONNX model of ``kind`` over a 4-channel input (``_size(kind)`` square), outputs of very
    different weight ranges."""
    rng = np.random.default_rng(1)
    size = _size(kind)
    if kind == "fully_connected":
        w = rng.standard_normal((6, 4 * size * size)) * SPREAD[:, None] / 10
        nodes = [
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1),
        ]
        inits = {"w": w.astype(np.float32), "b": np.full(6, 0.1, np.float32)}
        return make_model(nodes, {"x": [1, 4, size, size]}, ["y"], inits)
    if kind == "matmul_rows":  # FULLY_CONNECTED over 49 rows of 4 features, no batch axis: [49, 4] @ [4, 6]
        w = (rng.standard_normal((4, 6)) * SPREAD[None, :]).astype(np.float32)
        nodes = [
            helper.make_node("Reshape", ["x", "channels"], ["rows"]),
            helper.make_node("Transpose", ["rows"], ["features_last"], perm=[1, 0]),
            helper.make_node("MatMul", ["features_last", "w"], ["product"]),
            helper.make_node("Reshape", ["product", "batched"], ["y"]),
        ]
        shapes = {"channels": np.array([4, size * size], np.int64), "batched": np.array([1, size * size, 6], np.int64)}
        return make_model(nodes, {"x": [1, 4, size, size]}, ["y"], {**shapes, "w": w})
    group, shape, strides, pads, _ = CONVS[kind]
    spread = np.resize(SPREAD, shape[0])
    w = (rng.standard_normal(shape) * spread[:, None, None, None]).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, pads=pads, strides=strides)
    return make_model([conv], {"x": [1, 4, size, size]}, ["y"], {"w": w, "b": np.full(shape[0], 0.1, np.float32)})


def _size(kind: str) -> int:
    return CONVS[kind][4] if kind in CONVS else 7


def _samples(size: int = 7) -> np.ndarray:
    """Positive-mean inputs whose mean varies over the map (so the zero padding at the borders matters) and from
    channel to channel (so does which input channel each output reads)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 2.0, size, dtype=np.float32)
    offsets = np.array([0.0, 3.0, 0.5, 6.0], np.float32)
    values = rng.uniform(0, 1, (SAMPLES, 4, size, size)) + ramp[None, None, :, None] + offsets[None, :, None, None]
    return values.astype(np.float32)


def _mean_error(model, quantized, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the mean over samples and positions of int8 minus fp32 (ONNX Runtime), and the fp32
    output's spread (standard deviation)."""
    from tests.lowering.test_tflite_int8 import run

    actual = run(quantized.data, samples, quantized)
    expected = np.concatenate([run_ort(model, {"x": s[None]})["y"] for s in samples])
    if expected.ndim == 4:
        expected = expected.transpose(0, 2, 3, 1)
    channels = expected.shape[-1]
    error = actual.reshape(-1, channels) - expected.reshape(-1, channels)
    return error.mean(axis=0), expected.reshape(-1, channels).std(axis=0)


@pytest.mark.parametrize("kind", [*CONVS, "fully_connected", "matmul_rows"])
def test_bias_correction_centres_per_tensor_int8_weights(kind):
    """Judged on the channels whose outputs span many steps of the output scale: a channel of small weights makes
    outputs within a step or two of a constant, whose rounding to the shared scale is a shift of its own that no
    bias removes."""
    model, samples = _layer(kind), _samples(_size(kind))
    lowered = convert(model)
    quantizer = TfliteQuantizer(lowered.data, samples, lowered.input_layout, per_channel=False)
    plain, corrected = quantizer.quantize_bytes(), quantizer.quantize_bytes(bias_correct=True)
    (before, spread), (after, _) = _mean_error(model, plain, samples), _mean_error(model, corrected, samples)
    wide = spread > 4 * plain.output_scale
    norms = [np.linalg.norm(e) for e in (before[wide], after[wide], before, after)]
    print(f"\n{kind}: |mean error| of {wide.sum()} wide channels {norms[0]:.4f} → {norms[1]:.4f}; all {norms[2]:.4f} → "
          f"{norms[3]:.4f}")  # fmt: skip
    assert wide.sum() >= 2 and np.abs(before[wide]).max() > 0.05 * plain.output_scale  # a shift worth correcting
    # Ignoring the padding left 0.21 of it on conv_same; reading the wrong input channels or rows fails too.
    assert np.linalg.norm(after[wide]) < 0.1 * np.linalg.norm(before[wide]), (before, after, wide)
    assert plain.bias_correction is None
    layers = 2 if kind == "grouped_conv" else 1  # a grouped convolution is lowered as one CONV_2D per group
    assert corrected.bias_correction["layers"] == layers and corrected.bias_correction["max_abs_shift"] > 0


def test_the_drift_repair_can_switch_bias_correction_on(tmp_path):
    model, samples = _layer("depthwise"), _samples()
    lowered = convert(model)
    quantizer = TfliteQuantizer(lowered.data, samples[:32], lowered.input_layout, per_channel=False)
    assert "bias_correct" in quantizer.remedy_techniques
    record = quantizer.quantize(tmp_path / "m.tflite", bias_correct=True)
    assert record["bias_correction"]["layers"] == 1
    assert quantizer.made[tmp_path / "m.tflite"].data == (tmp_path / "m.tflite").read_bytes()
    assert quantizer.quantize(tmp_path / "plain.tflite")["bias_correction"] is None


def test_the_tflite_drift_repair_tries_bias_correction_first(tmp_path):
    """An unreachable threshold makes the .tflite repair try every remedy: bias correction on the baseline (it has
    no other calibration method), recorded as its try's technique, then layers in float with the best's
    techniques."""
    from edgecnn.analysis.drift import Thresholds, figures, verdict
    from edgecnn.analysis.layerwise_tflite import rank_tflite
    from edgecnn.analysis.mixed_precision import repair_model
    from edgecnn.runtime.loader import load

    model, samples = _layer("conv_same"), _samples()
    lowered = convert(model)
    layout = lowered.input_layout
    (tmp_path / "fp32.tflite").write_bytes(lowered.data)
    held = samples[:64]
    reference = load(tmp_path / "fp32.tflite", layout=layout).run_all(held)
    thresholds = Thresholds(tasks="raw", min_cosine=1.0)

    def evaluate(path):
        computations = {"tflite": figures(reference, load(path, layout=layout).run_all(held), None, None, thresholds)}
        return verdict(computations, "tflite", thresholds), computations

    quantizer = TfliteQuantizer(lowered.data, samples[64:], layout, per_channel=False)
    int8 = tmp_path / "int8.tflite"
    quantizer.quantize(int8)
    work = tmp_path / "work"
    work.mkdir()
    search, record = repair_model(
        quantizer, evaluate, int8, tmp_path / "fixed.tflite", work, evaluate(int8), method="minmax",
        reduce_range=False, images=held, saturating_target=False,
        rank=lambda path, images: rank_tflite(quantizer.fp32, path.read_bytes(), images, layout),
    )  # fmt: skip
    first = record["attempts"][0]
    assert first["label"] == "global: minmax + bias correct" and first["techniques"] == ["bias_correct"], first
    corrected = search.attempts[0]
    assert quantizer.made[corrected.path].bias_correction["layers"] == 1
    baseline = evaluate(int8)[0]
    print(f"\ncosine: baseline {baseline['cosine']:.6f}, bias corrected {corrected.verdict['cosine']:.6f}")
    assert corrected.verdict["cosine"] > baseline["cosine"]  # the centred outputs are closer to fp32
    second = record["attempts"][1]
    assert second["label"] == "global: minmax + round weights", second  # on the best so far
    best_global = max(search.attempts[:2], key=lambda a: a.score)
    mixed = [a for a in search.attempts if a.label.startswith("mixed:")]
    assert mixed and all(a.techniques == best_global.techniques for a in mixed), [a.techniques for a in mixed]
