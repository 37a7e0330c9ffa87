"""Calibration methods really differ: entropy is a histogram method, not MinMax in disguise."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.pipeline.onnx_export import export_onnx
from edgecnn.pipeline.quantize import AUTO, CALIBRATED, METHODS, Quantizer, quantize


def activation_scales(path) -> dict[str, float]:
    """Scale of every per-tensor QuantizeLinear (activations), by the tensor it quantizes."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1
    }


@pytest.fixture(scope="module")
def trained_fp32(tmp_path_factory, tinynet_checkpoint, digits_npz):
    import torch

    from tests.fixtures.tinynet import build_net

    model = build_net()
    model.load_state_dict(torch.load(tinynet_checkpoint["path"], weights_only=True)["state_dict"])
    path = tmp_path_factory.mktemp("q") / "tiny.onnx"
    export_onnx(model, (1, 1, 32, 32), path)
    images = np.load(digits_npz["path"])["images"][:64]
    return path, images


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_differ_from_minmax(tmp_path, trained_fp32, method):
    path, images = trained_fp32
    quantize(path, tmp_path / "minmax.onnx", images, "minmax")
    quantize(path, tmp_path / f"{method}.onnx", images, method)
    minmax, other = activation_scales(tmp_path / "minmax.onnx"), activation_scales(tmp_path / f"{method}.onnx")
    assert minmax.keys() == other.keys() and len(minmax) >= 4
    differing = [k for k in minmax if not np.isclose(minmax[k], other[k], rtol=1e-3)]
    # Entropy moves most ranges; the 99.999th percentile only trims the rare outliers some tensors have.
    assert len(differing) >= (len(minmax) // 2 if method == "entropy" else 1), (minmax, other)
    # Histogram methods clip outliers: their ranges are never wider than the observed min/max.
    assert all(other[k] <= minmax[k] * 1.001 for k in minmax)


def test_ort_quantize_static_entropy_defaults_equal_minmax(tmp_path, trained_fp32):
    """The trap this module avoids: quantize_static's entropy with its defaults gives the MinMax scales."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path, images = trained_fp32

    class Reader:
        def __init__(self):
            self.items = iter(images[i : i + 1] for i in range(len(images)))

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"input": item}

    scales = {}
    for name, method in (("minmax", CalibrationMethod.MinMax), ("entropy", CalibrationMethod.Entropy)):
        quantize_static(
            str(path),
            str(tmp_path / f"{name}.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
        scales[name] = activation_scales(tmp_path / f"{name}.onnx")
    ours = tmp_path / "ours.onnx"
    quantize(path, ours, images, "entropy")
    same = [k for k in scales["minmax"] if np.isclose(scales["minmax"][k], scales["entropy"][k], rtol=1e-3)]
    assert len(same) == len(scales["minmax"])
    assert activation_scales(ours) != scales["minmax"]


def test_keep_float_op_types_and_nodes(tmp_path, trained_fp32):
    path, images = trained_fp32
    quantize(path, tmp_path / "q.onnx", images[:8], "minmax", keep_float_op_types=("Gemm",))
    model = onnx.load(str(tmp_path / "q.onnx"))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(gemm.input[1]) != "DequantizeLinear"  # its weight stays float


def test_auto_quantizes_each_tensor_with_its_chosen_range(tmp_path, trained_fp32):
    """Method auto: the int8 model's activation scales are, tensor by tensor, those of the method the choice names
    (a fused Relu's input carries its output's range, as ORT gives it); the figures record the choice."""
    path, images = trained_fp32
    with Quantizer(path, images) as quantizer:
        scales = {}
        for method in METHODS:
            quantizer.quantize(tmp_path / f"{method}.onnx", method)
            scales[method] = activation_scales(tmp_path / f"{method}.onnx")
        info = quantizer.quantize(tmp_path / "auto2.onnx", AUTO)  # the merged cache is made once, then reused
        graph = onnx.load(str(quantizer.preprocessed)).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chosen = info["calibration"]["tensors"]
    assert info["method"] == AUTO and set(info["calibrator_options"]) == set(CALIBRATED)
    assert info["calibration"]["counts"] == {m: list(chosen.values()).count(m) for m in CALIBRATED}
    assert scales[AUTO] == activation_scales(tmp_path / "auto2.onnx")
    checked = 0
    for tensor, scale in scales[AUTO].items():
        name = tensor.removesuffix("_QuantizeLinear_Input")  # ORT renames a quantized graph output
        users = consumers.get(name, [])
        source = users[0].output[0] if len(users) == 1 and users[0].op_type in ("Relu", "Clip") else name
        assert scale == scales[chosen[source]][tensor], (tensor, source, chosen[source])
        checked += len({scales[m][tensor] for m in CALIBRATED}) > 1  # a tensor where the choice matters
    assert checked >= 3, scales


@pytest.mark.slow
def test_export_with_method_auto_records_the_choice(tmp_path, tinynet_checkpoint, digits_npz):
    """`edgecnn export --method auto` end to end: the manifest has every tensor's method and the counts, the report
    says how many tensors took each, and the int8 model still agrees with fp32 on held-out digits; so does the int8
    .tflite, whose own tensors are chosen for (``pipeline.tflite_calibration``)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "tiny"
    args = ["tests.fixtures.tinynet:build_net", "--weights", tinynet_checkpoint["path"], "--input-shape", "1,1,32,32"]
    args += ["--calib", digits_npz["path"], "--calib-size", "64", "--holdout", "64", "--format", "onnx,tflite"]
    edgecnn = [sys.executable, "-m", "edgecnn", "export"]
    # 64 held-out digits: one digit is 1.6 points; no repair, which would try the other methods
    command = [*edgecnn, *args, "--method", "auto", "--no-fix", "--allow-drift", "--out", str(out), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    quantized = manifest["stages"]["quantize"]
    chosen, counts = quantized["calibration"]["tensors"], manifest["calibration"]["per_tensor"]
    assert quantized["method"] == manifest["calibration"]["method"] == AUTO
    assert counts == quantized["calibration"]["counts"] and sum(counts.values()) == len(chosen) >= 8
    assert set(chosen.values()) <= set(CALIBRATED) and list(counts) == list(CALIBRATED)
    taken = ", ".join(f"{n} {m}" for m, n in counts.items())
    assert (
        f"per tensor (the range of the best SQNR on the calibration samples): {taken}"
        in (out / "report.md").read_text()
    )
    assert manifest["agreement"]["top1"] >= 0.95, manifest["agreement"]
    tflite = manifest["stages"]["tflite"]["int8"]
    tflite_counts = manifest["calibration"]["tflite_per_tensor"]
    assert tflite["method"] == AUTO and list(tflite_counts) == list(CALIBRATED), tflite
    assert set(tflite["calibration"]["tensors"].values()) <= set(CALIBRATED)
    assert sum(tflite_counts.values()) == len(tflite["calibration"]["tensors"]) >= 8, tflite_counts
    taken = ", ".join(f"{n} {m}" for m, n in tflite_counts.items())
    assert (
        f"the .tflite's tensors (the range of the best SQNR on the calibration samples): {taken}"
        in (out / "report.md").read_text()
    )
    assert manifest["agreement"]["formats"]["tflite"]["top1_agreement"] >= 0.95, manifest["agreement"]["formats"]
    # --method's help and validation read the one list of methods.
    usage = subprocess.run([*edgecnn, "--help"], capture_output=True, text=True)
    assert f"Calibration method: {', '.join(METHODS)}" in " ".join(usage.stdout.split())
    typo = subprocess.run(
        [*edgecnn, *args, "--method", "aut", "--out", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert typo.returncode == 1 and "did you mean 'auto'" in typo.stderr, typo.stderr


def orts_entropy_cache(quantizer: Quantizer, dst) -> None:
    """The entropy cache as ORT computes it (``compute_data()``), on the quantizer's graph and samples."""
    import contextlib
    import io

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    from edgecnn.pipeline.quantize import _Reader, calibrator_options

    calibrator = create_calibrator(
        quantizer.preprocessed,
        None,
        augmented_model_path=str(dst.with_suffix(".augmented.onnx")),
        calibrate_method=CalibrationMethod.Entropy,
        extra_options=calibrator_options("entropy", quantizer.bins),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        calibrator.collect_data(_Reader(quantizer.input_names, quantizer.images, None, quantizer.batch))
        save_tensors_data(calibrator.compute_data(), dst)


@pytest.mark.parametrize("samples", ["random", "zeros", "ones"])
def test_entropy_cache_is_orts_tensor_by_tensor(tmp_path, monkeypatch, samples):
    """The entropy ranges come from edgecnn's search (analysis.entropy_range), not ORT's loops: the cache is
    ORT's, tensor by tensor — method, fields, range (exactly), histogram and edges. Constant and all-zero
    activations (zeros, ones: degenerate histograms) included."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, HistogramCollector, load_tensors_data

    from tests.fixtures.onnx_models import helper_onnx

    def not_orts(*args, **kwargs):
        raise AssertionError("ORT's entropy search ran")

    path = helper_onnx(tmp_path / "m.onnx")
    images = {"random": np.random.default_rng(0).normal(0, 1, (6, 3, 16, 16)), "zeros": np.zeros((3, 3, 16, 16))}
    images["ones"] = np.ones((3, 3, 16, 16))
    with Quantizer(path, images[samples].astype(np.float32), bins=512) as quantizer:
        with monkeypatch.context() as patch:
            patch.setattr(HistogramCollector, "get_entropy_threshold", not_orts)
            mine = load_tensors_data(quantizer.ranges("entropy"))
        orts_entropy_cache(quantizer, tmp_path / "ort.json")
        quantizer.quantize(tmp_path / "q.onnx", "entropy")  # the cache is one quantize_static takes
    ort = load_tensors_data(tmp_path / "ort.json")
    assert mine.calibration_method == ort.calibration_method == CalibrationMethod.Entropy
    assert list(mine.keys()) == list(ort.keys()) and len(ort.keys()) >= 5
    for tensor, expected in ort.items():
        got = mine[tensor]
        assert got._attrs == expected._attrs == ["lowest", "highest", "hist", "bins"], tensor
        assert (got.lowest, got.highest) == (expected.lowest, expected.highest), tensor
        assert got.lowest.dtype == expected.lowest.dtype and got.highest.dtype == expected.highest.dtype
        np.testing.assert_array_equal(got.hist, expected.hist)
        np.testing.assert_array_equal(got.bins, expected.bins)
    if samples == "zeros":  # every activation is 0: a constant tensor's range is its value
        assert all(d.lowest == d.highest == 0 for d in mine.values())
    if samples == "ones":
        assert (mine["x"].lowest, mine["x"].highest) == (1, 1)


def test_export_json_prints_the_manifest_when_drift_exits_3(tmp_path, tinynet_checkpoint, digits_npz):
    """Exit 3 (drift over the thresholds) writes every artifact: `--json` prints their manifest as for exit 0 and 4
    (it printed nothing), then the one error line."""
    import json
    import subprocess
    import sys

    args = ["tests.fixtures.tinynet:build_net", "--weights", tinynet_checkpoint["path"], "--input-shape", "1,1,32,32"]
    args += ["--calib", digits_npz["path"], "--calib-size", "32", "--holdout", "32", "--format", "onnx"]
    command = [sys.executable, "-m", "edgecnn", "export", *args, "--min-cosine", "0.999999", "--no-fix"]
    result = subprocess.run([*command, "--out", str(tmp_path / "out"), "--json"], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["drift"]["passed"] is False and (tmp_path / "out" / "model.int8.onnx").is_file()
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and "int8 drift over the thresholds" in errors[0], result.stderr
