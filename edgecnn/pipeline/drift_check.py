"""The export's drift stage: judge fp32 vs int8 on held-out data, repair when it fails, record everything."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.drift import HOST_KERNELS, Thresholds, evaluator, host_unlike_target, int8_basis
from edgecnn.analysis.mixed_precision import BASELINE, repair_model
from edgecnn.analysis.plots import layer_sqnr_chart
from edgecnn.errors import UsageError
from edgecnn.pipeline.context import DriftResult, ExportContext, Judgement
from edgecnn.runtime.host_timing import host_latency_ms
from edgecnn.runtime.loader import load
from edgecnn.runtime.outputs import Outputs


def _not_judged_reasons(ctx: ExportContext) -> list[str]:
    return not_judged_reasons(ctx.calib, ctx.holdout, ctx.source)


def not_judged_reasons(calib: Any, holdout: Any, source: Any) -> list[str]:
    """Why an export's drift check is not judged (none: it is), from its data and model."""
    return unjudged_because(calib.synthetic, source.trained, len(holdout))


def unjudged_because(synthetic: bool, trained: bool, held_out: int) -> list[str]:
    """Why a drift check is not judged on such data (``synthetic``) and model (``trained``) with ``held_out``
    samples (none: it is)."""
    reasons = []
    if synthetic:
        reasons.append("calibration data is synthetic")
    if not trained:
        reasons.append("the model has random weights")
    if not held_out:
        reasons.append("no held-out samples")
    return reasons


def int8_speed(ctx: ExportContext, basis: str) -> dict[str, Any] | None:
    """int8 against fp32 latency on the target: measured (ORT, :func:`host_speed`) when the target is this host's
    kind of kernels, else predicted by the profile's latency model from the graphs; None when it cannot be costed."""
    fp32, int8 = ctx.artifact("fp32_onnx"), ctx.artifact("int8_onnx")
    if basis == HOST_KERNELS:
        return host_speed(fp32, int8)
    from edgecnn.costs.op_costs import onnx_op_costs

    try:
        model = ctx.profile.latency
        fp32_ms = model.predict(onnx_op_costs(fp32, "fp32")).total_ms
        int8_ms = model.predict(onnx_op_costs(int8)).total_ms
    except UsageError:  # a graph the cost model cannot read (dynamic shapes): nothing to say
        return None
    how = f"predicted by the {ctx.profile.name} latency model ({model.runtime}, {model.threads} threads)"
    return _speed(fp32_ms, int8_ms, how)


def host_speed(fp32: Path, int8: Path) -> dict[str, Any]:
    """An int8 model against its fp32 twin on this host (ORT for `.onnx`, LiteRT with XNNPACK for `.tflite`; 1
    thread, min of interleaved rounds), with a note when this host's CPU is not of the target's kind. Fewer rounds
    than a choice's timing: a report, not a choice between near-equal graphs (DenseNet-121's fp32 `.tflite` takes
    50 ms a run)."""
    from edgecnn.runtime.host_timing import LOADS, interleaved_min_ms, runtime_label

    rounds, runs, budget_s, span_s = 3, 10, 4.0, 1.0  # a report: half a choice's span (MIN_SPAN_S)
    times = interleaved_min_ms({"fp32": fp32, "int8": int8}, rounds, runs, budget_s, span_s)
    how = (
        f"measured on this host, {runtime_label(int8)}, 1 thread, min over {LOADS} loads of at least {rounds} "
        f"interleaved rounds of up to {runs} runs (at least {span_s:g} s, about {budget_s:g} s at most)"
    )
    speed = _speed(times["fp32"], times["int8"], how)
    unlike = host_unlike_target(HOST_KERNELS)
    if unlike:
        speed["host_unlike_target"] = "this host's CPU is not of the target's kind (see the warnings): its timing"
    return speed


def tflite_speed(ctx: ExportContext, fp32: Path, int8: Path) -> dict[str, Any] | None:
    """:func:`host_speed` of the int8 `.tflite`, warning when int8 is the slower; None (and a warning) when LiteRT
    cannot time it."""
    try:
        speed = host_speed(fp32, int8)
    except (UsageError, RuntimeError) as error:  # a report, not a check: the artifacts were judged already
        ctx.warn(f"the int8 .tflite could not be timed against the fp32 one: {' '.join(str(error).split())[:200]}")
        return None
    warn_if_slower(ctx, speed, "the int8 .tflite")
    return speed


