"""Each stage is held to the outputs it declares: nothing undeclared, nothing missing, nothing stray in OUT."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecnn.config.profiles import load_profile
from edgecnn.config.recipes import recipe_for_family
from edgecnn.data.calibration import load_calibration
from edgecnn.pipeline.context import ExportContext, ExportOptions, StageResult
from edgecnn.pipeline.export import hold_to_outputs
from edgecnn.pipeline.source import ModelSource
from edgecnn.pipeline.stages import STAGES, Output, Stage
from edgecnn.progress import Reporter


def _context(tmp_path: Path, quantize: bool = True) -> ExportContext:
    recipe = recipe_for_family(None)
    calib, holdout = load_calibration("synthetic", (3, 8, 8), recipe, 4, 0)
    (tmp_path / "out").mkdir()
    (tmp_path / "scratch").mkdir()
    return ExportContext(
        options=ExportOptions(model="m", quantize=quantize),
        profile=load_profile("x86-avx2"),
        recipe=recipe,
        source=ModelSource("onnx", "m", (1, 3, 8, 8)),
        formats=("onnx",),
        formats_requested=True,
        out=tmp_path / "out",
        scratch=tmp_path / "scratch",
        calib=calib,
        holdout=holdout,
        method="minmax",
        bias_correction=True,
        weight_rounding=False,
        opset=20,
        reporter=Reporter(),
    )


STAGE = Stage(
    "make",
    "makes two files",
    (),
    (Output("fp32_onnx", "model.fp32.onnx"), Output("int8_onnx", "model.int8.onnx", lambda ctx: ctx.options.quantize)),
    "none",
    lambda ctx: StageResult(),
)


def _hold(ctx: ExportContext, result: StageResult, stage: Stage = STAGE) -> None:
    ctx.results[stage.name] = result
    hold_to_outputs(stage, result, ctx)


def test_declared_outputs_pass(tmp_path):
    ctx = _context(tmp_path)
    files = {key: ctx.out / name for key, name in (("fp32_onnx", "model.fp32.onnx"), ("int8_onnx", "model.int8.onnx"))}
    for path in files.values():
        path.write_bytes(b"x")
    _hold(ctx, StageResult(artifacts=files))
    assert ctx.artifact("int8_onnx") == files["int8_onnx"]


def test_a_missing_required_output_fails_and_an_optional_one_may_be_absent(tmp_path):
    ctx = _context(tmp_path, quantize=False)
    (ctx.out / "model.fp32.onnx").write_bytes(b"x")
    _hold(ctx, StageResult(artifacts={"fp32_onnx": ctx.out / "model.fp32.onnx"}))  # int8 not required without it
    with pytest.raises(RuntimeError, match="did not make its declared output"):
        _hold(ctx, StageResult(artifacts={}))
    (ctx.out / "model.fp32.onnx").unlink()
    _hold(ctx, StageResult(artifacts={}, skipped="the lowering has no such op"))  # a skip makes nothing


def test_an_undeclared_artifact_fails(tmp_path):
    ctx = _context(tmp_path, quantize=False)
    (ctx.out / "model.fp32.onnx").write_bytes(b"x")
    (ctx.out / "x.tflite").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="undeclared artifact"):
        _hold(ctx, StageResult(artifacts={"fp32_onnx": ctx.out / "model.fp32.onnx", "x": ctx.out / "x.tflite"}))


def test_an_artifact_under_another_name_fails(tmp_path):
    ctx = _context(tmp_path, quantize=False)
    (ctx.out / "fp32.onnx").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="not the declared"):
        _hold(ctx, StageResult(artifacts={"fp32_onnx": ctx.out / "fp32.onnx"}))


def test_a_stray_file_in_out_fails(tmp_path):
    ctx = _context(tmp_path, quantize=False)
    (ctx.out / "model.fp32.onnx").write_bytes(b"x")
    (ctx.out / "leftover.tmp").write_bytes(b"x")
    with pytest.raises(RuntimeError, match=r"left file.*leftover.tmp"):
        _hold(ctx, StageResult(artifacts={"fp32_onnx": ctx.out / "model.fp32.onnx"}))


def test_stage_names_are_unique_and_inputs_come_from_earlier_stages():
    names = [stage.name for stage in STAGES]
    assert len(names) == len(set(names))
    made: set[str] = set()
    for stage in STAGES:
        assert set(stage.inputs) <= made, stage.name
        made |= {o.key for o in stage.outputs}
