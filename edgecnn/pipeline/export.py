"""``export()``: resolve the inputs, run the stage table, write the manifest, rename OUT into place."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn.applies import check_applies
from edgecnn.config.profiles import load_profile
from edgecnn.config.recipes import MAX_OPSET, MIN_OPSET
from edgecnn.data.calibration import SYNTHETIC, load_calibration, load_input_calibration
from edgecnn.errors import DriftError, EdgecnnError, PartialExportError, UnknownNameError, UsageError
from edgecnn.files import atomic_output_dir, check_output_dir, scratch_beside, stop_if_signalled
from edgecnn.formats import ALWAYS, parse_formats, stage_formats
from edgecnn.models.knobs import KNOBS
from edgecnn.pipeline.context import (
    CHECK_SAMPLES,
    RULES,
    ExportContext,
    ExportOptions,
    StageResult,
    check_static_options,
    given_options,
)
from edgecnn.pipeline.drift_check import drift_summary, not_judged_reasons, unjudged_because
from edgecnn.pipeline.manifest import artifact_entry, render_report, write_json
from edgecnn.pipeline.quantize import METHODS
from edgecnn.pipeline.source import parse_input_shapes, resolve_source, source_recipe
from edgecnn.pipeline.stages import STAGES, Stage, artifact_order, check_tasks_before_stages
from edgecnn.progress import Reporter


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
    packages = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "numpy")
    for package in (*packages, "ai-edge-litert", "ai-edge-quantizer"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _options(model: Any, kwargs: dict[str, Any]) -> ExportOptions:
    """The options of ``export(model, **kwargs)``: the knobs of the knob table go to ``scaling``."""
    scaling = {name: value for name in KNOBS if (value := kwargs.pop(name, None)) is not None}
    known = {f.name for f in fields(ExportOptions)} - {"scaling", "given"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UsageError(f"export() got unknown option(s): {', '.join(unknown)}")
    return ExportOptions(model=model, scaling=scaling, given=given_options(kwargs), **kwargs)


def check_options(model: Any, options: dict[str, Any]) -> None:
    """Raise what :func:`export` would say of ``options`` (its keyword arguments, scaling knobs apart) before any
    work: an unknown option, a value out of range or unknown (a calibration method), an option for a traced model
    given an ONNX MODEL, a pass mark for a drift check the options leave unjudged (a sweep checks its cells so on
    load)."""
    checked = _options(model, dict(options))
    _validate(checked)
    onnx_file = isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx")
    if onnx_file:
        check_applies(RULES, checked.given, set(), known={"traced"})
    synthetic = checked.calib is None or str(checked.calib) == SYNTHETIC
    unjudged = unjudged_because(synthetic, onnx_file or checked.weights is not None, checked.holdout)
    if unjudged:  # known from the options alone (data too small to hold any out is found when it is read)
        why = f"the drift check is not judged ({'; '.join(unjudged)})"
        check_applies(RULES, checked.given, set(), known={"judged"}, why=why)


def _validate(options: ExportOptions) -> None:
    if options.method is not None and options.method not in METHODS:
        raise UnknownNameError("calibration method", options.method, METHODS)
    if options.opset is not None and not MIN_OPSET <= options.opset <= MAX_OPSET:
        raise UsageError(
            f"--opset must be between {MIN_OPSET} and {MAX_OPSET} (the dynamo exporter needs ≥ {MIN_OPSET}), "
            f"got {options.opset}"
        )
    options.thresholds()  # raises on nonsense values
    if options.deform is not None and options.deform not in ("native", "custom", "gather"):
        raise UsageError(f"--deform must be native, custom or gather, got '{options.deform}'")
    if options.tflite_io not in (None, "int8", "float"):
        raise UsageError(f"--tflite-io must be int8 or float, got '{options.tflite_io}'")
    if options.calib_size is not None and options.calib_size < 1:
        raise UsageError(f"--calib-size must be ≥ 1, got {options.calib_size}")
    if options.holdout < 0:
        raise UsageError(f"--holdout must be ≥ 0 (0 holds nothing out), got {options.holdout}")


def _check_counts(given: frozenset[str], calib: Any, holdout: Any, count: int, held: int) -> None:
    """A typed --calib-size or --holdout the data cannot fill is an error; a default one takes what there is."""
    n = len(calib) + len(holdout)
    if "holdout" in given and len(holdout) < held:
        raise UsageError(
            f"--holdout {held} asks for more samples than the calibration data can spare: it has {n}, and "
            f"{len(calib)} are kept to calibrate: give --holdout ≤ {len(holdout)}, or more data"
        )
    if "calib_size" in given and len(calib) < count:
        raise UsageError(
            f"--calib-size {count} asks for more samples than the calibration data has: {n} in all, "
            f"{len(holdout)} of them held out: give --calib-size ≤ {len(calib)} (or a smaller --holdout), or more data"
        )


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
    check_static_options(options.given, options.quantize, formats)
    if options.dynamic_batch and options.formats is not None and "tflite" in formats:  # not a failure after the work
        raise UsageError(
            "--dynamic-batch cannot go with --format tflite: the TFLite lowering needs a static batch; "
            "drop tflite from --format, or drop --dynamic-batch"
        )
    scaling = options.scaling
    input_shape = parse_input_shapes(options.input_shape)
    inputs = [options.model if isinstance(options.model, (str, Path)) else None]
    inputs += [options.calib, options.recipe, options.weights]
    if options.out is not None:  # fail before the slow part when OUT is taken
        check_output_dir(Path(options.out), options.force, inputs)
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
        seed=options.seed,
    )
    if decision is not None:
        margin = f" less {decision['headroom'] * 100:g}% headroom" if decision.get("headroom") else ""
        source.scaling_origin = f"planner: best expected top-1 within {decision['budget_ms']:g} ms{margin}"
    check_applies(RULES, options.given, {"traced"} if source.kind != "onnx" else set(), known={"traced"})
    if source.kind == "onnx":
        from edgecnn.pipeline.onnx_input import check_exportable

        check_exportable(source.onnx_path, options.quantize)
    recipe = source_recipe(source, options.recipe)
    if options.task is None and recipe.task is not None:  # the recipe's task, unless --task says otherwise
        options.task = recipe.task
        try:
            options.thresholds()
        except UsageError as error:
            raise UsageError(f"{recipe.path}: task: {error}") from None
    out = Path(options.out) if options.out is not None else default_out(source.name, profile.name)
    check_output_dir(out, options.force, inputs)
    method = options.method or recipe.method
    # an fp32-only export reads only the samples its checks run on
    count, held = (options.calib_size or recipe.calibration_size, options.holdout)
    if not options.quantize:
        count, held = CHECK_SAMPLES, 0
    if source.inputs:
        shapes = {name: tuple(shape[1:]) for name, shape in source.inputs.items()}
        calib, holdout = load_input_calibration(options.calib, shapes, recipe, count, held, options.seed)
    else:
        calib, holdout = load_calibration(
            options.calib, tuple(source.input_shape[1:]), recipe, count, held, options.seed
        )
    _check_counts(options.given, calib, holdout, count, held)
    truth = {"truth"} if (holdout if len(holdout) else calib).labels is not None else set()
    check_applies(RULES, options.given, truth, known={"truth"}, why="the calibration data has none")
    unjudged = not_judged_reasons(calib, holdout, source)
    why = f"the drift check is not judged ({'; '.join(unjudged)})"
    check_applies(RULES, options.given, set() if unjudged else {"judged"}, known={"judged"}, why=why)
    started = time.perf_counter()
    with atomic_output_dir(out, options.force) as tmp, scratch_beside(out) as scratch:
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
            bias_correction=recipe.bias_correction if options.bias_correction is None else options.bias_correction,
            weight_rounding=recipe.weight_rounding if options.weight_rounding is None else options.weight_rounding,
            opset=options.opset or recipe.opset,
            reporter=reporter,
            plan=decision,
        )
        check_tasks_before_stages(ctx)
        _warn_about_inputs(ctx)
        try:
            _run_stages(ctx)
        finally:
            reporter.close()
            quantized = ctx.result("quantize")
            if quantized is not None:
                quantized.quantizer.close()
        manifest = _manifest(ctx, out, time.perf_counter() - started)
        write_json(tmp / "manifest.json", manifest)
        (tmp / "report.md").write_text(render_report(manifest), encoding="utf-8")
    result = ExportResult(out, manifest)
    drift = manifest["drift"] or {}
    drifted = ""
    if drift.get("passed") is False and not options.allow_drift:
        drifted = f"int8 drift over the thresholds ({'; '.join(drift['final']['failures'])})"
    failed = {name: s for name, s in manifest["format_status"].items() if s["status"] == "failed"}
    if failed:
        made = [name for name, s in manifest["format_status"].items() if s["status"] == "ok"]
        reasons = "; ".join(f"{name} failed at {s['stage']}: {s['reason']}" for name, s in failed.items())
        also = f"; also {drifted}" if drifted else ""
        raise PartialExportError(f"partial export: {reasons}; {', '.join(made)} written to {out}{also}", result)
    if drifted:
        raise DriftError(f"{drifted}; artifacts and report in {out}, pass --allow-drift to accept", result)
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


def _runs(stage: Stage, ctx: ExportContext, makes: dict[str, tuple[str, ...]]) -> bool:
    """A stage runs when it applies and, if it makes a format's artifacts, one of its formats was chosen and
    has not been dropped by an earlier stage."""
    chosen = stage.name not in makes or any(f in ctx.formats and f not in ctx.dropped for f in makes[stage.name])
    return chosen and stage.applies(ctx)


def planned_stages(ctx: Any) -> list[str]:
    """The stages an export would run for ``ctx`` (anything with the ``options``, ``source``, ``formats`` and
    ``dropped`` of an :class:`ExportContext`), in order; ``edgecnn inspect`` shows them."""
    makes = stage_formats()
    return [stage.name for stage in STAGES if _runs(stage, ctx, makes)]


def _droppable(formats: tuple[str, ...]) -> bool:
    """Whether a failure of a stage that makes ``formats`` drops only them (every export makes ALWAYS)."""
    return bool(formats) and ALWAYS not in formats


def _run_stages(ctx: ExportContext) -> None:
    """Run the stage table. A failure in a stage of one format only (``.ort``, ``.tflite``) drops that format
    (its outputs removed) and the others go on; any other failure ends the export."""
    makes = stage_formats()
    for stage in STAGES:
        if not _runs(stage, ctx, makes):
            ctx.reporter.stage_finished(stage.name, "skipped", 0.0, "")
            continue
        missing = [key for key in stage.inputs if ctx.artifact(key) is None]
        if missing:
            raise RuntimeError(f"stage {stage.name} reads {', '.join(missing)}, which no earlier stage made")
        ctx.reporter.stage_started(stage.name, stage.title)
        t0 = time.perf_counter()
        formats = tuple(f for f in makes.get(stage.name, ()) if f in ctx.formats)
        try:
            result = stage.run(ctx)
        except EdgecnnError as error:
            stop_if_signalled()  # a failure a swallowed SIGTERM caused is a stop, not a failed (or dropped) stage
            seconds = time.perf_counter() - t0
            ctx.reporter.stage_finished(stage.name, "failed", seconds, str(error))
            if not _droppable(formats):
                raise
            drop_failed_stage(stage, ctx, formats, str(error), seconds)
            continue
        seconds = time.perf_counter() - t0
        ctx.results[stage.name] = result  # first: the export's cleanup closes what the result holds
        stop_if_signalled()  # a SIGTERM a library swallowed while the stage ran ends the export here
        hold_to_outputs(stage, result, ctx)
        if result.skipped is not None and _droppable(formats):
            _drop(ctx, formats, "skipped", stage.name, result.skipped)
        if result.failed is not None:  # part of its format failed; what it made is kept and declared
            _drop(ctx, formats, "failed", stage.name, result.failed)
            ctx.warn(f"{', '.join(formats)} failed ({stage.name}): {result.failed}; the other formats go on")
        status = "ok" if result.failed is None else "partial"
        ctx.reporter.stage_finished(stage.name, status, seconds, _summary(result.figures.get("check", {})))
        result.figures = {"status": status, "seconds": round(seconds, 3), **result.figures}


def drop_failed_stage(stage: Stage, ctx: ExportContext, formats: tuple[str, ...], reason: str, seconds: float) -> None:
    """Drop ``formats`` after ``stage`` failed: its declared outputs are removed from OUT (none is left
    half-written), the failure is recorded for the manifest and said as a warning."""
    for output in stage.outputs:
        if not output.scratch:
            (ctx.out / output.file).unlink(missing_ok=True)
    stray = _strays(ctx)
    if stray:
        raise RuntimeError(f"stage {stage.name} failed and left file(s) in OUT it does not declare: {', '.join(stray)}")
    ctx.failed_stages[stage.name] = {"status": "failed", "seconds": round(seconds, 3), "reason": reason}
    _drop(ctx, formats, "failed", stage.name, reason)
    ctx.warn(f"{', '.join(formats)} not made ({stage.name} failed): {reason}; the other formats go on")


def _drop(ctx: ExportContext, formats: tuple[str, ...], status: str, stage: str, reason: str) -> None:
    """Record that ``formats`` will not be made (the manifest's ``format_status``)."""
    for name in formats:
        ctx.dropped[name] = {"status": status, "stage": stage, "reason": reason}


def _strays(ctx: ExportContext) -> list[str]:
    """Files in OUT that are no artifact of a stage that ran."""
    made = {ctx.artifact(key) for key in artifact_order()} - {None}
    return sorted(str(p.relative_to(ctx.out)) for p in ctx.out.rglob("*") if p.is_file() and p not in made)


def hold_to_outputs(stage: Stage, result: StageResult, ctx: ExportContext) -> None:
    """Fail (a bug, not a user error) unless the stage made exactly what it declares: no undeclared artifact,
    every required one, each under its declared name, and nothing else in OUT."""
    declared = {output.key: output for output in stage.outputs}
    undeclared = sorted(set(result.artifacts) - set(declared))
    if undeclared:
        raise RuntimeError(f"stage {stage.name} made undeclared artifact(s) {', '.join(undeclared)}")
    for key, path in result.artifacts.items():
        output = declared[key]
        where = ctx.scratch if output.scratch else ctx.out
        if path != where / output.file or not path.is_file():
            raise RuntimeError(f"stage {stage.name}: artifact {key} is {path}, not the declared {where / output.file}")
    if result.skipped is None and result.failed is None:
        absent = [o.key for o in stage.outputs if o.required(ctx) and o.key not in result.artifacts]
        if absent:
            raise RuntimeError(f"stage {stage.name} did not make its declared output(s) {', '.join(absent)}")
    stray = _strays(ctx)
    if stray:
        raise RuntimeError(f"stage {stage.name} left file(s) in OUT that no stage declares: {', '.join(stray)}")


SUMMARY_SKIP = ("threshold", "samples", "max_abs_error", "outputs", "fp32_outputs", "int8_outputs")


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
    made = {key: ctx.artifact(key) for key in artifact_order()}
    artifacts = {key: artifact_entry(path, ctx.out) for key, path in made.items() if path is not None}
    stages = {name: result.figures for name, result in ctx.results.items()} | ctx.failed_stages
    stages = {s.name: stages.get(s.name, {"status": "skipped", "seconds": 0.0}) for s in STAGES}
    quantize = stages["quantize"]
    tflite = ctx.result("tflite")
    agreement, drift = drift_summary(ctx)
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
            "tflite_input_layout": tflite.input_layout if tflite else None,
            # the .tflite's 4-D outputs are in its input's layout (NHWC by default): a map's channels last
            "tflite_output_layouts": {
                o["name"]: tflite.input_layout for o in ctx.results["export"].figures["outputs"] if len(o["shape"]) == 4
            }
            if tflite
            else None,
            "input_name": next(iter(source.input_shapes())),
            "outputs": ctx.results["export"].figures["outputs"],
            "dynamic_batch": ctx.options.dynamic_batch,
        },
        "profile": ctx.profile.to_dict(),
        "plan": ctx.plan,
        "recipe": {**recipe.to_dict(), "path": recipe.path},
        "formats": list(ctx.formats),
        "format_status": {f: ctx.dropped.get(f, {"status": "ok"}) for f in ctx.formats},
        "calibration": {
            "method": ctx.calibration_method(),  # what the int8 graphs used: the range choice's
            "method_asked": ctx.method,  # --method, else the recipe's
            "range_choice": quantize.get("range_choice"),  # min-max, mean extremes or auto for min-max
            "bias_correction": ctx.bias_correction,  # asked for (the option, else the recipe); stages say what ran
            "weight_rounding": ctx.weight_rounding,
            "count": len(ctx.calib),
            "held_out": len(ctx.holdout),
            "source": ctx.calib.source,
            "sha256": ctx.calib.sha256,
            "synthetic": ctx.calib.synthetic,
            "bit_depths": list(ctx.calib.bit_depths),  # of the image files read; 16-bit scaled to 8
            "labels": ctx.calib.labels is not None,
            "calibrator_options": quantize.get("calibrator_options", {}),
            "per_tensor": (quantize.get("calibration") or {}).get("counts"),  # auto: tensors per method
            "tflite_per_tensor": _tflite_counts(tflite),  # auto: the .tflite's own activations per method
        },
        "stages": stages,
        "artifacts": artifacts,
        "agreement": agreement,
        "drift": drift,
        "warnings": ctx.warnings,
        "seconds": round(seconds, 2),
    }


def _tflite_counts(tflite: Any) -> dict[str, int] | None:
    """Method auto: how many of the int8 ``.tflite``'s activations took each method (None otherwise)."""
    int8 = tflite.figures.get("int8") if tflite is not None else None
    return ((int8 or {}).get("calibration") or {}).get("counts")
