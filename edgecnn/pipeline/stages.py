"""The pipeline as one table of stages: what each reads, what it makes, and how it is checked.

Each stage declares its outputs (artifact key and file name); its function returns a
:class:`StageResult` holding exactly those artifacts and its figures (``check`` holds the
numbers of its check), and reads what earlier stages made from their results. The runner
(``pipeline/export.py``) holds each stage to its declaration; the CLI's help, the manifest's
artifact order and the format table's stage names read ``STAGES``. A failed check raises
``CheckFailedError`` with both numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import max_abs_error, relative_max_error
from edgecnn.errors import CheckFailedError, UsageError, reading
from edgecnn.pipeline.context import (
    ORT_INT8_THRESHOLD,
    PARITY_THRESHOLD,
    RULES,
    ExportContext,
    QuantizeResult,
    SimplifyResult,
    StageResult,
    TfliteOpsResult,
    TfliteResult,
)
from edgecnn.runtime.loader import load
from edgecnn.runtime.outputs import Outputs, matched


def _always(ctx: ExportContext) -> bool:
    return True


def _never(ctx: ExportContext) -> bool:
    return False


def _quantized(ctx: ExportContext) -> bool:
    return ctx.options.quantize


@dataclass(frozen=True)
class Output:
    """An artifact a stage declares: its manifest key, its file name, and whether the stage must make it."""

    key: str
    file: str
    required: Callable[[ExportContext], bool] = _always
    scratch: bool = False  # an intermediate in the scratch directory, not an artifact of OUT


@dataclass(frozen=True)
class Stage:
    """One row of the pipeline table: the artifact keys it reads, the outputs it declares, its check."""

    name: str
    title: str
    inputs: tuple[str, ...]
    outputs: tuple[Output, ...]
    check: str
    run: Callable[[ExportContext], StageResult]
    applies: Callable[[ExportContext], bool] = _always


def _parity(reference: Outputs, other: Outputs, what: str, threshold: float = PARITY_THRESHOLD) -> dict:
    """Every output of ``other`` against ``reference``: max abs error relative to the output's range; the figures
    are the worst output's (each output's too when there are several)."""
    per_output = {
        name: {"max_abs_error": max_abs_error(ref, out), "relative_error": relative_max_error(ref, out)}
        for name, ref, out in matched(reference, other, what)
    }
    for name, output in per_output.items():
        if not output["relative_error"] <= threshold:  # NaN fails too
            where = f" (output '{name}')" if len(per_output) > 1 else ""
            raise CheckFailedError(
                f"{what}{where}: max abs error {output['max_abs_error']:.3g} is {output['relative_error']:.3g} of the "
                f"output range, over the {threshold:g} threshold"
            )
    figures = {
        "max_abs_error": max(o["max_abs_error"] for o in per_output.values()),
        "relative_error": max(o["relative_error"] for o in per_output.values()),
        "threshold": threshold,
        "samples": len(next(iter(reference.values()))),
    }
    if len(per_output) > 1:
        figures["outputs"] = per_output
    return figures


def _copy_onnx(given: Path, path: Path) -> None:
    """Copy an ONNX MODEL to ``path`` self-contained: weights kept in external data (``model.onnx.data``)
    are read from beside ``given`` and embedded."""
    import onnx

    with reading(given, "ONNX MODEL", "keep its external data files beside it, as they were saved"):
        model = onnx.load(str(given), load_external_data=True)
    onnx.save_model(model, str(path))


def run_export(ctx: ExportContext) -> StageResult:
    """Trace the module to ONNX (or take the given ONNX file), checked by the ONNX checker and an ORT load."""
    from edgecnn.pipeline.onnx_export import export_onnx, graph_outputs

    path = ctx.scratch / "exported.onnx"
    source = ctx.source
    check = {"onnx_checker": "passed", "ort_load": "passed"}
    if source.kind == "onnx":
        _copy_onnx(source.onnx_path, path)
        _check_deform(ctx, path)
        figures, working = _adapt_onnx(ctx, path, check)
        outputs = _check_tasks(ctx, graph_outputs(path))
        return StageResult(
            {"given": str(source.onnx_path), **figures, "outputs": outputs, "check": check},
            {"exported": path},
            {"exported": working},
        )
    info = export_onnx(source.module, source.inputs or source.input_shape, path, ctx.opset, ctx.options.dynamic_batch)
    _check_outputs(path, source.name)
    _check_deform(ctx, path)
    return StageResult({**info, "outputs": _check_tasks(ctx, graph_outputs(path)), "check": check}, {"exported": path})


def _check_deform(ctx: ExportContext, path: Path) -> None:
    """``--deform`` given for a model without a DeformConv is an error (it would change nothing)."""
    if "deform" not in ctx.options.given:
        return
    import onnx

    from edgecnn.applies import check_applies

    deformable = has_deform_conv(onnx.load(str(path), load_external_data=False))
    check_applies(RULES, ctx.options.given, {"deformable"} if deformable else set(), known={"deformable"})


def check_tasks_before_stages(ctx: ExportContext) -> None:
    """``--task`` and the task-only options checked before any stage runs where the outputs are known without
    tracing — a zoo network's one N × classes ``logits``; an ONNX MODEL's outputs when their sizes are static —
    so that such a usage error comes before the work. The export stage checks them again on its graph."""
    from edgecnn.models.registry import DEFAULT_NUM_CLASSES
    from edgecnn.pipeline.onnx_export import graph_outputs
    from edgecnn.runtime.outputs import SINGLE_OUTPUT

    if ctx.source.kind == "zoo":
        _check_tasks(ctx, [{"name": SINGLE_OUTPUT, "shape": [1, ctx.options.num_classes or DEFAULT_NUM_CLASSES]}])
    elif ctx.source.kind == "onnx":
        outputs = graph_outputs(ctx.source.onnx_path)
        if all(d for o in outputs for d in o["shape"][1:]):
            _check_tasks(ctx, outputs)


def _check_tasks(ctx: ExportContext, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``outputs``, once ``--task`` is found to name only outputs the model has (before calibration and drift: a
    typo is never ignored), and the task-only options given are for tasks it has."""
    from edgecnn.analysis.drift import FLAGS, check_drop_applies
    from edgecnn.analysis.task_segmentation import check_threshold_applies
    from edgecnn.analysis.tasks import check_task_options, output_tasks, parse_tasks

    shapes = {o["name"]: tuple(d or 1 for d in o["shape"]) for o in outputs}  # the names are checked, not the sizes
    chosen = output_tasks(shapes, parse_tasks(ctx.options.task))
    if all(d for o in outputs for d in o["shape"][1:]):  # static sizes: these are the drift check's tasks already
        thresholds = ctx.options.thresholds()
        tasks = {name: c["task"] for name, c in chosen.items()}
        check_task_options(thresholds.given, tasks, FLAGS)
        check_drop_applies(thresholds.given, tasks, (ctx.holdout if len(ctx.holdout) else ctx.calib).labels)
        check_threshold_applies(
            thresholds.given, {name: shapes[name] for name in tasks if tasks[name] == "segmentation"}
        )
        _check_num_classes(ctx, {name: shapes[name] for name in tasks if tasks[name] == "classification"})
        if list(tasks.values()) == ["classification"]:
            _check_class_labels(ctx, shapes[next(iter(tasks))][-1])
    return outputs


