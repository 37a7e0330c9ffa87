"""Min-max, mean-of-extremes or auto activation ranges, chosen per model by the top-1 decisions kept on the
calibration samples moved: the moves, the mean-of-extremes calibration (ORT and .tflite), the rule, and the export's
record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecnn.analysis.metrics import sign_p
from edgecnn.pipeline.range_choice import CANDIDATES, FlipJudge, decide, flip_judge, moved, shifts_px
from tests.fixtures.onnx_models import tiny_onnx


def test_the_shifts_are_fractions_of_the_shorter_side_each_at_least_a_pixel_and_once():
    assert shifts_px(32, 32) == (1, 2, 3) and shifts_px(224, 224) == (7, 14, 21) and shifts_px(224, 160) == (5, 10, 15)
    assert shifts_px(8, 8) == (1,)  # 0.25, 0.5 and 0.75 px all round up to one pixel


def test_moved_holds_the_images_then_eight_moves_with_each_channels_lowest_value_in_the_border():
    images = np.arange(2 * 2 * 4 * 4, dtype=np.float32).reshape(2, 2, 4, 4) + 1
    out = moved(images, 1)
    assert out.shape == (18, 2, 4, 4) and out.dtype == np.float32 and moved(images, 1, 2).shape == (34, 2, 4, 4)
    assert np.array_equal(moved(images, 1, 2)[:18], out)
    assert np.array_equal(out[:2], images)
    lowest = images.min(axis=(0, 2, 3))  # per channel, over every image: 1 and 17
    down_right = out[2 + 2 * 7]  # the 8th move, (1, 1), of the first image
    assert down_right[0, 0].tolist() == [lowest[0]] * 4 and down_right[1, :, 0].tolist() == [lowest[1]] * 4
    assert np.array_equal(down_right[:, 1:, 1:], images[0, :, :3, :3])
    up_left = out[2]  # the 1st move, (-1, -1)
    assert np.array_equal(up_left[:, :3, :3], images[0, :, 1:, 1:]) and up_left[0, 3].tolist() == [lowest[0]] * 4
    assert len({out[2 + 2 * k].tobytes() for k in range(8)}) == 8


def test_the_method_with_the_fewest_images_wrong_is_chosen_a_tie_keeping_the_earlier():
    minmax, mean, auto = CANDIDATES
    same = frozenset(range(100))
    assert decide({minmax: same, mean: same, auto: same})[0] == minmax  # a tie keeps min-max
    assert decide({minmax: frozenset({1, 2}), mean: frozenset({3}), auto: frozenset({4})})[0] == mean  # then the mean
    many = frozenset(range(20))
    chosen, figures = decide({minmax: many, mean: frozenset({0, 1, 50}), auto: frozenset({0, 60})})
    assert chosen == auto and figures["disagreements"] == {minmax: 20, mean: 3, auto: 2}
    assert figures["against"] == {
        minmax: {"only_chosen_wrong": 1, "only_other_wrong": 19, "p": sign_p(1, 19)},
        mean: {"only_chosen_wrong": 1, "only_other_wrong": 2, "p": sign_p(1, 2)},
    }
    chosen, figures = decide({minmax: frozenset({1}), mean: many, auto: many})  # min-max ahead: no split for itself
    assert chosen == minmax and set(figures["against"]) == {mean, auto}


def test_mean_of_extremes_ranges_are_each_samples_extremes_averaged_and_the_input_keeps_min_max(
    tmp_path: Path, tiny_fp32: Path
):
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgecnn.analysis.layerwise import tensor_batches
    from edgecnn.pipeline.quantize import Quantizer

    images = np.random.default_rng(0).standard_normal((6, 1, 32, 32)).astype(np.float32)
    with Quantizer(tiny_fp32, images) as quantizer:
        mean = {t: d.range_value for t, d in load_tensors_data(quantizer.ranges("mean_minmax")).items()}
        minmax = {t: d.range_value for t, d in load_tensors_data(quantizer.ranges("minmax")).items()}
        info = quantizer.quantize(tmp_path / "mean.onnx", "mean_minmax")
        (name,) = quantizer.input_names
        computed = sorted(t for t in mean if t != name)[:4]
        per_sample = {t: [] for t in computed}
        for sample in images:
            for batch in tensor_batches(quantizer.preprocessed, computed, sample[None]):
                for tensor, values in batch.items():
                    per_sample[tensor].append((values.min(), values.max()))
    assert info["method"] == "mean_minmax" and info["calibrator_options"] == {"moving_average": True}
    assert np.allclose(mean[name], minmax[name])  # the input's range is the data's own
    for tensor, extremes in per_sample.items():
        np.testing.assert_allclose(np.ravel(mean[tensor]), np.mean(extremes, axis=0), rtol=1e-5, atol=1e-6)
    inside = [minmax[t][0] <= mean[t][0] and mean[t][1] <= minmax[t][1] for t in mean]
    narrower = [mean[t][1] - mean[t][0] < minmax[t][1] - minmax[t][0] for t in mean if t != name]
    assert all(inside) and any(narrower)


def test_mean_of_extremes_of_a_static_batch_model_still_averages_each_samples_extremes(tmp_path: Path):
    """ORT's calibrator averages each batch's extremes: a model of static batch 2 averaged pairs' (the larger of two
    maxima), wider than the mean of each sample's. Each batch now holds one sample and its copy."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgecnn.analysis.layerwise import tensor_batches
    from edgecnn.pipeline.quantize import Quantizer

    images = np.random.default_rng(0).standard_normal((6, 1, 32, 32)).astype(np.float32)
    with Quantizer(tiny_onnx(tmp_path, batch=2), images) as quantizer:
        assert quantizer.batch == 2
        mean = {t: d.range_value for t, d in load_tensors_data(quantizer.ranges("mean_minmax")).items()}
        computed = sorted(t for t in mean if t not in quantizer.input_names)[:4]
        per_sample = {t: [] for t in computed}
        for sample in images:
            for batch in tensor_batches(quantizer.preprocessed, computed, np.repeat(sample[None], 2, axis=0)):
                for tensor, values in batch.items():
                    per_sample[tensor].append((values.min(), values.max()))
    for tensor, extremes in per_sample.items():
        np.testing.assert_allclose(np.ravel(mean[tensor]), np.mean(extremes, axis=0), rtol=1e-5, atol=1e-6)


