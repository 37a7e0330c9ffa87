"""Empirical bias correction: the int8 model's outputs lose the mean shift quantization gave them."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.pipeline.bias_correction import layer_shifts, quantized_layers
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load
from tests.pipeline.test_equalize import _sqnr_db, _uneven_net


def test_bias_correction_centres_the_int8_outputs(tmp_path):
    import onnx

    source = _uneven_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(1)
    calib, unseen = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (64, 64))
    reference = next(iter(load(source).run_all(unseen).values()))
    shift, sqnr = {}, {}
    for correct in (False, True):
        with Quantizer(source, calib, per_channel=False, bias_correct=correct) as quantizer:
            info = quantizer.quantize(tmp_path / f"q{correct}.onnx", "minmax")
            int8 = tmp_path / f"q{correct}.onnx"
            if correct:
                assert info["bias_correction"]["layers"] == 3, info["bias_correction"]
                layers = quantized_layers(onnx.load(str(int8)))
                assert [layer.op_type for layer in layers] == ["Conv"] * 3
            else:
                assert info["bias_correction"] is None
                before = layer_shifts(quantizer.preprocessed, int8, calib)
                assert len(before) == 3 and max(float(np.abs(s).max()) for s in before.values()) > 0
        out = next(iter(load(int8, optimization="disable").run_all(unseen).values()))
        shift[correct] = float(np.abs((out - reference).mean(axis=(0, 2, 3))).mean())
        sqnr[correct] = _sqnr_db(reference, out)
    assert shift[True] < shift[False] / 2, shift  # on samples it did not measure
    assert sqnr[True] > sqnr[False], sqnr


def _uneven_samples(tmp_path):
    """The uneven net of test_equalize, 32 calibration and 32 held-out random inputs."""
    rng = np.random.default_rng(2)
    calib, held = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (32, 32))
    return _uneven_net(tmp_path / "net.onnx"), calib, held


def _repair_unreachable(tmp_path, quantizer: Quantizer, held: np.ndarray):
    """Quantize by min-max and repair against an unreachable threshold (cosine 1.0): every remedy is tried."""
    from edgecnn.analysis.drift import EXACT_QDQ, Thresholds, evaluator
    from edgecnn.analysis.mixed_precision import repair_model

    reference = load(quantizer.source).run_all(held)
    evaluate = evaluator(held, reference, None, EXACT_QDQ, Thresholds(tasks="raw", min_cosine=1.0))
    int8, work = tmp_path / "int8.onnx", tmp_path / "work"
    quantizer.quantize(int8, "minmax")
    work.mkdir()
    return repair_model(
        quantizer,
        evaluate,
        int8,
        tmp_path / "fixed.onnx",
        work,
        evaluate(int8),
        method="minmax",
        reduce_range=False,
        images=held,
        saturating_target=False,
    )


def test_the_drift_repair_tries_bias_correction_after_the_calibration_methods(tmp_path):
    """An unreachable threshold makes the repair try every remedy: bias correction on the best global setting,
    recorded as a technique of its try; the mixed-precision tries inherit the best's techniques."""
    source, calib, held = _uneven_samples(tmp_path)
    with Quantizer(source, calib, per_channel=False) as quantizer:
        search, record = _repair_unreachable(tmp_path, quantizer, held)
    labels = [a["label"] for a in record["attempts"]]
    corrected = [a for a in record["attempts"] if a["label"].endswith("+ bias correct")]
    assert (
        labels[:4] == ["global: mean_minmax", "global: percentile", "global: entropy", "global: auto"]
        and len(corrected) == 1
    ), labels
    assert corrected[0]["techniques"] == ["bias_correct"], corrected
    rounded = [a for a in record["attempts"] if a["label"].endswith("+ round weights")]
    assert len(rounded) == 1 and "round_weights" in rounded[0]["techniques"], labels  # after bias correction
    assert labels.index(rounded[0]["label"]) == labels.index(corrected[0]["label"]) + 1, labels
    assert (record["calibration"] is not None) == (record["method"] == "auto"), record  # auto says what it chose
    best_global = max((a for a in search.attempts if a.label.startswith("global:")), key=lambda a: a.score)
    mixed = [a for a in search.attempts if a.label.startswith("mixed:")]
    assert mixed and all(a.techniques == best_global.techniques for a in mixed), [a.techniques for a in mixed]