def _speed(fp32_ms: float, int8_ms: float, how: str) -> dict[str, Any]:
    ratio = round(int8_ms / fp32_ms, 3) if fp32_ms > 0 else float("nan")  # judged as recorded
    return {
        "fp32_ms": round(fp32_ms, 3),
        "int8_ms": round(int8_ms, 3),
        "int8_over_fp32": ratio,
        "faster": "int8" if ratio <= 1 else "fp32",
        "basis": how,
    }


def warn_if_slower(ctx: ExportContext, speed: dict[str, Any], artifact: str) -> None:
    """One warning when ``speed`` (:func:`int8_speed`'s record) finds int8 ``artifact`` slower than its fp32 twin."""
    if speed["faster"] == "fp32":
        ctx.warn(
            f"{artifact} is {100 * (speed['int8_over_fp32'] - 1):.0f}% slower than fp32 on {ctx.profile.name} "
            f"({speed['int8_ms']:.3g} vs {speed['fp32_ms']:.3g} ms, {speed['basis'].split(',')[0]}): ship the "
            "fp32 artifact if latency matters more than size"
        )


def _agreement(
    verdict: dict[str, Any], computations: dict[str, Any], samples: int, held_out: bool, labels: bool
) -> dict[str, Any]:
    agreement: dict[str, Any] = {
        "samples": samples,
        "held_out": held_out,
        "basis": verdict["basis"],
        "top1": verdict["top1_agreement"],
        "cosine": verdict["cosine"],
        **{k: {kk: vv for kk, vv in v.items() if kk != "per_class"} for k, v in computations.items()},
    }
    judged = computations[verdict["basis"]]
    if labels and "reference_accuracy" in judged:  # a classifier's; a segmentation net's mIoU is per output
        agreement.update(fp32_accuracy=judged["reference_accuracy"], int8_accuracy=judged["target_accuracy"])
    return agreement


def _evaluation(
    ctx: ExportContext, reference: Outputs | None = None, warn: bool = True
) -> tuple[Any, Outputs, Thresholds]:
    """The held-out samples (calibration ones when none are held out), fp32 ONNX outputs on them (computed once
    per export by the drift stage, passed on in its result) and the export's thresholds (their warning given when
    the outputs are computed here and ``warn``)."""
    data = ctx.holdout if len(ctx.holdout) else ctx.calib
    first = reference is None
    if first:
        reference = load(ctx.artifact("fp32_onnx")).run_all(data.images)
    return data, reference, _task_thresholds(ctx, reference, data.labels, warn=first and warn)


def _task_thresholds(ctx: ExportContext, reference: Outputs, labels: Any, warn: bool) -> Thresholds:
    """The export's thresholds; when drift is not judged (synthetic data, random weights) and a task cannot read
    the reference's outputs (a random detector finds nothing), each output's raw figures are recorded instead of
    failing the export: only a judged check holds the task to its data."""
    from edgecnn.analysis.drift import figures
    from edgecnn.errors import UnusedOptionError

    thresholds = ctx.options.thresholds()
    if not _not_judged_reasons(ctx) or thresholds.tasks == "raw":
        return thresholds
    try:
        figures(reference, reference, labels, (), thresholds)
    except UnusedOptionError:
        raise
    except UsageError as error:
        if warn:
            ctx.warn(f"task figures not recorded ({error}): each output's raw figures are")
        return dataclasses.replace(thresholds, tasks="raw", given=frozenset())
    return thresholds


def drift_judge(ctx: ExportContext) -> Any:
    """A function giving an int8 model's drift verdict on the drift stage's samples and basis (for choices the
    quantize stage makes on quality; the fp32 outputs are computed on its first call), or None when the export's
    drift is not judged (synthetic data, random weights): a choice that trades on quality is made only where
    quality is judged."""
    from edgecnn.analysis.drift import int8_computations, verdict

    if _not_judged_reasons(ctx):
        return None
    basis = int8_basis(ctx.profile.arch, ctx.profile.features)
    known: list[tuple[Any, Outputs, Thresholds]] = []  # the evaluation, made on the first call

    def judge(path: Path) -> dict[str, Any]:
        if not known:
            known.append(_evaluation(ctx, warn=False))  # the drift stage gives the thresholds' warning
        data, reference, thresholds = known[0]
        computed = int8_computations(path, data.images, reference, data.labels, kinds=(basis,), thresholds=thresholds)
        return verdict(computed, basis, thresholds)

    return judge