def _check_class_labels(ctx: ExportContext, classes: int) -> None:
    """Per-sample labels must name one of the lone classification output's ``classes``: every sample's, calibration
    and held-out, checked before calibration (the drift check reads the held-out ones only, after quantizing)."""
    from edgecnn.analysis.drift import check_labels

    parts = [part.labels for part in (ctx.calib, ctx.holdout) if part.labels is not None and part.labels.ndim == 1]
    if parts:
        check_labels(np.concatenate(parts), classes)


def _check_num_classes(ctx: ExportContext, logits: dict[str, tuple[int, ...]]) -> None:
    """A factory given --num-classes whose classification outputs have other class counts ignored it (a factory
    taking ``**kwargs``): an error, not a model of the wrong head."""
    wanted = ctx.options.num_classes
    if "num_classes" not in ctx.options.given or wanted is None or not logits:
        return
    if all(shape[-1] != wanted for shape in logits.values()):
        shown = ", ".join(f"'{name}' {'×'.join(map(str, shape[1:]))}" for name, shape in logits.items())
        raise UsageError(
            f"--num-classes {wanted} was passed to MODEL {ctx.source.name}, but its classification output gives "
            f"other class counts ({shown}): the factory ignores num_classes; make it build that head, or drop "
            "--num-classes"
        )


def _check_outputs(path: Path, name: str) -> None:
    """A traced model must give float outputs edgecnn can compare (not an ArgMax's indices)."""
    import onnx

    from edgecnn.pipeline.onnx_input import output_refusals

    reasons = output_refusals(onnx.load(str(path), load_external_data=False))
    if reasons:
        raise UsageError(f"MODEL {name} cannot be exported: {'; '.join(reasons)}")


