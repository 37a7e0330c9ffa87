"""Per-tensor int8 weights for a per-channel target whose kernels are this host's: shipped only when timed faster
and as good on the drift samples; recorded; never for an export whose drift is not judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.config.profiles import load_profile
from edgecnn.config.recipes import recipe_for_family
from edgecnn.pipeline import granularity_choice
from edgecnn.pipeline.granularity_choice import MARGIN, SQNR_SLACK_DB, accept, pick
from edgecnn.pipeline.quantize import Quantizer, quantize_for_target


def _figures(min_ms: float, score: float = 1.0, sqnr_db: float = 30.0, passed: bool = True) -> dict:
    return {"min_ms": min_ms, "score": score, "sqnr_db": sqnr_db, "passed": passed}


def test_the_twin_is_taken_only_when_faster_by_the_margin_and_as_good():
    channel = _figures(1.0)
    assert accept(channel, _figures(0.9)) is None
    assert accept(channel, _figures(0.9, sqnr_db=30.0 - SQNR_SLACK_DB)) is None  # at the slack: taken
    assert "not faster" in accept(channel, _figures(1 - MARGIN / 2))  # within the spread of identical graphs
    assert "task score" in accept(channel, _figures(0.9, score=0.99))
    assert "SQNR" in accept(channel, _figures(0.9, sqnr_db=30.0 - SQNR_SLACK_DB - 0.1))
    assert "SQNR" in accept(channel, _figures(0.9, sqnr_db=float("nan")))
    assert "threshold" in accept(channel, _figures(0.9, passed=False))
    assert accept(_figures(1.0, passed=False), _figures(0.9, passed=False)) is None  # no worse than it was
    moved = {"moved_wrong": 5}
    assert accept({**channel, **moved}, {**_figures(0.9), **moved}) is None  # as many moved images changed
    assert "moved" in accept({**channel, **moved}, {**_figures(0.9), "moved_wrong": 6})


def test_the_fastest_twin_the_rule_accepts_ships():
    channel = _figures(1.0, sqnr_db=33.0)
    losing = _figures(0.90, sqnr_db=30.0)  # faster, but 3 dB below: refused
    mixed = _figures(0.93, sqnr_db=32.5)
    assert pick({"per_channel": channel, "per_tensor": losing, "mixed": mixed}) == ("mixed", {"per_tensor": accept(
        channel, losing)})  # fmt: skip
    assert pick({"per_channel": channel, "per_tensor": _figures(0.90, sqnr_db=33.0), "mixed": mixed})[0] == "per_tensor"
    chosen, refused = pick({"per_channel": channel, "per_tensor": losing, "mixed": _figures(0.99, sqnr_db=33.0)})
    assert chosen == "per_channel" and set(refused) == {"per_tensor", "mixed"} and "faster" in refused["mixed"]
    assert pick({"per_channel": channel, "per_tensor": _figures(0.5, sqnr_db=33.0)}) == ("per_tensor", {})


def _scale_sizes(path: Path, op_types: tuple[str, ...] = ("Conv",)) -> dict[str, int]:
    """Each int8 weight read by ``op_types`` in the graph at ``path`` → its DequantizeLinear scale's element count
    (1: per tensor)."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dequantize = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    weights = [dequantize[n.input[1]] for n in model.graph.node if n.op_type in op_types if n.input[1] in dequantize]
    return {d.input[0].removesuffix("_quantized"): int(np.size(inits[d.input[1]])) for d in weights}


def _weight_scales(path: Path) -> list[int]:
    """The element count of each conv weight's DequantizeLinear scale (1: per tensor)."""
    return list(_scale_sizes(path).values())


@pytest.mark.parametrize("as_good", [True, False])
def test_the_chosen_graph_and_its_quantizer_are_returned_and_the_other_is_closed(
    tmp_path: Path, tiny_fp32: Path, monkeypatch: pytest.MonkeyPatch, as_good: bool
):
    """With any speed-up enough (the margin set below -100%) the verdict decides: as good, the equalized per-tensor
    twin replaces the graph and its quantizer is returned (the first one closed); worse, the twin is dropped."""
    monkeypatch.setattr(granularity_choice, "MARGIN", -1.0)
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    recipe, profile = recipe_for_family("mobilenet"), load_profile("x86-avx2")
    judged: list[Path] = []

    def judge(path: Path) -> dict:
        judged.append(path)
        worse = not as_good and path.name == "per-tensor.onnx"
        return {"score": 0.5 if worse else 1.0, "sqnr_db": 30.0, "passed": True}

    dst = tmp_path / "int8.onnx"
    first = Quantizer(tiny_fp32, images, recipe.bins, recipe.percentile)
    info, _, chosen = quantize_for_target(first, dst, "minmax", recipe, profile, (), tmp_path / "work", judge)
    try:
        record = info["weights_choice"]
        assert {"per_channel", "per_tensor"} <= set(record["tries"]) <= {"per_channel", "per_tensor", "mixed"}
        assert len(judged) == len(record["tries"]) and ("mixed" in record["tries"]) == bool(
            record.get("mixed_per_channel_spread_db"))  # fmt: skip
        assert all(t["min_ms"] > 0 for t in record["tries"].values())
        assert "moved_images" not in record  # no flip judge given: the drift samples only
        scales = _weight_scales(dst)
        if as_good:
            assert record["chosen"] == "per_tensor" and "kept_per_channel_because" not in record
            assert chosen is not first and not first.work.exists() and chosen.work.exists()
            assert info["per_channel"] is False and info["equalization"] is not None
            assert scales and set(scales) == {1}  # one weight scale per conv
        else:
            assert record["chosen"] == "per_channel" and "task score" in record["kept_per_channel_because"]
            assert chosen is first and info["per_channel"] is True
            assert max(scales) > 1
        assert info["keep_float"]["slower_in_int8"]["candidates"] == []  # the float choice's record is kept
    finally:
        chosen.close()
        first.close()