def test_the_repair_tries_the_slow_op_types_float_only_when_the_int8_model_does_not_already(tmp_path):
    """The repair's first try keeps the op types slower in int8 float; an export's int8 (quantized with them float)
    is that graph already, so its repair does not redo it. Every try keeps them float."""
    from edgecnn.analysis.drift import EXACT_QDQ, Thresholds, evaluator
    from edgecnn.analysis.mixed_precision import repair_model

    source = _uneven_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(3)
    calib, held = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (16, 16))
    evaluate = evaluator(held, load(source).run_all(held), None, EXACT_QDQ, Thresholds(tasks="raw", min_cosine=1.0))
    labels = {}
    with Quantizer(source, calib) as quantizer:
        for already in (False, True):
            int8, work = tmp_path / f"int8-{already}.onnx", tmp_path / f"work-{already}"
            work.mkdir()
            quantizer.quantize(int8, "minmax", keep_float_op_types=("Clip",) if already else ())
            _, record = repair_model(
                quantizer, evaluate, int8, tmp_path / f"fixed-{already}.onnx", work, evaluate(int8),
                method="minmax", reduce_range=False, images=held, saturating_target=False,
                slow_op_types=("Clip",), slow_float_already=already,
            )  # fmt: skip
            labels[already] = [a["label"] for a in record["attempts"]]
            assert record["slow_int8_nodes"] and all(
                set(record["slow_int8_nodes"]) <= set(a["kept_float"]) for a in record["attempts"]
            ), record
    assert labels[False][0] == "latency: slow int8 ops in float", labels
    assert not any(label.startswith("latency:") for label in labels[True]), labels


@pytest.mark.parametrize("baseline_reduce_range", [True, False])
def test_on_a_saturating_target_the_repair_never_turns_reduce_range_off(tmp_path, baseline_reduce_range: bool):
    """Full 8-bit weights are what saturates x86 u8s8 kernels; reduce_range already keeps 8-bit weights wherever
    they do not (``pipeline.weight_bits``). A baseline without it gets a try with it."""
    from edgecnn.analysis.drift import EXACT_QDQ, Thresholds, evaluator
    from edgecnn.analysis.mixed_precision import repair_model

    source = _uneven_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(2)
    calib, held = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (16, 16))
    evaluate = evaluator(held, load(source).run_all(held), None, EXACT_QDQ, Thresholds(tasks="raw", min_cosine=1.0))
    with Quantizer(source, calib, per_channel=False) as quantizer:
        int8 = tmp_path / "int8.onnx"
        quantizer.quantize(int8, "minmax", reduce_range=baseline_reduce_range)
        work = tmp_path / "work"
        work.mkdir()
        _, record = repair_model(
            quantizer, evaluate, int8, tmp_path / "fixed.onnx", work, evaluate(int8), method="minmax",
            reduce_range=baseline_reduce_range, images=held, saturating_target=True,
        )  # fmt: skip
    globals_ = [a["label"] for a in record["attempts"] if a["label"].startswith("global:")]
    assert globals_
    turned = "reduce_range=False" if baseline_reduce_range else "reduce_range=True"
    assert any(turned in label for label in globals_) != baseline_reduce_range, globals_


def test_a_repair_from_a_corrected_int8_keeps_its_biases_corrected(tmp_path):
    """An int8 made with bias correction (the export's default): the repair's baseline has the technique, every try
    is corrected too (its record says so and its graph is the corrected one) and none tries it again."""
    source, calib, held = _uneven_samples(tmp_path)
    with Quantizer(source, calib, per_channel=False, bias_correct=True) as quantizer:
        search, record = _repair_unreachable(tmp_path, quantizer, held)
        assert record["attempts"] and "bias_correct" in search.best.techniques
        tries = record["attempts"]
        assert not [a for a in tries if "bias correct" in a["label"]], [a["label"] for a in tries]
        assert tries[0]["label"] == "global: mean_minmax" and all("bias_correct" in a["techniques"] for a in tries)
        corrected, plain = tmp_path / "corrected.onnx", tmp_path / "plain.onnx"
        quantizer.quantize(corrected, "percentile", bias_correct=True)
        quantizer.quantize(plain, "percentile", bias_correct=False)
    percentile = next(a for a in search.attempts if a.label == "global: percentile")
    made = load(percentile.path).run_all(held)
    for path, same in ((corrected, True), (plain, False)):
        other = load(path).run_all(held)
        assert all(np.array_equal(made[k], other[k]) for k in made) == same, path.name


