"""Calibration methods of the int8 .tflite besides min-max (``pipeline.tflite_calibration``): percentile and entropy
from ONNX Runtime's histograms of the .tflite's own tensors, and auto's per-tensor choice."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")

from onnx import helper

from edgecnn.errors import UsageError
from edgecnn.lowering.tflite import convert
from edgecnn.lowering.tflite.quantize import TfliteQuantizer
from edgecnn.pipeline.tflite_calibration import TfliteCalibration
from tests.lowering.test_tflite_int8 import run
from tests.lowering.tflite_check import make_model


def _relu_model_and_samples():
    """A Relu over 4×16×16 and 128 samples of which one holds a value 40 times the others' largest: one value in
    131,072, rarer than the 0.001% percentile calibration cuts."""
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 4, 16, 16]}, ["y"], {})
    samples = np.random.default_rng(0).standard_normal((128, 4, 16, 16)).astype(np.float32)
    samples[5, 0, 0, 0] = 40 * np.abs(samples).max()
    return model, samples


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_a_method_other_than_minmax_clips_a_rare_outlier(method):
    model, samples = _relu_model_and_samples()
    lowered = convert(model)
    minmax = TfliteQuantizer(lowered.data, samples, lowered.input_layout, calibrator=TfliteCalibration)
    other = TfliteQuantizer(
        lowered.data, samples, lowered.input_layout, method=method, calibrator=TfliteCalibration
    ).quantize_bytes()
    plain = minmax.quantize_bytes()
    assert other.output_scale < plain.output_scale / 5, (plain.output_scale, other.output_scale)
    typical = np.delete(samples, 5, axis=0)
    expected = np.maximum(typical, 0).transpose(0, 2, 3, 1).reshape(len(typical), -1)
    errors = {
        name: float(np.sqrt(np.mean((run(q.data, typical, q).reshape(len(typical), -1) - expected) ** 2)))
        for name, q in (("minmax", plain), (method, other))
    }
    assert errors[method] < errors["minmax"] / 3, errors  # the other 127 samples keep their resolution


def test_auto_records_its_choice_and_the_repair_has_the_other_methods():
    model, samples = _relu_model_and_samples()
    lowered = convert(model)
    quantizer = TfliteQuantizer(
        lowered.data, samples, lowered.input_layout, method="auto", calibrator=TfliteCalibration
    )
    assert quantizer.remedy_methods == ("minmax", "mean_minmax", "percentile", "entropy")
    record = quantizer.calibration("auto")
    assert set(record["tensors"]) == {"x", "y"} and sum(record["counts"].values()) == 2, record
    statistics = quantizer._statistics("auto")
    for tensor, chosen in record["tensors"].items():  # each tensor quantized with the range of the method it took
        low, high = quantizer.calibrated(chosen)[tensor]
        assert (statistics[tensor]["min"].item(), statistics[tensor]["max"].item()) == (low, high)
    # the outlier holds most of the signal: clipping it costs more SQNR than min-max's coarse steps
    assert record["tensors"]["y"] == "minmax", record
    assert quantizer.quantize_bytes(method="minmax").method == "minmax"
    assert TfliteQuantizer(lowered.data, samples[:8], lowered.input_layout).remedy_methods == ()


def test_a_method_needs_a_calibrator():
    model, samples = _relu_model_and_samples()
    lowered = convert(model)
    with pytest.raises(UsageError, match="calibrates by minmax, not 'percentile'"):
        TfliteQuantizer(lowered.data, samples, lowered.input_layout, method="percentile")


def _offset_model():
    """y = x + 1e5: a large value with a spread of 1, where float32 histogram edges of 2,048 bins collide."""
    model = make_model(
        [helper.make_node("Add", ["x", "offset"], ["y"])], {"x": [1, 4, 6, 6]}, ["y"], {"offset": np.float32(1e5)}
    )
    samples = np.random.default_rng(0).uniform(0, 1, (32, 4, 6, 6)).astype(np.float32)
    return model, samples


def test_a_tensor_numpy_cannot_bin_keeps_its_minmax_range():
    model, samples = _offset_model()
    lowered = convert(model)
    quantizer = TfliteQuantizer(
        lowered.data, samples, lowered.input_layout, method="percentile", calibrator=TfliteCalibration
    )
    low, high = quantizer.calibrated("percentile")["y"]
    assert (low, high) == quantizer.minmax_ranges()["y"]
    assert quantizer.calibrated("percentile")["x"] != quantizer.minmax_ranges()["x"]  # the others are calibrated


def test_a_global_remedy_that_cannot_be_made_is_recorded_and_the_repair_goes_on(tmp_path):
    """ORT's percentile calibrator cannot bin ``y = x + 1e5``: that try is recorded under ``failed_tries`` with
    its reason, and the repair still tries the other remedies and the layers."""
    import onnx

    from edgecnn.analysis.drift import EXACT_QDQ, Thresholds, evaluator
    from edgecnn.analysis.mixed_precision import repair_model
    from edgecnn.pipeline.quantize import Quantizer
    from edgecnn.runtime.loader import load

    model, samples = _offset_model()
    conv = helper.make_node("Conv", ["y", "w"], ["z"], pads=[1, 1, 1, 1])
    model = make_model(
        [*model.graph.node, conv],
        {"x": [1, 4, 6, 6]},
        ["z"],
        {"offset": np.float32(1e5), "w": np.full((2, 4, 3, 3), 0.01, np.float32)},
    )
    source = tmp_path / "net.onnx"
    onnx.save_model(model, str(source))
    reference = load(source).run_all(samples)
    evaluate = evaluator(samples, reference, None, EXACT_QDQ, Thresholds(tasks="raw", min_cosine=1.0))
    with Quantizer(source, samples, per_channel=False) as quantizer:
        int8 = tmp_path / "int8.onnx"
        quantizer.quantize(int8, "minmax")
        work = tmp_path / "work"
        work.mkdir()
        _, record = repair_model(
            quantizer, evaluate, int8, tmp_path / "fixed.onnx", work, evaluate(int8), method="minmax",
            reduce_range=False, images=samples, saturating_target=False,
        )  # fmt: skip
    failed = {t["label"]: t["why"] for t in record["failed_tries"]}
    assert "global: percentile" in failed and "calibration by percentile failed" in failed["global: percentile"]
    labels = [a["label"] for a in record["attempts"]]
    assert "global: entropy" in labels and any(label.startswith("mixed:") for label in labels), labels


def _op_scales(data: bytes, op_type: str) -> list[tuple[float, float]]:
    """(input scale, output scale) of every ``op_type`` op of an int8 .tflite."""
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import TFL_OP_CODE_TO_NAME

    from edgecnn.lowering.tflite.flatbuffer import parse

    model = parse(data)
    subgraph = model.subgraphs[0]

    def scale(index: int) -> float:
        return float(subgraph.tensors[index].quantization.scale[0])

    return [
        (scale(op.inputs[0]), scale(op.outputs[0]))
        for op in subgraph.operators
        if TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode) == op_type
    ]


@pytest.mark.parametrize("method", ["mean_minmax", "percentile", "auto"])
def test_a_padded_max_pool_keeps_its_tied_ranges_alike_and_runs_in_xnnpack(method):
    """A max pool with padding of a value that may be negative lowers to PADV2 (padded with the lowest float) and
    MAX_POOL_2D, whose tensors ai-edge-quantizer ties. Ranges replaced tensor by tensor gave the PADV2's output its
    pad value, and through the tie its input: a scale of 1e36 that XNNPACK refused to run. The tied tensors now
    share one range, that of the pool's input. (A ReLU's output is padded with zeros: a PAD.)"""
    nodes = [
        helper.make_node("Neg", ["x"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    ]
    model = make_model(nodes, {"x": [1, 4, 16, 16]}, ["y"], {})
    samples = np.random.default_rng(0).standard_normal((32, 4, 16, 16)).astype(np.float32)
    lowered = convert(model)
    quantized = TfliteQuantizer(
        lowered.data, samples, lowered.input_layout, method=method, calibrator=TfliteCalibration
    ).quantize_bytes()
    tied = _op_scales(quantized.data, "PADV2") + _op_scales(quantized.data, "MAX_POOL_2D")
    assert len(tied) == 2 and all(a == b for a, b in tied), tied
    assert tied[0][0] < 1, tied  # the input's range, not the pad value's
    expected = run(lowered.data, samples)
    int8 = run(quantized.data, samples, quantized)  # XNNPACK: the interpreter's default delegate
    assert np.median(np.abs(int8 - expected)) <= quantized.output_scale, (method, quantized.output_scale)