def ranges_pinned(ctx: ExportContext) -> str | None:
    """Why the quantize stage's range choice is not made whatever the model, or None: a
    calibration method given (``--method``; a recipe's ``method: minmax`` is its default, not a pin) or a recipe
    that does not calibrate by min-max."""
    if ctx.options.method is not None:
        return f"--method {ctx.options.method} given"
    if ctx.method != "minmax":
        return f"the recipe calibrates by {ctx.method}"
    return None


def flips_judge(ctx: ExportContext) -> tuple[Any, str | None]:
    """The judge that counts the top-1 changes of an int8 graph on the moved calibration samples
    (``range_choice.FlipJudge``: the range choice decides by it, the weights choice weighs it too), or None and why
    it is not made: drift not judged (synthetic data, random weights, no held-out samples: a choice that trades on
    quality is made only where quality is judged, although this judge counts on calibration samples), or a model it
    cannot judge (or whose fp32 pass fails)."""
    from edgecnn.errors import first_line
    from edgecnn.pipeline.range_choice import flip_judge

    reasons = _not_judged_reasons(ctx)
    if reasons:
        return None, f"drift is not judged ({'; '.join(reasons)})"
    try:
        return flip_judge(ctx.artifact("fp32_onnx"), ctx.calib.images, ctx.options.thresholds().tasks)
    except Exception as error:  # optional choices: the export goes on with min-max and the drift samples
        return None, f"range choice failed: {first_line(error)}"


def check_drift(ctx: ExportContext) -> DriftResult:
    """Measure, judge and (when asked and needed) repair the int8 model; the stage's result."""
    data, fp32, thresholds = _evaluation(ctx)
    reasons = _not_judged_reasons(ctx)
    basis = int8_basis(ctx.profile.arch, ctx.profile.features)
    evaluate = evaluator(data.images, fp32, data.labels, basis, thresholds)
    int8_path = ctx.artifact("int8_onnx")
    verdict, computations = evaluate(int8_path)
    record: dict[str, Any] = {"judged": not reasons, "not_judged_because": reasons, "initial": dict(verdict)}
    result = DriftResult(reference=fp32)
    unlike = host_unlike_target(basis)
    if unlike:
        record["host_unlike_target"] = unlike
        ctx.warn(unlike)
    if reasons:
        ctx.warn(f"drift not judged ({'; '.join(reasons)}): figures recorded, thresholds not applied")
    elif not verdict["passed"] and ctx.options.fix:
        record["fix"] = _repair(ctx, result, int8_path, verdict, computations, evaluate, data.images, basis)
        verdict, computations = record["fix"]["verdict"], record["fix"].pop("computations")
    record.update(final=verdict, passed=verdict["passed"] if not reasons else None)
    speed = int8_speed(ctx, basis)
    if speed is not None:
        record["speed"] = speed
        warn_if_slower(ctx, speed, "the int8 ONNX/ORT model")
    result.record = record
    result.agreement = _agreement(verdict, computations, len(data), bool(len(ctx.holdout)), data.labels is not None)
    per_class = computations[basis].get("per_class")
    if per_class:
        result.agreement["per_class"] = per_class
    check = {**_check_figures(verdict), "basis": basis}
    check["verdict"] = "not judged" if reasons else ("passed" if verdict["passed"] else "FAILED")
    result.figures = {"check": check}
    return result


def _repair(
    ctx: ExportContext,
    result: DriftResult,
    int8_path: Path,
    verdict: dict[str, Any],
    computations: dict[str, Any],
    evaluate: Any,
    images: np.ndarray,
    basis: str,
) -> dict[str, Any]:
    quantized = ctx.result("quantize")
    work = ctx.scratch / "repair"
    work.mkdir(exist_ok=True)
    search, fix = repair_model(
        quantized.quantizer,
        evaluate,
        int8_path,
        int8_path,
        work,
        (verdict, computations),
        method=ctx.calibration_method(),
        reduce_range=ctx.profile.reduce_range,
        images=images,
        saturating_target=basis == HOST_KERNELS,
        keep_float=ctx.recipe.keep_float_nodes + quantized.float_nodes,
        slow_op_types=quantized.float_op_types,  # float at export: float in every try
        slow_float_already=True,
    )
    best = search.best
    if best.label != BASELINE:
        result.artifacts["int8_onnx"] = int8_path
        result.outputs["int8_onnx"] = load(int8_path).run_all(ctx.check_inputs())
    fix.update(verdict=best.verdict, computations=best.computations)
    if basis == HOST_KERNELS:
        fix["latency_ms_before"] = round(host_latency_ms(work / "baseline.onnx"), 3)
        fix["latency_ms_after"] = round(host_latency_ms(int8_path), 3)
        fix["latency_basis"] = "measured on this host, ORT, 1 thread, median of 20"
    else:
        fix["latency_basis"] = "not measured: the target is not this host (the latency model will predict it)"
    if search.layers:
        fix["layers"] = [e.to_dict() for e in search.layers]
        chart = ctx.out / "drift_layers.png"
        layer_sqnr_chart(search.layers, chart, f"{ctx.source.name}: per-layer SQNR of int8 vs fp32 (before repair)")
        result.artifacts["drift_chart"] = chart
    return fix