def test_the_tflite_mean_of_extremes_averages_each_samples_extremes_and_keeps_the_inputs_min_max(tiny_fp32: Path):
    pytest.importorskip("ai_edge_quantizer")
    import onnx

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.flatbuffer import tensor_values
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.tflite_calibration import TfliteCalibration

    lowered = convert(onnx.load(str(tiny_fp32)))
    images = np.random.default_rng(1).standard_normal((5, 1, 32, 32)).astype(np.float32)
    quantizer = TfliteQuantizer(lowered.data, images, lowered.input_layout, calibrator=TfliteCalibration)
    calibration = quantizer.calibrated
    minmax, mean = calibration("minmax"), calibration("mean_minmax")
    changed = [t for t in mean if not np.allclose(mean[t], minmax[t])]
    assert changed and all(minmax[t][0] <= mean[t][0] and mean[t][1] <= minmax[t][1] for t in mean)
    tensor = changed[0]
    values = [batch[tensor] for batch in tensor_values(lowered.data, [tensor], quantizer.calibration_samples)]
    np.testing.assert_allclose(mean[tensor], (np.mean([v.min() for v in values]), np.mean([v.max() for v in values])),
                               rtol=1e-5)  # fmt: skip
    inputs = [t for t in mean if t not in changed and mean[t][0] < 0]
    assert inputs  # the input (normal samples, min below 0) keeps its min-max range
    assert quantizer.quantize_bytes(method="mean_minmax").method == "mean_minmax"


def test_the_tflite_mean_of_extremes_of_a_static_batch_model_averages_each_samples_extremes(tmp_path: Path):
    """The .tflite's mean-of-extremes as the ORT path's: one sample a feed, the copies filling the last feed of 5
    samples left out."""
    pytest.importorskip("ai_edge_quantizer")
    import onnx

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.flatbuffer import tensor_values
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.tflite_calibration import TfliteCalibration

    lowered = convert(onnx.load(str(tiny_onnx(tmp_path, batch=2))))
    images = np.random.default_rng(1).standard_normal((5, 1, 32, 32)).astype(np.float32)
    quantizer = TfliteQuantizer(lowered.data, images, lowered.input_layout, calibrator=TfliteCalibration)
    assert len(quantizer.calibration_samples) == 3  # batches of 2, the last one filled up
    minmax, mean = quantizer.calibrated("minmax"), quantizer.calibrated("mean_minmax")
    tensor = next(t for t in mean if not np.allclose(mean[t], minmax[t]))
    feeds = [quantizer.samples(np.repeat(image[None], 2, axis=0))[0] for image in images]  # each image twice
    values = [batch[tensor] for batch in tensor_values(lowered.data, [tensor], feeds)]
    expected = (np.mean([v.min() for v in values]), np.mean([v.max() for v in values]))
    np.testing.assert_allclose(mean[tensor], expected, rtol=1e-5)