def _adapt_onnx(ctx: ExportContext, path: Path, check: dict[str, Any]) -> tuple[dict[str, Any], Outputs]:
    """Make the copied ONNX MODEL at ``path`` the working graph: an old opset upgraded to the working one, free
    input dims fixed to the input shape; the result must give the original's outputs in ONNX Runtime (its
    relative error goes into ``check``). The manifest's record of both, and the working graph's outputs on the
    check inputs."""
    import onnx

    from edgecnn.pipeline.onnx_export import check_onnx
    from edgecnn.pipeline.onnx_input import default_opset, fix_input_dims, upgrade_opset, wants_upgrade

    model, given = onnx.load(str(path)), ctx.source.onnx_path
    original = default_opset(model)
    opset = {"original": original, "working": original, "converted": False}
    if wants_upgrade(original, ctx.opset, ctx.options.opset is not None):
        model = upgrade_opset(model, ctx.opset, given)
        opset.update(working=ctx.opset, converted=True, converter="onnx.version_converter")
    fixed = fix_input_dims(model, list(ctx.source.input_shapes().values()))
    changed = opset["converted"] or fixed
    change = f"opset {original} → {opset['working']}" if opset["converted"] else "fixed input dims"
    before = path.with_name("given.onnx")
    if changed:
        path.rename(before)
        onnx.save_model(model, str(path))
    try:
        check_onnx(path)
    except ValueError as error:  # the user's file is bad: bad input, not a failed check of edgecnn's work
        reason = str(error).replace(str(path), str(given))  # its working copy in the partial OUT means nothing to them
        raise UsageError(
            f"{given} is not a valid ONNX model{f' after {change}' if changed else ''}: {reason}"
        ) from None
    inputs = ctx.check_inputs()
    fix = "ONNX Runtime cannot run it on its input shape; check the model (or --input-shape) in ONNX Runtime"
    try:
        with reading(given, "ONNX MODEL", fix):  # zero-size dims, absurd attributes: the user's file, not a bug
            working = load(path).run_all(inputs)
    except UsageError as error:  # an output without a batch axis: named by the user's file, not its working copy
        raise UsageError(str(error).replace(str(path), str(given))) from None
    if not changed:
        return {"opset": opset, "fixed_dims": fixed}, working
    figures = _parity(load(before).run_all(inputs), working, f"parity {change} vs the given model (ORT fp32)")
    before.unlink()
    check["conversion_relative_error"] = figures["relative_error"]
    return {"opset": opset, "fixed_dims": fixed}, working


def run_parity(ctx: ExportContext) -> StageResult:
    """ONNX Runtime fp32 against PyTorch on calibration samples and random inputs, every output."""
    inputs = ctx.check_inputs()
    torch_out = load(ctx.source.module, input_size=ctx.source.input_shape[1:]).run_all(inputs)
    ort_out = load(ctx.artifact("exported")).run_all(inputs)
    figures = {"check": _parity(torch_out, ort_out, "parity ORT fp32 vs PyTorch")}
    return StageResult(figures, outputs={"exported": ort_out})


def _outputs_of(ctx: ExportContext, key: str) -> Outputs:
    """Artifact ``key``'s outputs on the check inputs: an earlier stage's when one ran it, else run here."""
    try:
        return ctx.outputs(key)
    except KeyError:
        return load(ctx.artifact(key)).run_all(ctx.check_inputs())


def run_simplify(ctx: ExportContext) -> SimplifyResult:
    """Simplify the graph; its outputs must equal the exported graph's."""
    from edgecnn.pipeline.simplify import simplify

    exported, dst = ctx.artifact("exported"), ctx.out / "model.fp32.onnx"
    info = simplify(exported, dst)
    float_nodes: tuple[str, ...] = ()
    if ctx.options.deform == "gather":
        info["deform"], float_nodes = _rewrite_deform(dst)
    before = _outputs_of(ctx, "exported")
    after = load(dst).run_all(ctx.check_inputs())
    figures = {**info, "check": _parity(before, after, "parity simplified vs exported")}
    return SimplifyResult(figures, {"fp32_onnx": dst}, {"fp32_onnx": after}, float_nodes=float_nodes)