def _check_figures(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict's figures for a stage check: top-1 (for a classification output), worst cosine and SQNR, drop."""
    check: dict[str, Any] = {}
    if verdict["top1_agreement"] is not None:
        check["top1"] = verdict["top1_agreement"]
    check.update(cosine=verdict["cosine"], sqnr_db=verdict["sqnr_db"], task_score=verdict["score"])
    if verdict.get("accuracy_drop_points") is not None:
        check["accuracy_drop_points"] = verdict["accuracy_drop_points"]
    return check


def _artifact_evaluator(ctx: ExportContext, name: str, layout: str | None) -> tuple[Any, Any]:
    """The held-out data and a function judging an int8 artifact file of format ``name`` (the `.tflite`) against
    fp32 ONNX: path → (verdict, computations), like the drift stage's :func:`evaluator` for the ORT model."""
    from edgecnn.analysis.drift import figures, verdict

    drift = ctx.result("drift")
    data, fp32, thresholds = _evaluation(ctx, drift.reference if drift else None)

    def evaluate(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        out = load(path, layout=layout).run_all(data.images)
        computations = {name: figures(fp32, out, data.labels, data.class_names, thresholds)}
        return verdict(computations, name, thresholds), computations

    return data, evaluate


def judge_artifact(
    ctx: ExportContext, path: Path, name: str, layout: str | None = None, quantizer: Any = None, rank: Any = None
) -> tuple[dict[str, Any], Judgement, Path | None]:
    """Drift of another int8 artifact (the `.tflite` at ``path``) against fp32 ONNX on the held-out samples: its
    stage check, its judgement, and — when a judged check failed and ``quantizer`` can re-quantize it (with
    ``rank`` ranking its layers) — the repair's choice, written over ``path`` (None when nothing was replaced)."""
    data, evaluate = _artifact_evaluator(ctx, name, layout)
    reasons = _not_judged_reasons(ctx)
    judged, computations = evaluate(path)
    outcome: dict[str, Any] = {"judged": not reasons}
    chosen = None
    if not reasons and not judged["passed"] and ctx.options.fix and quantizer is not None:
        work = ctx.scratch / f"repair-{name}"
        work.mkdir(exist_ok=True)
        search, fix = repair_model(
            quantizer,
            evaluate,
            path,
            path,
            work,
            (judged, computations),
            method=quantizer.method,
            reduce_range=False,
            images=data.images,
            saturating_target=False,
            rank=rank,
        )
        outcome["initial"] = {"failures": judged["failures"], "score": judged["score"]}
        if search.layers:
            fix["layers"] = [e.to_dict() for e in search.layers]
        outcome["fix"] = fix
        judged, computations = search.best.verdict, search.best.computations
        chosen = None if search.best.label == BASELINE else search.best.path
    summary = {k: v for k, v in computations[name].items() if k != "per_class"}
    outcome.update(passed=judged["passed"] if not reasons else None, failures=judged["failures"])
    check = _check_figures(judged)
    check["verdict"] = "not judged" if reasons else ("passed" if judged["passed"] else "FAILED")
    return check, Judgement({"samples": len(data), **summary}, outcome), chosen


def drift_summary(ctx: ExportContext) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The manifest's ``agreement`` and ``drift``: the drift stage's, with every other judged int8 artifact's
    figures under ``formats`` (a judged failure of any makes the whole verdict fail)."""
    drift = ctx.result("drift")
    if drift is None:
        return None, None
    agreement, record = copy.deepcopy(drift.agreement), copy.deepcopy(drift.record)
    for name, result in ctx.results.items():
        if result.judgement is None:
            continue
        outcome = result.judgement.verdict
        agreement.setdefault("formats", {})[name] = result.judgement.agreement
        record.setdefault("formats", {})[name] = outcome
        if outcome["passed"] is False:
            record["passed"] = False
            record["final"]["failures"] = [*record["final"]["failures"], *(f"{name}: {f}" for f in outcome["failures"])]
    return agreement or None, record or None
