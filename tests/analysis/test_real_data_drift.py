"""Real data: a network of every family, trained on digits, exported with default settings, must keep its answers.

≥ 99% top-1 agreement between the fp32 and the int8 artifact, and ≤ 1 point accuracy drop, on held-out digits
— repaired by the export's drift stage where plain int8 falls short; and the same for the int8 .tflite. The
exports are the shared ones (``shared_export``: x86-avx2, this host's profile, every timed choice made).
"""

import pytest

from tests.conftest import TRAINED_FAMILIES


@pytest.mark.slow
@pytest.mark.parametrize("family", list(TRAINED_FAMILIES))
def test_int8_keeps_the_answers_of_every_family(family, trained_zoo, shared_export):
    model = trained_zoo(family)
    assert model["accuracy"] >= 0.8, f"{family} did not train: {model['accuracy']:.3f}"
    # DCN reaches TFLite through the gather decomposition
    result = shared_export(family)
    drift = result.manifest["drift"]
    agreement = result.manifest["agreement"]
    assert drift["judged"] and drift["passed"], drift["final"]["failures"]
    assert agreement["samples"] == 232 and agreement["basis"] == "host_kernels"
    assert agreement["top1"] >= 0.99
    assert agreement["fp32_accuracy"] - agreement["int8_accuracy"] <= 0.01
    tflite = agreement["formats"]["tflite"]
    assert drift["formats"]["tflite"]["passed"], drift["formats"]["tflite"]["failures"]
    assert tflite["top1_agreement"] >= 0.99 and tflite["accuracy_drop_points"] <= 1.0
    if family == "dcn":  # the int8 .tflite keeps the deformable sampling path (offset branch included) float
        assert result.manifest["stages"]["tflite"]["int8"]["float_scopes"] == 1
    if "fix" in drift:  # a repair happened: it says what it kept in float and what that cost
        assert drift["fix"]["attempts"] and drift["fix"]["bytes_after"] > 0
        assert drift["initial"]["passed"] is False


@pytest.mark.slow
def test_dcn_gather_fallback_int8_keeps_the_answers(tmp_path, export_trained):
    """The gather decomposition of DeformConv, int8 with its sampling path in float, agrees with fp32. Exported
    for an ARM board with min-max ranges: no timed choice, no range choice (both have tests of their own; on
    x86-avx2 they make this export five times slower)."""
    import onnx

    result = export_trained(
        "dcn", tmp_path / "dcn-gather", formats="onnx,ort", deform="gather", profile="raspberrypi4", method="minmax"
    )
    manifest = result.manifest
    assert manifest["stages"]["simplify"]["deform"]["rewritten"] >= 1
    for key in ("fp32_onnx", "int8_onnx"):
        assert not any(n.op_type == "DeformConv" for n in onnx.load(str(result.artifacts[key])).graph.node)
    assert manifest["drift"]["judged"] and manifest["drift"]["passed"], manifest["drift"]["final"]["failures"]
    assert manifest["agreement"]["top1"] >= 0.99
    assert manifest["agreement"]["fp32_accuracy"] - manifest["agreement"]["int8_accuracy"] <= 0.01


def test_figures_that_are_not_finite_fail():
    """A NaN passes every "<" test: outputs that overflow must fail the drift check, not pass it."""
    from edgecnn.analysis.drift import Thresholds, failures

    missed = failures({"top1_agreement": 1.0, "cosine": float("nan")}, Thresholds())
    assert missed == ["cosine not finite (the outputs overflow or are NaN)"]
