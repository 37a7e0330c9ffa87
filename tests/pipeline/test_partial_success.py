"""One format that cannot be made does not cost the others: they are written, it is named with its reason, exit 4."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgecnn.errors import EXIT_PARTIAL, CheckFailedError, PartialExportError
from edgecnn.pipeline import export as export_module
from edgecnn.pipeline import stages as stages_module
from edgecnn.pipeline.export import drop_failed_stage, export
from tests.fixtures.onnx_models import UNLOWERED, helper_onnx
from tests.pipeline.test_stages import _context
from tests.reliability.conftest import run_edgecnn

QUICK = {"calib_size": 8, "holdout": 4}
ONNX_ORT = {"fp32_onnx", "int8_onnx", "fp32_ort", "int8_ort", "fp32_ort_config", "int8_ort_config"}


@pytest.fixture
def unlowerable(tmp_path):
    """A classifier ORT runs whose GlobalLpPool ('pool') and LpNormalization ('norm') TFLite cannot lower."""
    return helper_onnx(tmp_path / "lp.onnx", pool="GlobalLpPool", normalize=True)


def test_unlowerable_ops_fail_tflite_before_the_slow_stages_and_the_rest_is_written(tmp_path, unlowerable):
    out = tmp_path / "out"
    with pytest.raises(PartialExportError) as caught:
        export(str(unlowerable), out=out, formats="onnx,ort,tflite", **QUICK)
    error = caught.value
    assert error.exit_code == EXIT_PARTIAL == 4
    message = str(error)
    assert "tflite failed at tflite_ops" in message and "onnx, ort written to" in message and "\n" not in message
    for op, node in zip(UNLOWERED, ("pool", "norm"), strict=True):
        assert f"{op} ({node})" in message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(error.result.manifest, default=str))
    assert set(manifest["artifacts"]) == ONNX_ORT
    assert not list(out.glob("*.tflite"))
    status = manifest["format_status"]
    assert status["onnx"] == status["ort"] == {"status": "ok"}
    assert status["tflite"]["status"] == "failed" and status["tflite"]["stage"] == "tflite_ops"
    assert "GlobalLpPool (pool)" in status["tflite"]["reason"]
    stages = manifest["stages"]
    order = list(stages)
    assert order.index("tflite_ops") < order.index("quantize") < order.index("drift")  # told before the slow part
    assert stages["tflite_ops"]["status"] == "failed" and "LpNormalization (norm)" in stages["tflite_ops"]["reason"]
    assert stages["tflite"]["status"] == "skipped"
    assert stages["quantize"]["status"] == stages["ort"]["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "## Formats not made" in report and "**tflite** failed at stage tflite_ops" in report


def test_a_node_a_lowering_refuses_fails_tflite_before_the_slow_stages(tmp_path):
    """An op type with a lowering that refuses the node (bicubic Resize): found by tflite_ops too (the lowering is
    tried there and kept), not by the tflite stage after quantizing and judging drift."""
    out = tmp_path / "out"
    with pytest.raises(PartialExportError) as caught:
        export(str(helper_onnx(tmp_path / "cubic.onnx", resize="cubic")), out=out, formats="onnx,tflite", **QUICK)
    assert "tflite failed at tflite_ops" in str(caught.value) and "mode 'cubic' has no TFLite op" in str(caught.value)
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert stages["tflite_ops"]["status"] == "failed" and "Resize node 'resize'" in stages["tflite_ops"]["reason"]
    assert stages["quantize"]["status"] == "ok" and stages["tflite"]["status"] == "skipped"
    linear = export(str(helper_onnx(tmp_path / "linear.onnx", resize="linear")), out=tmp_path / "l", formats="tflite",
                    **QUICK)  # fmt: skip
    assert linear.manifest["stages"]["tflite_ops"]["check"] == {"all_ops_lowered": True}
    assert (tmp_path / "l" / "model.fp32.tflite").is_file() and (tmp_path / "l" / "model.int8.tflite").is_file()


def test_the_cli_shows_what_was_written_then_one_error_line_and_exits_4(tmp_path, unlowerable):
    result = run_edgecnn(
        tmp_path, "export", str(unlowerable), "--format", "onnx,tflite", "--calib-size", "8", "--holdout", "4"
    )
    assert result.returncode == 4, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and "partial export: tflite failed" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "model.int8.onnx" in result.stdout and "tflite not made" in " ".join(result.stdout.split())
    assert (tmp_path / "exports" / "lp-x86-avx2" / "model.int8.onnx").is_file()


def test_formats_from_the_profile_skip_tflite_with_a_warning_and_exit_0(tmp_path, unlowerable):
    result = export(str(unlowerable), out=tmp_path / "out", profile="raspberrypi4", quantize=False)
    assert "tflite" in result.manifest["formats"]
    assert result.manifest["format_status"]["tflite"]["status"] == "skipped"
    assert any("no .tflite" in w and "GlobalLpPool (pool)" in w for w in result.manifest["warnings"])
    assert "fp32_ort" in result.artifacts and "fp32_tflite" not in result.artifacts


@pytest.mark.slow
def test_a_check_failing_after_the_tflite_is_written_leaves_no_half_written_tflite(tmp_path, monkeypatch):
    """The real tflite stage writes both .tflite files; a check failing after that removes them."""

    def lowered_then_failed(ctx):
        stages_module.run_tflite(ctx)
        assert (ctx.out / "model.fp32.tflite").is_file() and (ctx.out / "model.int8.tflite").is_file()
        raise CheckFailedError(".tflite fp32 vs ORT fp32: max abs error 1 is 0.5 of the output range")

    table = tuple(replace(s, run=lowered_then_failed) if s.name == "tflite" else s for s in stages_module.STAGES)
    monkeypatch.setattr(export_module, "STAGES", table)
    given = helper_onnx(tmp_path / "m.onnx")
    with pytest.raises(PartialExportError, match=r"tflite failed at tflite: \.tflite fp32 vs ORT fp32"):
        export(str(given), out=tmp_path / "out", formats="onnx,tflite", **QUICK)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not list((tmp_path / "out").glob("*.tflite"))
    assert set(manifest["artifacts"]) == {"fp32_onnx", "int8_onnx"}
    assert manifest["stages"]["tflite"]["status"] == "failed"
    assert manifest["stages"]["tflite_ops"]["status"] == "ok"


def test_dropping_a_failed_stage_removes_its_outputs_and_refuses_strays(tmp_path):
    ctx = _context(tmp_path)
    tflite = next(s for s in stages_module.STAGES if s.name == "tflite")
    (ctx.out / "model.fp32.tflite").write_bytes(b"half")
    drop_failed_stage(tflite, ctx, ("tflite",), "a reason", 1.0)
    assert not (ctx.out / "model.fp32.tflite").exists()
    assert ctx.dropped["tflite"] == {"status": "failed", "stage": "tflite", "reason": "a reason"}
    assert ctx.failed_stages["tflite"]["reason"] == "a reason"
    (ctx.out / "scratch.bin").write_bytes(b"x")
    with pytest.raises(RuntimeError, match=r"left file.*scratch\.bin"):
        drop_failed_stage(tflite, ctx, ("tflite",), "a reason", 1.0)


@pytest.mark.slow
def test_an_int8_tflite_that_fails_leaves_the_checked_fp32_tflite(tmp_path, monkeypatch):
    """The int8 quantizer failing (ai-edge-quantizer refusing a tensor) dropped the fp32 .tflite too, although it was
    lowered and checked; it stays, the format still fails (exit 4) and says why."""

    def failing(ctx, result, source, float_scopes):
        (ctx.out / "model.int8.tflite").write_bytes(b"half")  # what a failure after the write leaves
        raise CheckFailedError("int8 quantization with ai-edge-quantizer failed: a tensor it refuses")

    monkeypatch.setattr(stages_module, "_tflite_int8", failing)
    given = helper_onnx(tmp_path / "m.onnx")
    with pytest.raises(PartialExportError, match=r"tflite failed at tflite: int8 \.tflite: int8 quantization") as e:
        export(str(given), out=tmp_path / "out", formats="onnx,tflite", **QUICK)
    assert "model.fp32.tflite is written" in str(e.value)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tflite")) == ["model.fp32.tflite"]
    assert set(manifest["artifacts"]) == {"fp32_onnx", "int8_onnx", "fp32_tflite"}
    assert manifest["format_status"]["tflite"]["status"] == "failed"
    assert manifest["stages"]["tflite"]["status"] == "partial"
    assert manifest["stages"]["tflite"]["int8"]["status"] == "failed"