def test_with_the_flip_judge_the_twin_is_also_judged_on_the_moved_images(
    tmp_path: Path, tiny_fp32: Path, monkeypatch: pytest.MonkeyPatch
):
    """The range choice's judge counts each graph's moved calibration images whose top-1 changes; the counts, their
    discordant split and the rule's verdict on them are recorded — the twin never ships changing more of them."""
    from edgecnn.pipeline.range_choice import flip_judge

    monkeypatch.setattr(granularity_choice, "MARGIN", -1.0)
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    recipe, profile = recipe_for_family("mobilenet"), load_profile("x86-avx2")
    flips, why = flip_judge(tiny_fp32, images)
    assert flips is not None, why

    def judge(path: Path) -> dict:
        return {"score": 1.0, "sqnr_db": 30.0, "passed": True}

    first = Quantizer(tiny_fp32, images, recipe.bins, recipe.percentile)
    info, _, chosen = quantize_for_target(
        first, tmp_path / "int8.onnx", "minmax", recipe, profile, (), tmp_path / "work", judge, flips=flips
    )
    try:
        record, tries = info["weights_choice"], info["weights_choice"]["tries"]
        moved = record["moved_images"]
        assert moved["images"] == len(flips.images) == 8 * 25
        channel, tensor = tries["per_channel"]["moved_wrong"], tries["per_tensor"]["moved_wrong"]
        split = moved["per_tensor"]
        assert tensor - channel == split["only_twin_wrong"] - split["only_per_channel_wrong"]
        assert record["chosen"] == ("per_channel" if tensor > channel else "per_tensor")
        assert (tensor > channel) == ("moved" in record.get("kept_per_channel_because", ""))
        assert 0 < split["p"] <= 1
    finally:
        chosen.close()
        first.close()


def test_without_a_judge_or_for_a_target_not_timed_here_nothing_is_tried(tmp_path: Path, tiny_fp32: Path):
    images = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    recipe = recipe_for_family("mobilenet")

    def judge(path: Path) -> dict:
        raise AssertionError("no twin is judged")

    with Quantizer(tiny_fp32, images) as quantizer:
        for profile, given in (("x86-avx2", None), ("raspberrypi4", judge)):
            info, _, chosen = quantize_for_target(
                quantizer, tmp_path / f"{profile}.onnx", "minmax", recipe, load_profile(profile), (), tmp_path, given
            )
            assert chosen is quantizer and "weights_choice" not in info and info["per_channel"] is True


def test_an_x86_export_of_a_trained_net_records_its_choice_and_ships_it(shared_export):
    """The digits EfficientNet on x86-avx2: both graphs timed and judged on the drift samples and the moved
    calibration images, the recorded
    choice is the rule's on the recorded figures (which one wins is the host's business, not the test's), and the
    shipped `.onnx` has the chosen weights."""
    result = shared_export("efficientnet")
    quantize = result.manifest["stages"]["quantize"]
    record = quantize["weights_choice"]
    tries = record["tries"]
    chosen, refused = pick(tries)
    assert all("moved_wrong" in t for t in tries.values()) and record["moved_images"]["images"] > 0  # a classifier
    assert record["chosen"] == chosen and (chosen == "per_channel") == ("kept_per_channel_because" in record)
    assert all(why in record.get("kept_per_channel_because", "") for why in refused.values()) or chosen != "per_channel"
    assert quantize["per_channel"] == (chosen == "per_channel")
    scales = _weight_scales(result.artifacts["int8_onnx"])
    granularity = {"per_tensor": {1}, "per_channel": {0}, "mixed": {0, 1}}[chosen]  # 1: one scale per tensor
    assert scales and {int(size == 1) for size in scales} == granularity
    assert result.manifest["drift"]["passed"], result.manifest["drift"]["final"]
    report = (result.out / "report.md").read_text()
    assert f"- ORT int8 weights: {record['chosen'].replace('_', ' ')} — per channel" in report


