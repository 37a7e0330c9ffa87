"""Cross-layer equalization: exact on the fp32 graph, and it rescues per-tensor int8 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.pipeline.equalize import channel_fidelity, equalize_file, find_pairs
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load


def _uneven_net(path: Path) -> Path:
    """Conv → ReLU6 → depthwise → ReLU → conv whose first conv makes half its channels 100× smaller and the
    depthwise conv 100× larger again (what BatchNorm folding leaves), as ONNX."""
    import torch
    from torch import nn

    from edgecnn.pipeline.onnx_export import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
    ).eval()
    with torch.no_grad():  # activations stay under the ReLU6's 6 / MARGIN: every channel may move
        net[0].weight[1::2] /= 100
        net[2].weight[1::2] *= 100
        net[0].bias.zero_()
    export_onnx(net, (1, 1, 8, 8), path)
    return path


def _sqnr_db(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(a**2) / np.sum((a - b) ** 2)))


def test_equalization_keeps_the_fp32_outputs_and_rescues_per_tensor_weights(tmp_path):
    source = _uneven_net(tmp_path / "net.onnx")
    model = onnx.load(str(source))
    pairs = find_pairs(model)
    assert [(p.activation) for p in pairs] == ["Relu6", "Relu"], pairs
    rng = np.random.default_rng(0)
    calib, unseen = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (32, 64))
    equalized = tmp_path / "equalized.onnx"
    equalized.write_bytes(source.read_bytes())
    info = equalize_file(equalized, calib)
    assert info["applied"] and info["pairs"] == 2 and info["parity_relative_error"] <= 1e-4, info
    assert info["relu6_channels_held"] == 0, info
    assert info["channel_range_spread_after"] < info["channel_range_spread_before"] / 3, info
    before, after = (next(iter(load(p).run_all(unseen).values())) for p in (source, equalized))
    assert np.abs(after - before).max() <= 1e-4 * np.abs(before).max()  # unseen samples too: ReLU6 kept headroom
    figures = {}
    for equalize in (False, True):
        with Quantizer(source, calib, per_channel=False, equalize=equalize) as quantizer:
            quantizer.quantize(tmp_path / f"q{equalize}.onnx", "minmax")
            int8 = next(iter(load(tmp_path / f"q{equalize}.onnx", optimization="disable").run_all(unseen).values()))
            figures[equalize] = _sqnr_db(before, int8)
            assert (quantizer.equalization is not None) == equalize
    assert figures[True] > figures[False] + 10, figures


def test_channel_fidelity_counts_a_zeroed_channel_as_lost():
    even = np.ones((4, 3, 3, 3))
    uneven = even.copy()
    uneven[1] /= 1000  # under half a step of the per-tensor scale: rounded to zero
    assert channel_fidelity(even) == pytest.approx(60.0)  # exact, capped
    assert channel_fidelity(uneven) == pytest.approx(45.0)  # three exact channels, one lost (0 dB)
    assert channel_fidelity(np.zeros((2, 1, 1, 1))) == 0.0


def test_a_dense_second_conv_is_judged_by_what_its_outputs_lose():
    """Scaling half of a dense conv's input columns up by 16 (and what they read down by 16) hardly changes the
    weights' own per-channel SQNR, but the columns left alone now round with a 16× coarser step: the outputs
    lose ~20 dB. Weighed by what each column reads, the fidelity sees it."""
    rng = np.random.default_rng(0)
    weight, reads = rng.standard_normal((64, 64, 1, 1)), np.ones(64)
    scale = np.where(np.arange(64) < 32, 16.0, 1.0)
    moved = weight * scale.reshape(1, -1, 1, 1)
    assert channel_fidelity(weight) - channel_fidelity(moved) < 4  # blind to it
    assert channel_fidelity(weight, reads) - channel_fidelity(moved, reads / scale) > 15


def test_equalization_that_does_not_help_per_tensor_weights_is_not_applied(tmp_path):
    """Channels already even: nothing to gain, so the graph is left as it was and the record says why."""
    import torch
    from torch import nn

    from edgecnn.pipeline.onnx_export import export_onnx

    path = tmp_path / "even.onnx"
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1)).eval()
    with torch.no_grad():
        for conv in (net[0], net[2]):
            conv.weight.fill_(0.5)
            conv.bias.zero_()
    export_onnx(net, (1, 1, 8, 8), path)
    data = path.read_bytes()
    info = equalize_file(path, np.random.default_rng(0).uniform(0, 1, (4, 1, 8, 8)).astype(np.float32))
    assert info["applied"] is False and info["why"].startswith("per-tensor int8 weights keep the outputs no better")
    assert info["per_tensor_weights_sqnr_db"]["equalized"] == info["per_tensor_weights_sqnr_db"]["as_it_was"]
    assert path.read_bytes() == data


def test_a_channel_multiplier_is_not_a_pair(tmp_path):
    """A depthwise conv that makes two channels of each (groups = its inputs, twice as many outputs) reads the
    first conv's channels but not one to one: no pair, nothing changed (it used to fail on the shapes)."""
    from torch import nn

    from edgecnn.pipeline.onnx_export import export_onnx

    path = tmp_path / "multiplier.onnx"
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, groups=4)).eval()
    export_onnx(net, (1, 1, 8, 8), path)
    assert find_pairs(onnx.load(str(path))) == []
    assert equalize_file(path, np.zeros((2, 1, 8, 8), np.float32))["applied"] is False