def test_the_choice_is_made_only_for_a_single_image_input_with_a_classification_output(tmp_path: Path, tiny_fp32):
    images = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    judge, why = flip_judge(tiny_fp32, images)
    assert why is None and judge.shifts == (1, 2, 3) and len(judge.images) == 3 * 25
    assert judge(tiny_fp32) == frozenset()  # fp32 against itself: nothing changes
    assert flip_judge(tiny_fp32, images, "*=raw")[1].startswith("no output is judged as classification")
    assert "one N×C×H×W image" in flip_judge(tiny_fp32, {"x": images})[1]


def _activation_scales(path: Path) -> list[float]:
    """The scale of every QuantizeLinear of a QDQ graph whose input is not a constant, in graph order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [
        float(values[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in values
    ]


def _forced(monkeypatch: pytest.MonkeyPatch, chosen: str) -> None:
    """The rule made to choose ``chosen`` whatever the figures (which are still measured and recorded)."""
    from edgecnn.pipeline import range_choice

    measured = range_choice.decide
    monkeypatch.setattr(range_choice, "decide", lambda wrong: (chosen, measured(wrong)[1]))


@pytest.mark.parametrize("method", ["mean_minmax", "auto"])
def test_the_chosen_graph_is_the_one_a_fresh_quantization_by_that_method_makes(
    tmp_path: Path, tiny_fp32: Path, monkeypatch: pytest.MonkeyPatch, method: str
):
    from edgecnn.config.profiles import load_profile
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.pipeline.quantize import Quantizer, quantize_for_target

    _forced(monkeypatch, method)
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    recipe, profile = recipe_for_family("mobilenet"), load_profile("raspberrypi4")
    judge, _ = flip_judge(tiny_fp32, images)
    with Quantizer(tiny_fp32, images, bias_correct=True) as quantizer:
        dst, fresh = tmp_path / "chosen.onnx", tmp_path / "fresh.onnx"
        info, op_types, _ = quantize_for_target(
            quantizer, dst, "minmax", recipe, profile, (), tmp_path / "w", flips=judge
        )
        quantizer.quantize(fresh, method, profile.reduce_range, op_types)
        pinned = tmp_path / "minmax.onnx"
        quantizer.quantize(pinned, "minmax", profile.reduce_range, op_types)
    assert info["method"] == method and info["range_choice"]["chosen"] == method
    assert info["range_choice"]["images"] == 8 * 25 and sum(info["range_choice"]["disagreements"].values()) >= 0
    assert info["range_choice"]["judged_on"] == "the graph that ships: per-channel weights, float op types " + (
        ", ".join(op_types) or "none"
    )
    assert _activation_scales(dst) == _activation_scales(fresh) != _activation_scales(pinned)


def test_the_choice_is_made_last_on_the_weights_the_weights_choice_ships(
    tmp_path: Path, tiny_fp32: Path, monkeypatch: pytest.MonkeyPatch
):
    """On a target whose weights are weighed, the twins are judged at min-max ranges and the range choice is then
    made on the twin that ships: the shipped graph is that twin quantized afresh by the chosen method, per tensor."""
    from edgecnn.pipeline import granularity_choice

    _forced(monkeypatch, "auto")
    monkeypatch.setattr(granularity_choice, "pick", lambda tries: ("per_tensor", {}))
    first, twin, info, op_types, reduce_range = _for_x86(tmp_path, tiny_fp32)
    dst, fresh = tmp_path / "chosen.onnx", tmp_path / "fresh.onnx"
    try:
        assert twin is not first and info["weights_choice"]["chosen"] == "per_tensor"
        assert info["weights_choice"]["ranges"] == "minmax"  # the twins were judged at the method asked for
        assert info["method"] == "auto" and info["per_channel"] is False
        assert info["range_choice"]["judged_on"].startswith("the graph that ships: per-tensor weights")
        twin.quantize(fresh, "auto", reduce_range, op_types)
        assert _activation_scales(dst) == _activation_scales(fresh)
        assert _weight_scale_sizes(dst) == {1}  # one scale per weight tensor
        judged = (tmp_path / "w" / "per-tensor.onnx").read_bytes()  # the twin the weights choice timed and judged
        assert (tmp_path / "w" / "range-choice" / "ranges-minmax.onnx").read_bytes() == judged
        assert _activation_scales(tmp_path / "w" / "per-tensor.onnx") != _activation_scales(dst)
        for method in CANDIDATES:  # every candidate the range choice judged was the twin's, per tensor
            assert _weight_scale_sizes(tmp_path / "w" / "range-choice" / f"ranges-{method}.onnx") == {1}
    finally:
        twin.close()
        first.close()


def _for_x86(tmp_path: Path, tiny_fp32: Path, twin_auto: int | None = None) -> tuple[Any, Any, dict, tuple, bool]:
    """``quantize_for_target`` into ``tmp_path/chosen.onnx`` for x86-avx2, whose weights are weighed (every graph as
    good on the drift samples), the moved images of 8 random samples judging — as scripted when ``twin_auto`` is
    given (:class:`_ScriptedJudge`): the quantizer given, the one returned, the info, the float op types and the
    profile's reduce_range."""
    from edgecnn.config.profiles import load_profile
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.pipeline.quantize import Quantizer, quantize_for_target

    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    recipe, profile = recipe_for_family("mobilenet"), load_profile("x86-avx2")
    judge, _ = flip_judge(tiny_fp32, images)
    if twin_auto is not None:
        judge = _ScriptedJudge(judge.images, judge.top1, judge.shifts, twin_auto=twin_auto)
    first = Quantizer(tiny_fp32, images, recipe.bins, recipe.percentile)
    info, op_types, chosen = quantize_for_target(
        first, tmp_path / "chosen.onnx", "minmax", recipe, profile, (), tmp_path / "w",
        lambda path: {"score": 1.0, "sqnr_db": 30.0, "passed": True}, flips=judge,
    )  # fmt: skip
    return first, chosen, info, op_types, profile.reduce_range