@pytest.mark.slow
def test_the_export_corrects_biases_by_default_and_rounds_weights_when_asked(tmp_path, tinynet_checkpoint, digits_npz):
    """By default the export corrects the ORT and the `.tflite` int8 biases (the recipe's bias_correction);
    ``--weight-rounding`` also rounds both artifacts' int8 weights with error compensation (the recipe's
    weight_rounding, off); what changed is recorded and said in report.md. ``--no-bias-correction`` alone does
    neither."""
    from edgecnn import export

    def run(out: str, **options: object) -> dict:
        return export(
            "tests.fixtures.tinynet:build_net",
            weights=tinynet_checkpoint["path"],
            input_shape="1,1,32,32",
            calib=digits_npz["path"],
            calib_size=32,
            holdout=32,
            formats="onnx,tflite",
            fix=False,
            allow_drift=True,
            out=tmp_path / out,
            **options,
        ).manifest

    corrected = run("corrected", weight_rounding=True)
    ort, tflite = corrected["stages"]["quantize"]["bias_correction"], corrected["stages"]["tflite"]["int8"]
    assert ort["layers"] >= 2 and tflite["bias_correction"]["layers"] >= 2, (ort, tflite["bias_correction"])
    assert corrected["recipe"]["bias_correction"] is corrected["calibration"]["bias_correction"] is True
    assert ort["samples"] == tflite["bias_correction"]["samples"] == 32  # 32² digits: every calibration sample
    rounded, tflite_rounded = corrected["stages"]["quantize"]["weight_rounding"], tflite["weight_rounding"]
    assert rounded["layers"] == 4 and rounded["samples"] == 32 and rounded["weights_moved"] > 0, rounded
    assert tflite_rounded["layers"] == 4 and tflite_rounded["samples"] == 32, tflite_rounded
    assert corrected["recipe"]["weight_rounding"] is False and corrected["calibration"]["weight_rounding"] is True
    report = (tmp_path / "corrected" / "report.md").read_text()
    assert f"- ORT int8 biases corrected in {ort['layers']} layers" in report
    assert f"- int8 .tflite biases corrected in {tflite['bias_correction']['layers']} layers" in report
    assert "- ORT int8 weights rounded with error compensation in 4 layers on 32 calibration samples" in report
    assert "- int8 .tflite weights rounded with error compensation in 4 layers on 32 calibration samples" in report
    floated = corrected["stages"]["quantize"]["float_outputs"]  # the logits: the int8 Gemm writes them in float
    assert len(floated) == 1 and f"- ORT int8 output `{floated[0]}` written in float by its int8 Gemm" in report
    plain = run("plain", bias_correction=False)
    assert plain["calibration"]["bias_correction"] is plain["calibration"]["weight_rounding"] is False
    assert plain["stages"]["quantize"]["bias_correction"] is None
    assert plain["stages"]["quantize"]["weight_rounding"] is None
    assert plain["stages"]["tflite"]["int8"]["bias_correction"] is None
    assert plain["stages"]["tflite"]["int8"]["weight_rounding"] is None
    text = (tmp_path / "plain" / "report.md").read_text()
    assert "biases corrected" not in text and "weights rounded" not in text


def test_a_conv_the_correction_cannot_work_out_is_left_as_it_is(tmp_path):
    """A 1-D convolution (the mean response is worked out for 2-D ones) is not corrected and fails nothing: the
    export's default must not break a graph it cannot measure."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 2, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1], name="conv1d")
    graph = helper.make_graph(
        [conv],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16])],
        [weight, bias],
    )
    source = tmp_path / "conv1d.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), source)
    calib = rng.standard_normal((16, 2, 16)).astype(np.float32)
    with Quantizer(source, calib, bias_correct=True) as quantizer:
        record = quantizer.quantize(tmp_path / "int8.onnx", "minmax")["bias_correction"]
    assert record["layers"] == 0 and "skipped" not in record, record
    assert quantized_layers(onnx.load(str(tmp_path / "int8.onnx"))) == []


def test_the_correction_measures_on_a_pixel_budget_of_samples():
    from edgecnn.data.calibration import samples_within
    from edgecnn.lowering.linear_mean import CORRECTION_PIXELS

    big, small = np.zeros((128, 3, 224, 224), np.float32), np.zeros((128, 1, 32, 32), np.float32)
    assert samples_within(big, CORRECTION_PIXELS) == CORRECTION_PIXELS // (224 * 224) == 20
    assert samples_within(small, CORRECTION_PIXELS) == 128 and samples_within(small, CORRECTION_PIXELS, 16) == 16
    assert samples_within({"a": small, "b": big}, CORRECTION_PIXELS) == 20  # the largest input sets the count
    assert samples_within(np.zeros((8, 10), np.float32), 1) == 1 and samples_within(big[:1], 1) == 1
