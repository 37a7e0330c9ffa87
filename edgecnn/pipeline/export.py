"""``export()``: resolve the inputs, run the stage table, write the manifest, rename OUT into place."""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn.analysis.drift import Thresholds
from edgecnn.config.profiles import load_profile
from edgecnn.config.recipes import load_recipe, recipe_for_family
from edgecnn.data.calibration import load_calibration
from edgecnn.errors import DriftError, EdgecnnError, UsageError
from edgecnn.models.knobs import KNOBS
from edgecnn.pipeline.context import ExportContext, ExportOptions
from edgecnn.pipeline.formats import parse_formats
from edgecnn.pipeline.manifest import (
    artifact_entry,
    atomic_output_dir,
    check_output_dir,
    render_report,
    write_json,
)
from edgecnn.pipeline.quantize import METHODS
from edgecnn.pipeline.source import parse_input_shape, resolve_source
from edgecnn.pipeline.stages import STAGES
from edgecnn.progress import Reporter

ARTIFACT_ORDER = (
    "fp32_onnx",
    "int8_onnx",
    "fp32_ort",
    "int8_ort",
    "fp32_ort_config",
    "int8_ort_config",
    "fp32_tflite",
    "int8_tflite",
    "fp32_mmdeploy_onnx",
    "int8_mmdeploy_onnx",
    "drift_chart",
)


@dataclass
class ExportResult:
    """Where the artifacts went and what the manifest says."""

    out: Path
    manifest: dict[str, Any]

    @property
    def artifacts(self) -> dict[str, Path]:
        """Artifact key → absolute path."""
        return {key: self.out / entry["path"] for key, entry in self.manifest["artifacts"].items()}


