"""`edgecnn drift`: figures, two int8 computations, per-layer localisation, repair, exit codes."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.analysis.drift import Thresholds
from edgecnn.commands.drift import drift
from edgecnn.pipeline.export import export

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def poorly_calibrated(tmp_path_factory, tinynet_checkpoint, digits_npz):
    """TinyNet exported with 2 calibration images and no repair: int8 that drifts a little."""
    out = tmp_path_factory.mktemp("drift") / "tiny"
    export(
        "tests.fixtures.tinynet:build_net",
        out=out,
        weights=tinynet_checkpoint["path"],
        input_shape="1,1,32,32",
        calib=digits_npz["path"],
        calib_size=2,
        holdout=8,
        formats="onnx",
        fix=False,
        allow_drift=True,
    )
    return out


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd
    )


def test_figures_and_two_int8_computations(poorly_calibrated, digits_npz):
    report = drift(
        str(poorly_calibrated / "model.fp32.onnx"),
        str(poorly_calibrated / "model.int8.onnx"),
        digits_npz["path"],
        layers=False,
    )
    assert report["samples"] == digits_npz["count"] and report["labels"]
    assert set(report["computations"]) == {"exact_qdq", "host_kernels"}
    assert report["basis"] == "host_kernels"  # the export's profile is x86-avx2, this host's kind
    for figs in report["computations"].values():
        assert 0 <= figs["top1_agreement"] <= 1 and figs["reference_accuracy"] > 0.85
        assert len(figs["per_class"]) == 10 and sum(c["samples"] for c in figs["per_class"]) == report["samples"]
        for key in ("top5_overlap", "cosine", "sqnr_db", "max_abs_error", "accuracy_drop_points"):
            assert key in figs
    arm = drift(
        str(poorly_calibrated / "model.fp32.onnx"),
        str(poorly_calibrated / "model.int8.onnx"),
        digits_npz["path"],
        profile="raspberrypi4",
        layers=False,
    )
    assert arm["basis"] == "exact_qdq" and arm["device"] == "raspberrypi4"


def test_layers_are_located_worst_first_with_their_fused_nodes(poorly_calibrated, digits_npz, tmp_path):
    chart = tmp_path / "layers.png"
    report = drift(
        str(poorly_calibrated / "model.fp32.onnx"),
        str(poorly_calibrated / "model.int8.onnx"),
        digits_npz["path"],
        chart=chart,
    )
    layers = report["layers"]
    assert len(layers) >= 4
    assert [layer["sqnr_db"] for layer in layers] == sorted(layer["sqnr_db"] for layer in layers)
    relu_layers = [layer for layer in layers if layer["op_type"] == "Relu"]
    assert relu_layers and all(any("conv" in n.lower() for n in layer["nodes"]) for layer in relu_layers)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exit_codes_and_json(poorly_calibrated, digits_npz):
    fp32, int8 = str(poorly_calibrated / "model.fp32.onnx"), str(poorly_calibrated / "model.int8.onnx")
    failing = run("drift", fp32, int8, "--data", digits_npz["path"], "--min-cosine", "0.99999", "--json", "--no-layers")
    assert failing.returncode == 3, failing.stderr
    report = json.loads(failing.stdout)
    assert {"top1_agreement", "cosine", "passed"} <= set(report) and report["passed"] is False
    assert "cosine" in failing.stderr.strip().splitlines()[-1]
    passing = run(
        "drift",
        fp32,
        int8,
        "--data",
        digits_npz["path"],
        "--min-agreement",
        "0.9",
        "--max-accuracy-drop",
        "10",
        "--no-layers",
    )
    assert passing.returncode == 0, passing.stderr
    assert "PASSED" in passing.stdout


def test_fix_writes_a_repaired_model_that_passes(poorly_calibrated, digits_npz, tmp_path):
    thresholds = Thresholds(min_agreement=0.99, max_accuracy_drop=1.0, min_cosine=0.999)
    fp32, int8 = str(poorly_calibrated / "model.fp32.onnx"), str(poorly_calibrated / "model.int8.onnx")
    before = drift(fp32, int8, digits_npz["path"], thresholds=thresholds, layers=False)
    assert not before["passed"]
    out = tmp_path / "fixed.onnx"
    report = drift(fp32, int8, digits_npz["path"], thresholds=thresholds, fix=True, out=out)
    fix = report["fix"]
    assert fix["passed"] and report["passed"] and out.is_file()
    labels = [a["label"] for a in fix["attempts"]]
    # x86-avx2 (the export's profile) lists ReduceMean among the ops slower in int8; the export timed its graph
    # with it float and not and kept the faster (which one is the host's business): the repair keeps float what
    # the export kept, in every try, and has no "slow int8 ops in float" try — TARGET already is that graph.
    keep = json.loads((poorly_calibrated / "manifest.json").read_text())["stages"]["quantize"]["keep_float"]
    assert keep["slower_in_int8"]["candidates"] == ["ReduceMean"], keep
    assert not any(label.startswith("latency") for label in labels), labels
    if keep["slower_in_int8"]["chosen"]:
        assert all(any("mean" in n.lower() for n in a["kept_float"]) for a in fix["attempts"])
    assert any(label.startswith("global") for label in labels)
    after = drift(fp32, str(out), digits_npz["path"], thresholds=thresholds, layers=False)
    assert after["passed"] and after["cosine"] >= 0.999


def test_pytorch_reference_with_weights(poorly_calibrated, digits_npz, tinynet_checkpoint):
    report = drift(
        "tests.fixtures.tinynet:build_net",
        str(poorly_calibrated / "model.fp32.onnx"),
        digits_npz["path"],
        weights=tinynet_checkpoint["path"],  # an fp32 TARGET: no per-layer figures (layers=False would be an error)
    )
    assert report["basis"] == "as_is" and report["top1_agreement"] == 1.0
    assert report["cosine"] > 0.99999


def test_export_exits_3_on_drift_and_keeps_the_artifacts(tmp_path, tinynet_checkpoint, digits_npz):
    result = run(
        "export",
        "tests.fixtures.tinynet:build_net",
        "--weights",
        tinynet_checkpoint["path"],
        "--input-shape",
        "1,1,32,32",
        "--calib",
        digits_npz["path"],
        "--calib-size",
        "2",
        "--format",
        "onnx",
        "--no-fix",
        "--min-cosine",
        "0.99999",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 3, result.stderr
    assert "int8 drift over the thresholds" in result.stderr and "Traceback" not in result.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["drift"]["passed"] is False and manifest["agreement"]["top1"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.onnx", "b.onnx", "--data", "x.npz"], "artifact b.onnx does not exist"),
        (["resnet18", "m.tflite", "--data", "x.npz"], "the TFLite interpreter cannot load m.tflite"),
        (["resnet18", "resnet18", "--data", "synthetic"], "must be real data"),
        (["resnet18", "resnet18", "--data", "x.npz", "--min-agreement", "2"], "--min-agreement must be between"),
    ],
)
def test_drift_bad_input(tmp_path, args, message):
    (tmp_path / "m.tflite").write_bytes(b"x")
    result = run("drift", *args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_untrained_export_is_recorded_but_not_judged(tmp_path):
    result = export(
        "mobilenet_v1", out=tmp_path / "o", width=0.25, resolution=32, calib_size=4, holdout=4, formats="onnx"
    )
    drift_record = result.manifest["drift"]
    assert drift_record["judged"] is False and drift_record["passed"] is None
    assert "synthetic" in " ".join(drift_record["not_judged_because"])
    assert np.isfinite(result.manifest["agreement"]["cosine"])


def _int8_weights(path: Path) -> dict[str, bytes]:
    """The int8 weight buffers of a `.tflite`'s convolutions, by their output tensor's name."""
    from ai_edge_litert import schema_py_generated as schema

    from edgecnn.lowering.tflite.flatbuffer import buffer_bytes, parse

    data = path.read_bytes()
    model = parse(data)
    graph, codes = model.subgraphs[0], [c.builtinCode for c in model.operatorCodes]
    convs = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)
    found = {}
    for op in graph.operators:
        weights = graph.tensors[op.inputs[1]] if codes[op.opcodeIndex] in convs else None
        if weights is not None and weights.type == schema.TensorType.INT8:
            found[graph.tensors[op.outputs[0]].name.decode()] = buffer_bytes(model, data, weights.buffer)
    return found


@pytest.mark.slow
def test_fix_of_a_per_tensor_tflite_requantizes_the_equalized_graph(export_trained, digits_npz, tmp_path):
    """A per-tensor `.tflite` (android-nnapi-api28) was quantized from a cross-layer equalized twin: `drift --fix`
    equalizes the export's fp32 ONNX again (as the ORT repair does) and re-quantizes that — its convolutions get
    the export's int8 weights, not those of the unequalized fp32 `.tflite`, which were the repair's before."""
    from edgecnn.commands.drift import _tflite_source
    from edgecnn.data.calibration import load_calibration
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.artifact import open_artifact

    result = export_trained("mobilenet", tmp_path / "nnapi", profile="android-nnapi-api28", formats="onnx,tflite")
    int8 = result.manifest["stages"]["tflite"]["int8"]
    assert int8["per_channel"] is False and int8["equalization"]["applied"], int8["equalization"]
    fp32, target, out = result.artifacts["fp32_tflite"], result.artifacts["int8_tflite"], tmp_path / "fixed.tflite"
    before = drift(str(fp32), str(target), digits_npz["path"], layers=False)
    halfway = Thresholds(min_cosine=math.floor((1 - (1 - before["cosine"]) / 2) * 1e6) / 1e6)  # fails: repaired
    report = drift(str(fp32), str(target), digits_npz["path"], thresholds=halfway, fix=True, out=out, layers=False)
    assert report["fix"]["attempts"] and report["fix"]["equalization"]["applied"], report["fix"]
    artifact = open_artifact(str(target))
    calibration, _ = load_calibration(digits_npz["path"], (1, 32, 32), artifact.recipe, 128, 232)  # the export's
    source, record = _tflite_source(artifact, fp32, int8, calibration.images, "NHWC")
    assert record["applied"]
    shipped = _int8_weights(target)
    requantized, plain = tmp_path / "requantized.tflite", tmp_path / "unequalized.tflite"
    requantized.write_bytes(TfliteQuantizer(source, calibration.images, per_channel=False).quantize_bytes().data)
    plain.write_bytes(TfliteQuantizer(fp32.read_bytes(), calibration.images, per_channel=False).quantize_bytes().data)
    assert _int8_weights(requantized) == shipped  # equalized on the export's samples: the export's int8 weights
    assert _int8_weights(plain) != shipped  # what the repair re-quantized before
    # each int8 model's per-layer chart has a name of its own: the .tflite's overwrote the ONNX model's
    drift(str(result.artifacts["fp32_onnx"]), str(result.artifacts["int8_onnx"]), digits_npz["path"], limit=32)
    drift(str(fp32), str(target), digits_npz["path"], limit=32)
    charts = sorted(p.name for p in target.parent.glob("*.drift_layers.png"))
    assert charts == ["model.int8.drift_layers.png", "model.int8.tflite.drift_layers.png"]
    result.artifacts["fp32_onnx"].unlink()  # without the export's fp32 ONNX it cannot be redone, and says so
    unequalized, record = _tflite_source(open_artifact(str(target)), fp32, int8, calibration.images, "NHWC")
    assert unequalized == fp32.read_bytes() and not record["applied"] and "fp32 ONNX" in record["why"], record


def test_a_target_without_a_manifest_is_preprocessed_and_judged_as_its_refs_export(poorly_calibrated, tmp_path):
    """A copy of an export's int8 model (or the model `--fix` writes) has no manifest: it was fed the default
    mean and std while REF had its export's (top-1 1.0 → 0.22 for a byte-identical copy), and judged for 'this
    host'. One side's manifest now preprocesses both; two manifests that disagree are refused."""
    import shutil

    from edgecnn.errors import UsageError
    from edgecnn.pipeline.artifact import one_preprocessing, open_artifact

    export_dir = tmp_path / "e"
    shutil.copytree(poorly_calibrated, export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    manifest["model"]["mean"], manifest["model"]["std"] = [0.3], [0.2]
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    copy = tmp_path / "copy.int8.onnx"
    shutil.copyfile(export_dir / "model.int8.onnx", copy)
    ref, tgt = open_artifact(str(export_dir / "model.fp32.onnx")), open_artifact(str(copy))
    assert tgt.recipe.mean != (0.3,)
    assert one_preprocessing(ref, tgt) is None and (tgt.recipe.mean, tgt.recipe.std) == ((0.3,), (0.2,))
    with pytest.raises(UsageError, match=r"REF and TARGET are preprocessed differently by their manifests \(mean"):
        theirs = open_artifact(str(poorly_calibrated / "model.int8.onnx"))
        one_preprocessing(open_artifact(str(export_dir / "model.fp32.onnx")), theirs)
    alone = tmp_path / "copy.fp32.onnx"
    shutil.copyfile(export_dir / "model.fp32.onnx", alone)
    note = one_preprocessing(open_artifact(str(alone)), open_artifact(str(copy)))
    assert note is not None and note.startswith("no manifest beside REF or TARGET: both are fed images normalised")


def test_a_copied_target_is_judged_for_the_device_of_its_refs_export(poorly_calibrated, digits_npz, tmp_path):
    import shutil

    copy = tmp_path / "copy.int8.onnx"
    shutil.copyfile(poorly_calibrated / "model.int8.onnx", copy)
    report = drift(str(poorly_calibrated / "model.fp32.onnx"), str(copy), digits_npz["path"], layers=False)
    original = drift(
        str(poorly_calibrated / "model.fp32.onnx"), str(poorly_calibrated / "model.int8.onnx"), digits_npz["path"],
        layers=False,
    )  # fmt: skip
    assert report["device"] == original["device"] == "x86-avx2"  # was 'this host'
    assert report["top1_agreement"] == original["top1_agreement"]


def test_a_repair_is_said_by_its_task_figure_and_both_verdicts_are_shown():
    """The fix line said only cosine for a segmentation or embedding repair, and the verdict line paired TARGET's
    failures with the repaired model's PASSED or FAILED (the error line then gave another figure)."""
    from rich.console import Console

    from edgecnn.commands.render import render_drift

    figs = {"top1_agreement": None, "cosine": 0.9999, "sqnr_db": 40.0}
    outputs = {"logits": {**figs, "task": "segmentation", "miou": 0.25}}
    report = {
        "target": "t.onnx", "reference": "r.onnx", "samples": 8, "basis": "exact_qdq", "notes": [],
        "computations": {"exact_qdq": {**figs, "outputs": outputs}}, "passed": True,
        "failures": ["mIoU 0.2518 < 0.9"],
        "fix": {"chosen": "global: auto", "score": 0.9736, "tasks": {"logits": "segmentation"}, "cosine": 0.9999,
                "top1_agreement": None, "kept_float": [], "bytes_before": 10, "bytes_after": 9, "out": "t.fixed.onnx",
                "passed": True, "failures": []},
    }  # fmt: skip
    console = Console(record=True, width=200)
    render_drift(report, console)
    text = console.export_text()
    assert "fix: global: auto → mIoU 0.9736, cosine 0.9999, 0 node(s) kept float" in text
    assert "drift (exact qdq): TARGET FAILED: mIoU 0.2518 < 0.9; repaired PASSED" in text
