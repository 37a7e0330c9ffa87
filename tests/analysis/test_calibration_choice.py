"""Per-tensor calibration choice: each activation takes the candidate range of the best SQNR, checked independently."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.analysis.calibration_choice import choose_ranges, fake_quantize, uint8_params
from edgecnn.analysis.layerwise import SQNR_CAP_DB, tensor_batches
from edgecnn.analysis.metrics import sqnr_db


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tinynet_checkpoint, digits_npz):
    """The digits-trained TinyNet, pre-processed and calibrated with each method: (model, samples, candidates)."""
    import torch
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.quantize import CALIBRATED, Quantizer
    from tests.fixtures.tinynet import build_net

    model = build_net()
    model.load_state_dict(torch.load(tinynet_checkpoint["path"], weights_only=True)["state_dict"])
    work = tmp_path_factory.mktemp("choice")
    export_onnx(model, (1, 1, 32, 32), work / "tiny.onnx")
    images = np.load(digits_npz["path"])["images"][:64]
    with Quantizer(work / "tiny.onnx", images) as quantizer:
        candidates = {m: dict(load_tensors_data(quantizer.ranges(m)).items()) for m in CALIBRATED}
        preprocessed = work / "preprocessed.onnx"
        preprocessed.write_bytes(quantizer.preprocessed.read_bytes())
    ranges = {m: {t: d.range_value for t, d in data.items()} for m, data in candidates.items()}
    return preprocessed, images, ranges


def _uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """QuantizeLinear → DequantizeLinear of an asymmetric uint8 tensor of range [low, high], written out plainly."""
    low, high = min(np.asarray(low).item(), 0.0), max(np.asarray(high).item(), 0.0)
    scale = np.float32((high - low) / 255)
    zero_point = np.float32(round(-low / scale))
    return (np.clip(np.round(values / scale) + zero_point, 0, 255) - zero_point) * scale


def test_every_tensor_takes_the_range_of_its_best_sqnr(calibrated):
    model, images, ranges = calibrated
    choice = choose_ranges(model, ranges, images)
    tensors = sorted(choice.chosen)
    assert len(tensors) >= 8 and set(choice.chosen.values()) <= set(ranges)
    batches = list(tensor_batches(model, tensors, images))
    values = {t: np.concatenate([b[t] for b in batches]) for t in tensors}
    gaps = []
    for tensor in tensors:
        sqnr = {
            m: min(SQNR_CAP_DB, sqnr_db(values[tensor], _uint8(values[tensor], *r[tensor]))) for m, r in ranges.items()
        }
        best = max(sqnr.values())
        assert sqnr[choice.chosen[tensor]] == pytest.approx(best, abs=1e-3), (tensor, choice.chosen[tensor], sqnr)
        assert choice.sqnr_db[tensor] == pytest.approx(sqnr, abs=1e-3), tensor
        gaps.append(best - min(sqnr.values()))
    # Not vacuous: the methods differ by whole decibels on some tensors, and more than one method wins somewhere.
    assert max(gaps) > 1.0, gaps
    assert len(set(choice.chosen.values())) >= 2, choice.chosen
    means = choice.mean_sqnr_db()
    assert all(means["auto"] >= means[m] for m in ranges), means
    counts = choice.counts(tuple(ranges))
    assert sum(counts.values()) == len(tensors) and list(counts) == list(ranges)


def test_a_tie_goes_to_the_first_candidate(calibrated):
    model, images, ranges = calibrated
    same = {"minmax": ranges["minmax"], "copy": ranges["minmax"]}
    choice = choose_ranges(model, same, images)
    assert set(choice.chosen.values()) == {"minmax"}


def test_fake_quantization_is_ort_quantize_dequantize(tmp_path):
    """The SQNR is of the arithmetic ONNX Runtime runs: QuantizeLinear → DequantizeLinear with ORT's scale."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.runtime.loader import ort_session

    values = np.random.default_rng(0).normal(0, 2, size=(4, 64)).astype(np.float32)
    scale, zero_point = uint8_params(np.float32(-1.5), np.float32(3.0))
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])],
        [
            helper.make_tensor("s", TensorProto.FLOAT, [], [float(scale)]),
            helper.make_tensor("z", TensorProto.UINT8, [], [int(zero_point)]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    path = tmp_path / "qdq.onnx"
    onnx.save_model(model, str(path))
    expected = ort_session(path, optimization="disable").run(["y"], {"x": values})[0]
    np.testing.assert_array_equal(fake_quantize(values, scale, zero_point), expected)
    assert zero_point == 85 and scale == pytest.approx(4.5 / 255)