@dataclass(frozen=True)
class _ScriptedJudge(FlipJudge):
    """Moved images wrong by the graph's weights (one scale per tensor: the twin) and ranges (auto's graphs are named
    so), as scripted: the twin as good as the per-channel graph at min-max ranges, ``twin_auto`` wrong at auto's."""

    twin_auto: int = 0

    def __call__(self, path: Path) -> frozenset[int]:
        from edgecnn.pipeline.source import sha256_file

        key = sha256_file(path)  # a graph copied under another name keeps its first verdict, as the real judge's
        if key not in self.judged:
            twin, auto = _weight_scale_sizes(path) == {1}, path.stem.endswith("auto")
            wrong = {(True, True): self.twin_auto, (True, False): 3, (False, True): 2}.get((twin, auto), 4)
            self.judged[key] = frozenset(range(wrong))
        return self.judged[key]


@pytest.mark.parametrize(("twin_auto", "shipped"), [(9, "per_channel"), (1, "per_tensor")])
def test_a_twin_worse_at_the_ranges_chosen_for_it_gives_way_to_the_per_channel_graph(
    tmp_path: Path, tiny_fp32: Path, monkeypatch: pytest.MonkeyPatch, twin_auto: int, shipped: str
):
    """The twin, as good at min-max ranges, is tried against the per-channel graph at the ranges the range choice
    took for it: when it changes more moved images' top-1 there, the per-channel graph ships, with its own range
    choice; else the twin."""
    from edgecnn.pipeline import granularity_choice

    _forced(monkeypatch, "auto")
    monkeypatch.setattr(granularity_choice, "MARGIN", -1.0)  # every twin is fast enough
    first, chosen, info, op_types, reduce_range = _for_x86(tmp_path, tiny_fp32, twin_auto)
    dst, fresh = tmp_path / "chosen.onnx", tmp_path / "fresh.onnx"
    try:
        weights = info["weights_choice"]
        assert weights["chosen"] == shipped and info["method"] == "auto"
        assert weights["at_chosen_ranges"] == {"ranges": "auto", "twin_wrong": twin_auto, "per_channel_wrong": 2}
        assert info["per_channel"] is (shipped == "per_channel") and (chosen is first) is (shipped == "per_channel")
        if shipped == "per_channel":
            assert "at the auto ranges the range choice took for it" in weights["kept_per_channel_because"]
            assert max(_weight_scale_sizes(dst)) > 1
            first.quantize(fresh, "auto", reduce_range, op_types)
            assert _activation_scales(dst) == _activation_scales(fresh)
            assert info["range_choice"]["judged_on"].startswith("the graph that ships: per-channel weights")
        else:
            assert _weight_scale_sizes(dst) == {1}
    finally:
        chosen.close()
        first.close()