@pytest.mark.slow
def test_a_relu6_network_whose_channels_clip_gains_from_equalization(tmp_path, trained_zoo):
    """The digits-trained MobileNetV1 (ReLU6 throughout) reaches 6 on most channels, which must keep their scale.
    The paper's scaling of the others widened the per-tensor ranges (int8 output SQNR 24.7 → 18.6 dB on
    quant_peers' model); each pair now takes a scaling only where it keeps the channels better."""
    import torch

    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify
    from tests.fixtures.digits import MEAN, STD, digits, normalise

    trained = trained_zoo("mobilenet")
    model = create_model(trained["name"], num_classes=10, in_chans=1, resolution=32, **trained["scaling"]).eval()
    model.load_state_dict(torch.load(trained["path"], weights_only=True))
    export_onnx(model, (1, 1, 32, 32), tmp_path / "raw.onnx")
    source = tmp_path / "fp32.onnx"
    simplify(tmp_path / "raw.onnx", source)
    train_x, _, test_x, _ = digits()
    calib, unseen = normalise(train_x[:128], MEAN, STD), normalise(test_x, MEAN, STD)
    fp32 = next(iter(load(source).run_all(unseen).values()))
    figures = {}
    for equalize in (False, True):
        with Quantizer(source, calib, per_channel=False, equalize=equalize) as quantizer:
            quantizer.quantize(tmp_path / "int8.onnx", "minmax")
            int8 = next(iter(load(tmp_path / "int8.onnx", optimization="disable").run_all(unseen).values()))
            figures[equalize] = (_sqnr_db(fp32, int8), quantizer.equalization)
    sqnr, info = figures[True]
    assert info["applied"] and info["relu6_channels_held"] > 100, info
    assert sqnr > figures[False][0] + 2, figures


def test_a_graph_without_pairs_is_left_alone(tmp_path):
    from torch import nn

    from edgecnn.pipeline.onnx_export import export_onnx

    path = tmp_path / "one.onnx"
    export_onnx(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()).eval(), (1, 1, 8, 8), path)
    data = path.read_bytes()
    info = equalize_file(path, np.zeros((2, 1, 8, 8), np.float32))
    assert info == {"pairs": 0, "applied": False, "why": "no Conv → ReLU/ReLU6 → Conv chain"}
    assert path.read_bytes() == data


@pytest.mark.slow
def test_a_per_tensor_profile_exports_equalized_int8_that_keeps_the_answers(tmp_path, export_trained):
    """android-nnapi-api28 takes per-tensor int8 weights: the export equalizes, quantizes per tensor — the ONNX and
    the .tflite — and the trained MobileNetV1 keeps its answers on held-out digits in both."""
    result = export_trained("mobilenet", tmp_path / "nnapi", profile="android-nnapi-api28", formats="onnx,tflite")
    quantize = result.manifest["stages"]["quantize"]
    tflite = result.manifest["stages"]["tflite"]["int8"]
    assert tflite["per_channel"] is False and tflite["equalization"]["applied"], tflite
    tflite_drift = result.manifest["drift"]["formats"]["tflite"]
    assert tflite_drift["judged"] and tflite_drift["passed"], tflite_drift
    assert quantize["per_channel"] is False and quantize["equalization"]["applied"], quantize
    assert result.manifest["profile"]["per_channel"] is False
    drift, agreement = result.manifest["drift"], result.manifest["agreement"]
    assert drift["judged"] and drift["passed"], drift["final"]["failures"]
    assert agreement["fp32_accuracy"] - agreement["int8_accuracy"] <= 0.01, agreement
    speed = drift["speed"]  # an ARM target: predicted by its latency model, not measured here
    assert speed["basis"].startswith("predicted by the android-nnapi-api28 latency model"), speed
    assert speed["faster"] == ("int8" if speed["int8_ms"] <= speed["fp32_ms"] else "fp32"), speed