def test_with_the_method_pinned_the_weights_choice_still_counts_the_moved_images(tmp_path: Path, export_trained):
    """``--method minmax`` pins the ranges (no range choice, and the record says why) but not the weights: the x86
    export's weights choice is judged on the moved calibration digits as without it."""
    result = export_trained("mobilenet", tmp_path / "x", profile="x86-avx2", formats="onnx", method="minmax")
    quantize = result.manifest["stages"]["quantize"]
    assert quantize["range_choice"] == {"chosen": "minmax", "not_chosen_because": "--method minmax given"}
    record = quantize["weights_choice"]
    tries = record["tries"]
    assert all("moved_wrong" in t for t in tries.values()) and record["moved_images"]["images"] == 25 * 128
    assert record["chosen"] == pick(tries)[0]


def test_an_export_whose_drift_is_not_judged_keeps_the_profiles_granularity(tmp_path: Path):
    from edgecnn.pipeline.export import export

    result = export("mobilenet_v1", out=tmp_path / "x", width=0.25, resolution=32, formats="onnx", calib_size=8)
    quantize = result.manifest["stages"]["quantize"]
    assert "weights_choice" not in quantize and quantize["per_channel"] is True
    assert max(_weight_scales(result.artifacts["int8_onnx"])) > 1


def test_a_twin_that_cannot_be_made_or_judged_leaves_the_per_channel_graph_and_says_why(
    tmp_path: Path, tiny_fp32: Path
):
    images = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    recipe, profile = recipe_for_family("mobilenet"), load_profile("x86-avx2")

    def judge(path: Path) -> dict:
        raise ValueError("the judge cannot read this model\nsecond line")

    with Quantizer(tiny_fp32, images) as quantizer:
        dst = tmp_path / "int8.onnx"
        info, _, chosen = quantize_for_target(quantizer, dst, "minmax", recipe, profile, (), tmp_path / "w", judge)
        assert chosen is quantizer and info["per_channel"] is True and max(_weight_scales(dst)) > 1
    assert info["weights_choice"] == {
        "chosen": "per_channel",
        "kept_per_channel_because": "no per-tensor twin: the judge cannot read this model",
    }


def _weight_granularity(path: Path) -> dict[str, bool]:
    """Each int8 weight of the graph at ``path`` (Conv, Gemm, MatMul): whether its DequantizeLinear has one scale
    per channel."""
    return {w: size > 1 for w, size in _scale_sizes(path, ("Conv", "Gemm", "MatMul")).items()}


@pytest.mark.slow
def test_drift_fix_of_a_mixed_export_quantizes_it_mixed_again(
    tmp_path: Path, export_trained, digits_npz, monkeypatch: pytest.MonkeyPatch
):
    """The digits MobileNetV1 has layers whose spread is wide, so its x86 export makes a mixed twin; with the choice
    made to ship it (``pick`` forced: which graph wins is the host's timing), the `.onnx` keeps per-channel weights
    exactly in those layers, the manifest names them, and `drift --fix` re-quantizes it as the same mixed graph."""
    import math

    from edgecnn.analysis.drift import Thresholds
    from edgecnn.commands.drift import drift

    monkeypatch.setattr(granularity_choice, "pick", lambda tries: ("mixed" if "mixed" in tries else "per_channel", {}))
    result = export_trained("mobilenet", tmp_path / "x86", profile="x86-avx2", formats="onnx")
    quantize = result.manifest["stages"]["quantize"]
    assert quantize["weights_choice"]["chosen"] == "mixed", quantize["weights_choice"]
    wide = set(quantize["per_channel_weights"])
    assert wide == set(quantize["weights_choice"]["mixed_per_channel_spread_db"]) and wide
    fp32, target = result.artifacts["fp32_onnx"], result.artifacts["int8_onnx"]
    shipped = _weight_granularity(target)
    assert {w for w, per_channel in shipped.items() if per_channel} == wide and quantize["per_channel"] is False
    before = drift(str(fp32), str(target), digits_npz["path"], layers=False)
    halfway = Thresholds(min_cosine=math.floor((1 - (1 - before["cosine"]) / 2) * 1e6) / 1e6)  # fails: repaired
    out = tmp_path / "fixed.onnx"
    report = drift(str(fp32), str(target), digits_npz["path"], thresholds=halfway, fix=True, out=out, layers=False)
    assert report["fix"]["attempts"] and out.is_file(), report["fix"]
    repaired = _weight_granularity(out)  # its tries may keep some layers float: the others are as shipped
    assert repaired and all(shipped[w] == per_channel for w, per_channel in repaired.items()), repaired