def _weight_scale_sizes(path: Path) -> set[int]:
    """The sizes of the scales of the DequantizeLinear nodes of constant int8 weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        int(values[n.input[1]].size)
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in values and values[n.input[0]].dtype.name == "int8"
    }


def test_a_choice_that_fails_keeps_min_max_and_says_why(tmp_path: Path, tiny_fp32: Path):
    from edgecnn.config.profiles import load_profile
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.pipeline.quantize import Quantizer, quantize_for_target
    from edgecnn.pipeline.range_choice import FlipJudge

    images = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    broken = FlipJudge(moved(images, 1), {"no-such-output": np.zeros(36, int)}, (1,))
    recipe, profile = recipe_for_family("mobilenet"), load_profile("raspberrypi4")
    with Quantizer(tiny_fp32, images) as quantizer:
        info, _, _ = quantize_for_target(
            quantizer, tmp_path / "x.onnx", "minmax", recipe, profile, (), tmp_path / "w", flips=broken
        )
    assert info["method"] == "minmax"
    assert info["range_choice"] == {"chosen": "minmax", "not_chosen_because": "range choice failed: 'no-such-output'"}


def test_an_export_of_a_trained_classifier_records_the_choice_by_the_rule(tmp_path: Path, export_trained):
    """The digits MobileNetV1: every candidate's ranges judged on the 128 calibration digits moved 1, 2 and 3 px
    (3,200 images), the recorded choice is the rule's on the recorded figures and the manifest repeats it. Pinning
    --method minmax makes no choice and says why."""
    result = export_trained("mobilenet", tmp_path / "x", profile="raspberrypi4", formats="onnx")
    quantize = result.manifest["stages"]["quantize"]
    record = quantize["range_choice"]
    assert record["images"] == 25 * 128 and record["shifts_px"] == [1, 2, 3]
    counts = record["disagreements"]
    expected = min(CANDIDATES, key=lambda method: (counts[method], CANDIDATES.index(method)))
    assert record["chosen"] == expected == quantize["method"] == result.manifest["calibration"]["method"]
    assert set(record["against"]) == set(CANDIDATES) - {expected}
    assert result.manifest["calibration"]["range_choice"] == record
    assert f"- activation ranges: {record['chosen']} — top-1 changed on" in (tmp_path / "x" / "report.md").read_text()
    pinned = export_trained("mobilenet", tmp_path / "y", profile="raspberrypi4", formats="onnx", method="minmax")
    stage = pinned.manifest["stages"]["quantize"]
    assert stage["range_choice"] == {"chosen": "minmax", "not_chosen_because": "--method minmax given"}
    assert stage["method"] == "minmax"


def test_every_int8_artifact_of_the_export_follows_a_mean_of_extremes_choice(
    tmp_path: Path, export_trained, monkeypatch: pytest.MonkeyPatch
):
    """Made to choose mean-of-extremes: the ORT graph and the int8 .tflite are calibrated by it, the manifest's
    method is it (the one asked for beside it), and report.md says so."""
    _forced(monkeypatch, "mean_minmax")
    result = export_trained("mobilenet", tmp_path / "x", profile="raspberrypi4", formats="onnx,tflite")
    calibration = result.manifest["calibration"]
    assert calibration["method"] == "mean_minmax" and calibration["method_asked"] == "minmax"
    assert result.manifest["stages"]["quantize"]["calibrator_options"] == {"moving_average": True}
    assert result.manifest["stages"]["tflite"]["int8"]["method"] == "mean_minmax"
    report = (tmp_path / "x" / "report.md").read_text()
    assert "- mean_minmax on 128 samples" in report and "- activation ranges: mean_minmax — top-1 changed on" in report
    assert "; judged on the graph that ships: per-channel weights, float op types" in report


def test_an_export_whose_drift_is_not_judged_keeps_min_max_and_says_why(tmp_path: Path):
    from edgecnn.pipeline.export import export

    result = export("mobilenet_v1", out=tmp_path / "x", width=0.25, resolution=32, formats="onnx", calib_size=8)
    record = result.manifest["stages"]["quantize"]["range_choice"]
    assert record["chosen"] == "minmax" and record["not_chosen_because"].startswith("drift is not judged")