def _rewrite_deform(path: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Replace every DeformConv by the gather decomposition: its figures and the sampling-path nodes (float in
    int8)."""
    import onnx

    from edgecnn.lowering.onnx import rewrite_deform_conv

    model = onnx.load(str(path))
    if not has_deform_conv(model):
        return {"rewritten": 0}, ()
    rewritten, sampling = rewrite_deform_conv(onnx.shape_inference.infer_shapes(model))
    onnx.save_model(rewritten, str(path))
    float_nodes = tuple(n for names in sampling.values() for n in names)
    return {"rewritten": len(sampling), "lowering": "gather", "float_nodes": len(float_nodes)}, float_nodes


def run_quantize(ctx: ExportContext) -> QuantizeResult:
    """Static QDQ int8 calibrated on the calibration set; the int8 graph must load and give finite outputs."""
    from edgecnn.pipeline.drift_check import drift_judge, flips_judge, ranges_pinned
    from edgecnn.pipeline.quantize import Quantizer, quantize_for_target, weighs_weights

    dst = ctx.out / "model.int8.onnx"
    recipe = ctx.recipe
    advance = ctx.reporter.bar(f"calibrating ({ctx.method}, {len(ctx.calib)} samples)", len(ctx.calib))
    # A per-tensor target shares one weight scale per layer: cross-layer equalization evens the channels out first.
    per_channel = ctx.profile.per_channel
    quantizer = Quantizer(
        ctx.artifact("fp32_onnx"),
        ctx.calib.images,
        recipe.bins,
        recipe.percentile,
        advance,
        per_channel,
        not per_channel,
        ctx.bias_correction,
        round_weights=ctx.weight_rounding,
    )
    try:
        # Pre-processing folds some sampling-path nodes into constants: only the ones left need keeping float.
        kept = set(quantizer.node_names)
        float_nodes = tuple(n for n in ctx.result("simplify").float_nodes if n in kept)
        nodes = recipe.keep_float_nodes + float_nodes
        work = ctx.scratch / "float-choice"
        pinned = ranges_pinned(ctx)
        # The moved samples judge the range choice and, on a target whose weights are weighed, the weights choice.
        flips, unjudged = flips_judge(ctx) if pinned is None or weighs_weights(ctx.profile) else (None, None)
        unchosen = pinned or unjudged
        info, op_types, quantizer = quantize_for_target(
            quantizer, dst, ctx.method, recipe, ctx.profile, nodes, work, drift_judge(ctx), ctx.reporter.bar, flips,
            choose_ranges=pinned is None,
        )  # fmt: skip
        if unchosen is not None:
            info["range_choice"] = {"chosen": ctx.method, "not_chosen_because": unchosen}
        out = load(dst).run_all(ctx.check_inputs())
        infinite = [name for name, values in out.items() if not np.isfinite(values).all()]
        if infinite:
            raise CheckFailedError(f"the int8 model gives non-finite outputs ({', '.join(infinite)})")
    except BaseException:
        quantizer.close()
        raise
    figures = {**info, "check": {"ort_load": "passed", "finite_outputs": True}}
    return QuantizeResult(
        figures, {"int8_onnx": dst}, {"int8_onnx": out}, quantizer=quantizer, float_nodes=float_nodes,
        float_op_types=op_types,
    )  # fmt: skip


def run_ort(ctx: ExportContext) -> StageResult:
    """`.ort` files for the fp32 and int8 graphs; each must give its `.onnx` twin's outputs."""
    from edgecnn.pipeline.ort_format import convert_to_ort

    inputs, result = ctx.check_inputs(), StageResult()
    check: dict[str, Any] = {}
    for key, threshold in (("fp32", PARITY_THRESHOLD), ("int8", ORT_INT8_THRESHOLD)):
        onnx_path = ctx.artifact(f"{key}_onnx")
        if onnx_path is None:
            continue
        made = convert_to_ort(onnx_path, ctx.out, ctx.profile.is_arm)
        result.artifacts[f"{key}_ort"] = made["ort"]
        if made["config"] is not None:
            result.artifacts[f"{key}_ort_config"] = made["config"]
        result.figures.update(target_platform=made["target_platform"], optimization_style=made["optimization_style"])
        figures = _parity(
            ctx.outputs(f"{key}_onnx"), load(made["ort"]).run_all(inputs), f".ort {key} vs .onnx {key}", threshold
        )
        check[f"{key}_relative_error"] = figures["relative_error"]
        if "outputs" in figures:
            check[f"{key}_outputs"] = figures["outputs"]
    result.figures["check"] = check
    return result


def run_drift(ctx: ExportContext) -> StageResult:
    """fp32 vs int8 on held-out samples, for the exact QDQ and the host kernels; judged, and repaired if asked."""
    from edgecnn.pipeline.drift_check import check_drift

    return check_drift(ctx)


def has_deform_conv(model: Any) -> bool:
    """Whether the ONNX ``model`` has a DeformConv node."""
    return any(n.op_type == "DeformConv" for n in model.graph.node)


def tflite_graph(model: Any) -> tuple[Any, tuple[str, ...]]:
    """The ONNX graph the TFLite lowering takes for the fp32 ``model``: every DeformConv replaced by its
    builtin-op (gather) decomposition, with the scopes of the sampling path that stay float in int8."""
    import onnx

    if not has_deform_conv(model):
        return model, ()
    from edgecnn.lowering.onnx import rewrite_deform_conv
    from edgecnn.lowering.tflite.quantize import node_scope

    model, sampling = rewrite_deform_conv(onnx.shape_inference.infer_shapes(model))
    scope = node_scope(model, [n for names in sampling.values() for n in names])
    return model, (scope,) if scope else ()


@dataclass(frozen=True)
class TfliteLowering:
    """The fp32 graph as the TFLite lowering takes it (:func:`tflite_graph`) with its float scopes, and the
    ``lowered`` model (a LoweredModel), or the ``problem`` that keeps it from being lowered."""

    graph: Any
    float_scopes: tuple[str, ...]
    lowered: Any = None
    problem: str | None = None


def lower_for_tflite(model: Any, nchw_io: bool = False) -> TfliteLowering:
    """Lower the fp32 ``model`` to a `.tflite`, or say why not: every op type without a lowering (with its nodes),
    else the node a lowering refuses (an attribute or shape no TFLite op takes, as bicubic Resize or a 1-D Conv)."""
    from edgecnn.lowering.tflite import convert, unsupported_nodes

    graph, float_scopes = tflite_graph(model)
    missing = missing_ops_sentence(unsupported_nodes(graph))
    if missing is not None:
        return TfliteLowering(graph, float_scopes, problem=missing)
    try:
        return TfliteLowering(graph, float_scopes, lowered=convert(graph, nchw_io=nchw_io))
    except UsageError as error:
        return TfliteLowering(graph, float_scopes, problem=str(error))


def missing_ops_sentence(missing: dict[str, list[str]]) -> str | None:
    """``unsupported_nodes``' answer as one sentence (None when nothing is missing)."""
    if not missing:
        return None
    parts = [f"{op} ({', '.join(nodes)})" for op, nodes in missing.items()]
    return f"the TFLite lowering has no {', '.join(missing)} yet: {'; '.join(parts)}"


def run_tflite_ops(ctx: ExportContext) -> TfliteOpsResult:
    """Before the slow stages: the fp32 graph must lower to TFLite, every op with a lowering that takes it (the
    lowering is kept for the tflite stage). When the profile chose tflite (not --format) a problem is a warning and
    no .tflite; asked for, it fails the format."""
    import onnx

    lowering = lower_for_tflite(onnx.load(str(ctx.artifact("fp32_onnx"))), ctx.options.nchw_io)
    missing = lowering.problem
    if missing is None:
        return TfliteOpsResult({"check": {"all_ops_lowered": True}}, lowering=lowering)
    if not ctx.formats_requested:
        ctx.warn(f"no .tflite: {missing} (the profile's formats asked for it)")
        return StageResult({"check": {"all_ops_lowered": False}}, skipped=missing)
    raise UsageError(missing)


def run_tflite(ctx: ExportContext) -> TfliteResult:
    """Lower the fp32 graph to a `.tflite` (no TensorFlow), checked against ORT fp32; then the int8 `.tflite`."""
    import onnx

    from edgecnn.lowering.tflite.quantize import variable_division_scope

    fp32 = onnx.load(str(ctx.artifact("fp32_onnx")))
    deformable = has_deform_conv(fp32)
    checked = ctx.result("tflite_ops")
    lowering = checked.lowering if isinstance(checked, TfliteOpsResult) else None
    lowering = lowering or lower_for_tflite(fp32, ctx.options.nchw_io)
    if lowering.problem is not None:
        raise UsageError(f"--format tflite: {lowering.problem}")
    lowered, float_scopes = lowering.lowered, lowering.float_scopes
    division = variable_division_scope(lowering.graph)
    if division:
        float_scopes += (division,)
    dst = ctx.out / "model.fp32.tflite"
    dst.write_bytes(lowered.data)
    out = load(dst, layout=lowered.input_layout).run_all(ctx.check_inputs())
    figures = _parity(ctx.outputs("fp32_onnx"), out, ".tflite fp32 vs ORT fp32")
    result = TfliteResult(
        {
            "input_layout": lowered.input_layout,
            "op_counts": lowered.op_counts,
            "deform": "gather decomposition" if deformable else None,
            "xnnpack": _delegation(ctx, dst, "fp32 .tflite"),
        },
        {"fp32_tflite": dst},
        {"fp32_tflite": out},
        input_layout=lowered.input_layout,
    )
    check: dict[str, Any] = {"relative_error": figures["relative_error"]}
    if "outputs" in figures:
        check["outputs"] = figures["outputs"]
    if ctx.options.quantize:
        source, equalization = lowered.data, None
        if not ctx.profile.per_channel:  # one weight scale per layer: quantize an equalized twin (as the ORT stage)
            equalized, equalization = equalized_tflite(fp32, ctx.calib.images, ctx.scratch, ctx.options.nchw_io)
            source = equalized or source
        try:
            _tflite_int8(ctx, result, source, float_scopes)
        except (UsageError, CheckFailedError) as error:  # the checked fp32 .tflite stays; the format still fails
            (ctx.out / "model.int8.tflite").unlink(missing_ok=True)
            result.artifacts.pop("int8_tflite", None)
            result.outputs.pop("int8_tflite", None)
            result.judgement, result.failed = None, f"int8 .tflite: {error} (model.fp32.tflite is written)"
            result.figures["int8"] = {"status": "failed", "reason": str(error)}
        else:
            result.figures["int8"]["equalization"] = equalization
            check.update({f"int8_{k}": v for k, v in result.figures["int8"]["check"].items()})
    result.figures["check"] = check
    return result


def equalized_tflite(fp32: Any, images: Any, scratch: Path, nchw_io: bool = False) -> tuple[bytes | None, dict]:
    """The fp32 ONNX ``fp32`` cross-layer equalized (parity-checked on ``images``,
    :func:`edgecnn.pipeline.equalize.equalize_file`) and lowered to a `.tflite`, for per-tensor int8 weights, with
    the equalization's record; None for the bytes when equalization changes nothing."""
    import onnx

    from edgecnn.lowering.tflite import convert
    from edgecnn.pipeline.equalize import equalize_file

    path = scratch / "tflite.equalized.onnx"
    onnx.save_model(fp32, str(path))
    info = equalize_file(path, images)
    if not info.get("applied"):
        return None, info
    return convert(tflite_graph(onnx.load(str(path)))[0], nchw_io=nchw_io).data, info


def _tflite_int8(ctx: ExportContext, result: TfliteResult, fp32: bytes, float_scopes: tuple[str, ...]) -> None:
    """Full-integer int8 `.tflite` (ai-edge-quantizer) on the calibration set, added to ``result``; its drift is
    judged like the ORT artifact's. ``float_scopes`` (tensor-name regexes) stay float: the sampling path of
    deformable layers; ``kept_float`` names the ops the quantizer found could not be int8, and why."""
    from edgecnn.analysis.drift import HOST_KERNELS, int8_basis
    from edgecnn.analysis.layerwise_tflite import rank_tflite
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.drift_check import judge_artifact, tflite_speed
    from edgecnn.pipeline.float_choice import choose_tflite_float_ops
    from edgecnn.pipeline.tflite_calibration import TfliteCalibration
    from edgecnn.runtime.xnnpack import Delegation

    layout = result.input_layout
    calibrator = functools.partial(TfliteCalibration, bins=ctx.recipe.bins, percentile=ctx.recipe.percentile)
    quantizer = TfliteQuantizer(
        fp32,
        ctx.calib.images,
        layout,
        ctx.recipe.tflite_keep_float_ops,
        io=ctx.options.tflite_io or "int8",
        keep_float_scopes=float_scopes,
        float_outputs=ctx.options.tflite_io is None,
        per_channel=ctx.profile.per_channel,
        bias_correct=ctx.bias_correction,
        round_weights=ctx.weight_rounding,
        method=ctx.calibration_method(),  # the ORT graph's range choice holds for the .tflite too
        calibrator=calibrator,
    )
    try:
        quantizer.check_op_types(ctx.profile.int8_slower_tflite_ops)
    except UsageError as error:
        raise UsageError(f"profile {ctx.profile.name}, int8.slower_tflite_ops: {error}") from None
    base = tuple(ctx.recipe.tflite_keep_float_ops)
    present = set(quantizer.ops.values())
    declared = tuple(op for op in ctx.profile.int8_slower_tflite_ops if op in present and op not in base)
    measure = int8_basis(ctx.profile.arch, ctx.profile.features) == HOST_KERNELS
    split = result.figures.get("xnnpack")  # the fp32 .tflite's, when XNNPACK runs the target's and LiteRT counts
    work = ctx.scratch / "tflite-float-choice"
    try:
        quantized, kept_types, choice = choose_tflite_float_ops(
            quantizer, base, declared, work, measure, Delegation(**split) if split else None
        )
    except (UsageError, RuntimeError) as error:  # LiteRT cannot load or run the all-int8 graph to time it
        raise _litert_refused(error) from None
    dst = ctx.out / "model.int8.tflite"
    dst.write_bytes(quantized.data)
    result.artifacts["int8_tflite"] = dst
    floated = quantizer.floated_outputs(())  # an op kept float (by type, for speed; or its bias) makes an output
    if floated:
        ctx.warn(
            f"int8 .tflite: an op kept float makes a graph output, so the outputs {', '.join(floated)} are float32 "
            "(pass --tflite-io int8 to keep int8 outputs)"
        )

    def rank(path: Path, images: Any) -> list[Any]:
        return rank_tflite(quantizer.fp32, Path(path).read_bytes(), images, layout)

    try:
        check, result.judgement, chosen = judge_artifact(ctx, dst, "tflite", layout, quantizer, rank)
    except RuntimeError as error:  # LiteRT refuses what the quantizer wrote (an int8 DIV whose divisor rounds to 0)
        raise _litert_refused(error) from None
    if chosen is not None:
        quantized = quantizer.made[chosen]
        fix = result.judgement.verdict["fix"]
        fix["float_outputs"] = quantizer.floated_outputs(fix["kept_float"])
        if fix["float_outputs"]:
            ctx.warn(
                f"int8 .tflite: the drift repair keeps {', '.join(fix['float_outputs'])} float, so these outputs are "
                "float32 (pass --tflite-io int8 to keep int8 outputs, or --tflite-io float for float I/O)"
            )
    io = {
        "input_dtype": quantized.input_dtype,
        "output_dtype": quantized.output_dtype,
        "input_scale": quantized.input_scale,
        "input_zero_point": quantized.input_zero_point,
        "output_scale": quantized.output_scale,
        "output_zero_point": quantized.output_zero_point,
    }
    if len(quantized.outputs) > 1:
        io["outputs"] = quantized.outputs
    if len(quantized.inputs) > 1:
        io["inputs"] = quantized.inputs
    result.figures["int8"] = {
        "quantizer": "ai-edge-quantizer static_wi8_ai8",
        "per_channel": ctx.profile.per_channel,
        "method": quantized.method,
        "calibration": quantizer.calibration(quantized.method),
        "float_scopes": len(float_scopes),
        "kept_float": quantized.kept_float,
        "keep_float": {"op_types": list(kept_types), "slower_in_int8": choice},
        "bias_correction": quantized.bias_correction,
        "weight_rounding": quantized.weight_rounding,
        "io": io,
        "seconds": round(quantized.seconds, 2),
        "op_counts": quantized.op_counts,
        "check": check,
    }
    result.figures["int8"]["xnnpack"] = _delegation(ctx, dst, "int8 .tflite")
    speed = tflite_speed(ctx, result.artifacts["fp32_tflite"], dst) if measure else None
    if speed is not None:
        result.figures["int8"]["speed"] = speed


def _delegation(ctx: ExportContext, path: Path, artifact: str) -> dict[str, Any] | None:
    """How XNNPACK splits the `.tflite` at ``path`` (:func:`edgecnn.runtime.xnnpack.delegation`), when it is what runs
    the target's `.tflite` and this LiteRT can count it; a warning names what it leaves to LiteRT's kernels."""
    from edgecnn.runtime.xnnpack import delegation

    found = delegation(path) if ctx.profile.tflite_delegate == "xnnpack" else None
    if found is None:
        return None
    if found.undelegated:
        ctx.warn(f"{artifact}: {found.summary()} (between XNNPACK's partitions; slower than delegated)")
    return found.to_dict()


def _litert_refused(error: Exception) -> CheckFailedError:
    reason = " ".join(str(error).split())[:200]
    return CheckFailedError(f"the int8 .tflite does not run in LiteRT: {reason}")


def run_custom_deform(ctx: ExportContext) -> StageResult:
    """mmdeploy custom-op twins of the ONNX artifacts (DeformConv renamed), schema-checked; they cannot run here."""
    import onnx

    from edgecnn.lowering.onnx import to_mmdeploy

    made, artifacts = {}, {}
    for key in ("fp32_onnx", "int8_onnx"):
        source = ctx.artifact(key)
        if source is not None:
            dst = ctx.out / source.name.replace(".onnx", ".mmdeploy.onnx")
            onnx.save_model(to_mmdeploy(onnx.load(str(source))), str(dst))
            artifacts[f"{key.split('_')[0]}_mmdeploy_onnx"] = dst
            made[key] = dst.name
    figures = {
        "made": made,
        "note": "mmdeploy's custom ops cannot run here: checked by the ONNX checker against "
        "registered schemas and by golden tests of attributes and inputs",
        "check": {"onnx_checker_with_schemas": "passed"},
    }
    return StageResult(figures, artifacts)


STAGES: tuple[Stage, ...] = (
    Stage(
        "export",
        "trace to ONNX",
        (),
        (Output("exported", "exported.onnx", scratch=True),),
        "ONNX checker (full) and an ONNX Runtime load; re-export with optimize=False on failure; an .onnx "
        "MODEL upgraded to the working opset gives the original's outputs in ORT",
        run_export,
    ),
    Stage(
        "parity",
        "ORT fp32 vs PyTorch",
        ("exported",),
        (),
        f"max abs error ≤ {PARITY_THRESHOLD:g} of the output range",
        run_parity,
        lambda ctx: ctx.source.module is not None,
    ),
    Stage(
        "simplify",
        "simplify graph",
        ("exported",),
        (Output("fp32_onnx", "model.fp32.onnx"),),
        f"outputs equal the exported graph's (≤ {PARITY_THRESHOLD:g} of the range)",
        run_simplify,
    ),
    Stage(
        "tflite_ops",
        "TFLite op coverage",
        ("fp32_onnx",),
        (),
        "every op of the fp32 graph has a TFLite lowering (all missing ones named, before the slow stages)",
        run_tflite_ops,
    ),
    Stage(
        "quantize",
        "int8 (QDQ)",
        ("fp32_onnx",),
        (Output("int8_onnx", "model.int8.onnx"),),
        "loads in ONNX Runtime, finite outputs",
        run_quantize,
        _quantized,
    ),
    Stage(
        "drift",
        "fp32 vs int8 drift",
        ("fp32_onnx", "int8_onnx"),
        (Output("int8_onnx", "model.int8.onnx", _never), Output("drift_chart", "drift_layers.png", _never)),
        "top-1 agreement and accuracy drop on held-out data, judged for real data and weights (exit 3 when over); "
        "repaired by global remedies, then layers kept in float",
        run_drift,
        _quantized,
    ),
    Stage(
        "ort",
        "ORT mobile format",
        ("fp32_onnx",),
        (
            Output("fp32_ort", "model.fp32.ort"),
            Output("int8_ort", "model.int8.ort", _quantized),
            Output("fp32_ort_config", "model.fp32.required_operators.config", _never),
            Output("int8_ort_config", "model.int8.required_operators.config", _never),
        ),
        f"fp32 within {PARITY_THRESHOLD:g}, int8 within {ORT_INT8_THRESHOLD:g} of the .onnx outputs",
        run_ort,
    ),
    Stage(
        "tflite",
        "TFLite lowering",
        ("fp32_onnx",),
        (Output("fp32_tflite", "model.fp32.tflite"), Output("int8_tflite", "model.int8.tflite", _quantized)),
        f"outputs within {PARITY_THRESHOLD:g} of the range of ORT fp32's; int8 judged for drift like ORT's",
        run_tflite,
    ),
    Stage(
        "custom",
        "mmdeploy custom ops",
        ("fp32_onnx",),
        (
            Output("fp32_mmdeploy_onnx", "model.fp32.mmdeploy.onnx"),
            Output("int8_mmdeploy_onnx", "model.int8.mmdeploy.onnx", _quantized),
        ),
        "ONNX checker against the registered mmdeploy schemas (the ops cannot run here)",
        run_custom_deform,
        lambda ctx: ctx.options.deform == "custom",
    ),
)


def artifact_order() -> tuple[str, ...]:
    """The artifact keys of OUT in the order the stages declare them (the manifest lists them so)."""
    keys = (o.key for stage in STAGES for o in stage.outputs if not o.scratch)
    return tuple(dict.fromkeys(keys))