def default_out(model_name: str, profile: str) -> Path:
    """``exports/<model>-<profile>`` under the current directory."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)
    return Path("exports") / f"{safe}-{profile}"


def tool_versions() -> dict[str, str]:
    """Versions of the tools behind the artifacts."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _options(model: Any, kwargs: dict[str, Any]) -> ExportOptions:
    """The options of ``export(model, **kwargs)``: the knobs of the knob table go to ``scaling``."""
    scaling = {name: value for name in KNOBS if (value := kwargs.pop(name, None)) is not None}
    known = {f.name for f in fields(ExportOptions)} - {"scaling"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UsageError(f"export() got unknown option(s): {', '.join(unknown)}")
    return ExportOptions(model=model, scaling=scaling, **kwargs)


def _validate(options: ExportOptions) -> None:
    if options.method is not None and options.method not in METHODS:
        raise UsageError(f"unknown calibration method '{options.method}' (known: {', '.join(METHODS)})")
    if options.opset is not None and not 19 <= options.opset <= 21:
        raise UsageError(f"--opset must be between 19 and 21 (the dynamo exporter needs ≥ 19), got {options.opset}")
    Thresholds(options.min_agreement, options.max_drop, options.min_cosine)  # raises on nonsense values
    if options.deform is not None and options.deform not in ("native", "custom", "gather"):
        raise UsageError(f"--deform must be native, custom or gather, got '{options.deform}'")
    if options.tflite_io not in ("int8", "float"):
        raise UsageError(f"--tflite-io must be int8 or float, got '{options.tflite_io}'")
    if options.calib_size is not None and options.calib_size < 1:
        raise UsageError(f"--calib-size must be ≥ 1, got {options.calib_size}")


def export(model: Any, reporter: Reporter | None = None, **kwargs: Any) -> ExportResult:
    """Export ``model`` (a zoo name, 'torchvision:NAME', 'pkg.module:factory', an .onnx path or a module).

    Keyword arguments are the fields of :class:`ExportOptions` (``profile``,
    ``out``, ``formats``, ``calib`` …) and the scaling knobs (``width``,
    ``resolution`` …, see :mod:`edgecnn.models.knobs`). Everything is written into a
    temporary directory beside ``out`` and renamed into place at the end.
    """
    options = _options(model, kwargs)
    reporter = reporter or Reporter()
    _validate(options)
    profile = load_profile(options.profile)
    if options.deform is None:
        options.deform = profile.deform
    formats = parse_formats(options.formats, profile.formats)
    scaling = options.scaling
    input_shape = options.input_shape
    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    if options.out is not None:  # fail before the slow part when OUT is taken
        check_output_dir(Path(options.out), options.force)
    model_spec, decision = options.model, None
    if _plannable(options, profile):
        model_spec, scaling, decision = _plan(options, profile, reporter)
    source = resolve_source(
        model_spec,
        scaling=scaling,
        num_classes=options.num_classes,
        in_chans=options.in_chans,
        input_shape=input_shape,
        weights=options.weights,
        profile=profile,
    )
    if decision is not None:
        margin = f" less {decision['headroom'] * 100:g}% headroom" if decision.get("headroom") else ""
        source.scaling_origin = f"planner: best expected top-1 within {decision['budget_ms']:g} ms{margin}"
    if options.dynamic_batch and source.kind == "onnx":
        raise UsageError("--dynamic-batch applies when tracing; an ONNX MODEL keeps its own input shape")
    recipe = load_recipe(options.recipe) if options.recipe else recipe_for_family(source.family)
    out = Path(options.out) if options.out is not None else default_out(source.name, profile.name)
    check_output_dir(out, options.force)
    method = options.method or recipe.method
    count = options.calib_size or recipe.calibration_size
    calib, holdout = load_calibration(
        options.calib, tuple(source.input_shape[1:]), recipe, count, options.holdout, options.seed
    )
    started = time.perf_counter()
    with atomic_output_dir(out, options.force) as tmp, tempfile.TemporaryDirectory(prefix="edgecnn-") as scratch:
        ctx = ExportContext(
            options=options,
            profile=profile,
            recipe=recipe,
            source=source,
            formats=formats,
            formats_requested=options.formats is not None,
            out=tmp,
            scratch=Path(scratch),
            calib=calib,
            holdout=holdout,
            method=method,
            opset=options.opset or recipe.opset,
            reporter=reporter,
            plan=decision,
        )
        _warn_about_inputs(ctx)
        try:
            _run_stages(ctx)
        finally:
            reporter.close()
            if ctx.quantizer is not None:
                ctx.quantizer.close()
        manifest = _manifest(ctx, out, time.perf_counter() - started)
        write_json(tmp / "manifest.json", manifest)
        (tmp / "report.md").write_text(render_report(manifest), encoding="utf-8")
    result = ExportResult(out, manifest)
    if ctx.drift.get("passed") is False and not options.allow_drift:
        failures = "; ".join(ctx.drift["final"]["failures"])
        raise DriftError(
            f"int8 drift over the thresholds ({failures}); artifacts and report in {out}, pass --allow-drift to accept"
        )
    return result


def _warn_about_inputs(ctx: ExportContext) -> None:
    if ctx.calib.synthetic:
        if ctx.source.trained:
            ctx.warn(
                "no --calib given: calibrated on synthetic data, so the int8 artifact is unvalidated; "
                "its agreement figures mean nothing for real inputs"
            )
        else:
            ctx.warn("calibrating on synthetic data: accuracy and agreement figures mean nothing")
    if not ctx.source.trained:
        ctx.warn("no --weights: the model has random weights (fine for latency, meaningless for accuracy)")


def _run_stages(ctx: ExportContext) -> None:
    for stage in STAGES:
        if not stage.applies(ctx):
            ctx.stages[stage.name] = {"status": "skipped", "seconds": 0.0}
            ctx.reporter.stage_finished(stage.name, "skipped", 0.0, "")
            continue
        ctx.reporter.stage_started(stage.name, stage.title)
        t0 = time.perf_counter()
        try:
            figures = stage.run(ctx)
        except EdgecnnError as error:
            ctx.reporter.stage_finished(stage.name, "failed", time.perf_counter() - t0, str(error))
            raise
        seconds = time.perf_counter() - t0
        ctx.stages[stage.name] = {"status": "ok", "seconds": round(seconds, 3), **figures}
        ctx.reporter.stage_finished(stage.name, "ok", seconds, _summary(figures.get("check", {})))


SUMMARY_SKIP = ("threshold", "samples", "max_abs_error")


def _summary(check: dict[str, Any]) -> str:
    parts = []
    for key, value in check.items():
        if key in SUMMARY_SKIP:
            continue
        parts.append(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def _plannable(options: ExportOptions, profile: Any) -> bool:
    """A family name (mobilenet, efficientnet, resnet …) with no scaling given, for a profile with a budget."""
    from edgecnn.analysis.planner import family_of

    return (
        isinstance(options.model, str)
        and family_of(options.model) is not None
        and not options.scaling
        and profile.latency_budget_ms is not None
    )


def _plan(options: ExportOptions, profile: Any, reporter: Reporter) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Run the planner for the profile's budget; the chosen zoo model, its scaling and the decision."""
    from edgecnn.analysis.planner import grid_size, plan

    dtype = "int8" if options.quantize else "fp32"
    advance = reporter.bar(f"planning {options.model} for {profile.latency_budget_ms:g} ms", grid_size(options.model))
    decision = plan(options.model, profile.name, dtype=dtype, on_candidate=advance)
    chosen = decision.chosen
    keep = ("model", "label", "config", "resolution", "predicted_ms", "memory_mb", "expected_top1", "accuracy")
    record = {
        "family": decision.family,
        "dtype": dtype,
        "budget_ms": decision.budget_ms,
        "headroom": decision.headroom,
        "memory_budget_mb": decision.memory_budget_mb,
        "chosen": {k: v for k, v in chosen.to_dict().items() if k in keep},
        "runner_up": {k: v for k, v in decision.runner_up.to_dict().items() if k in keep}
        if decision.runner_up
        else None,
        "candidates": len(decision.candidates),
        "latency_model": f"{profile.latency.runtime}, {profile.latency.threads} thread(s)",
    }
    return chosen.model, dict(chosen.config), record


def _manifest(ctx: ExportContext, final_out: Path, seconds: float) -> dict[str, Any]:
    source, recipe = ctx.source, ctx.recipe
    mean, std = recipe.channel_stats(source.input_shape[1])
    artifacts = {key: artifact_entry(ctx.artifacts[key], ctx.out) for key in ARTIFACT_ORDER if key in ctx.artifacts}
    quantize = ctx.stages.get("quantize", {})
    return {
        "edgecnn_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "out": str(final_out),
        "tools": tool_versions(),
        "model": {
            **source.to_dict(),
            "layout": recipe.layout,
            "mean": mean,
            "std": std,
            "tflite_input_layout": ctx.tflite_layout,
            "input_name": "input",
            "output_name": "logits",
            "dynamic_batch": ctx.options.dynamic_batch,
        },
        "profile": ctx.profile.to_dict(),
        "plan": ctx.plan,
        "recipe": {**recipe.to_dict(), "path": recipe.path},
        "formats": list(ctx.formats),
        "calibration": {
            "method": ctx.method,
            "count": len(ctx.calib),
            "held_out": len(ctx.holdout),
            "source": ctx.calib.source,
            "sha256": ctx.calib.sha256,
            "synthetic": ctx.calib.synthetic,
            "labels": ctx.calib.labels is not None,
            "calibrator_options": quantize.get("calibrator_options", {}),
        },
        "stages": ctx.stages,
        "artifacts": artifacts,
        "agreement": ctx.agreement or None,
        "drift": ctx.drift or None,
        "warnings": ctx.warnings,
        "seconds": round(seconds, 2),
    }
