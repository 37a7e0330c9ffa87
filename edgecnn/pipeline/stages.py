"""The pipeline as one table of stages: what each makes, from what, and how it is checked.

The CLI's help, the manifest, the report and the tests all read ``STAGES``.
Each stage's function returns its figures (``check`` holds the numbers of its
check); a failed check raises ``CheckFailedError`` with both numbers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import max_abs_error, relative_max_error
from edgecnn.errors import CheckFailedError
from edgecnn.pipeline.context import ORT_INT8_THRESHOLD, PARITY_THRESHOLD, ExportContext
from edgecnn.runtime.loader import load


@dataclass(frozen=True)
class Stage:
    """One row of the pipeline table."""

    name: str
    title: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    check: str
    run: Callable[[ExportContext], dict[str, Any]]
    applies: Callable[[ExportContext], bool] = lambda ctx: True


def _parity(reference: np.ndarray, other: np.ndarray, what: str, threshold: float = PARITY_THRESHOLD) -> dict:
    relative = relative_max_error(reference, other)
    figures = {
        "max_abs_error": max_abs_error(reference, other),
        "relative_error": relative,
        "threshold": threshold,
        "samples": len(reference),
    }
    if not relative <= threshold:
        raise CheckFailedError(
            f"{what}: max abs error {figures['max_abs_error']:.3g} is {relative:.3g} of the "
            f"output range, over the {threshold:g} threshold"
        )
    return figures


def run_export(ctx: ExportContext) -> dict[str, Any]:
    """Trace the module to ONNX (or take the given ONNX file), checked by the ONNX checker and an ORT load."""
    from edgecnn.pipeline.onnx_export import check_onnx, export_onnx

    path = ctx.scratch / "exported.onnx"
    ctx.artifacts["exported"] = path
    source = ctx.source
    if source.kind == "onnx":
        shutil.copy2(source.onnx_path, path)
        try:
            check_onnx(path)
        except ValueError as error:
            raise CheckFailedError(f"{source.onnx_path} is not a valid ONNX model: {error}") from None
        return {"given": str(source.onnx_path), "check": {"onnx_checker": "passed", "ort_load": "passed"}}
    info = export_onnx(source.module, source.input_shape, path, ctx.opset, ctx.options.dynamic_batch)
    return {**info, "check": {"onnx_checker": "passed", "ort_load": "passed"}}


def run_parity(ctx: ExportContext) -> dict[str, Any]:
    """ONNX Runtime fp32 against PyTorch on calibration samples and random inputs."""
    inputs = ctx.check_inputs()
    torch_out = load(ctx.source.module, input_size=ctx.source.input_shape[1:])(inputs)
    ort_out = load(ctx.artifacts["exported"])(inputs)
    return {"check": _parity(torch_out, ort_out, "parity ORT fp32 vs PyTorch")}


def run_simplify(ctx: ExportContext) -> dict[str, Any]:
    """Simplify the graph; its outputs must equal the exported graph's."""
    from edgecnn.pipeline.simplify import simplify

    dst = ctx.out / "model.fp32.onnx"
    info = simplify(ctx.artifacts["exported"], dst)
    ctx.artifacts["fp32_onnx"] = dst
    if ctx.options.deform == "gather":
        info["deform"] = _rewrite_deform(ctx, dst)
    inputs = ctx.check_inputs()
    before = load(ctx.artifacts["exported"])(inputs)
    after = load(dst)(inputs)
    ctx.reference_outputs["fp32_onnx"] = after
    return {**info, "check": _parity(before, after, "parity simplified vs exported")}


def _rewrite_deform(ctx: ExportContext, path: Any) -> dict[str, Any]:
    """Replace every DeformConv by the gather decomposition; its sampling path stays float in int8."""
    import onnx

    from edgecnn.lowering.onnx import rewrite_deform_conv

    model = onnx.load(str(path))
    if not any(n.op_type == "DeformConv" for n in model.graph.node):
        return {"rewritten": 0}
    rewritten, sampling = rewrite_deform_conv(onnx.shape_inference.infer_shapes(model))
    onnx.save_model(rewritten, str(path))
    ctx.float_nodes = tuple(n for names in sampling.values() for n in names)
    return {"rewritten": len(sampling), "lowering": "gather", "float_nodes": len(ctx.float_nodes)}


def run_quantize(ctx: ExportContext) -> dict[str, Any]:
    """Static QDQ int8 calibrated on the calibration set; the int8 graph must load and give finite outputs."""
    from edgecnn.pipeline.quantize import Quantizer

    dst = ctx.out / "model.int8.onnx"
    recipe = ctx.recipe
    advance = ctx.reporter.bar(f"calibrating ({ctx.method}, {len(ctx.calib)} samples)", len(ctx.calib))
    ctx.quantizer = Quantizer(ctx.artifacts["fp32_onnx"], ctx.calib.images, recipe.bins, recipe.percentile, advance)
    # Pre-processing folds some sampling-path nodes into constants: only the ones left need keeping float.
    ctx.float_nodes = tuple(n for n in ctx.float_nodes if n in set(ctx.quantizer.node_names))
    info = ctx.quantizer.quantize(
        dst, ctx.method, ctx.profile.reduce_range, recipe.keep_float_op_types, recipe.keep_float_nodes + ctx.float_nodes
    )
    ctx.artifacts["int8_onnx"] = dst
    out = load(dst)(ctx.check_inputs())
    if not np.isfinite(out).all():
        raise CheckFailedError("the int8 model gives non-finite outputs")
    ctx.reference_outputs["int8_onnx"] = out
    return {**info, "check": {"ort_load": "passed", "finite_outputs": True}}


def run_ort(ctx: ExportContext) -> dict[str, Any]:
    """`.ort` files for the fp32 and int8 graphs; each must give its `.onnx` twin's outputs."""
    from edgecnn.pipeline.ort_format import convert_to_ort

    inputs, check, info = ctx.check_inputs(), {}, {}
    for key, threshold in (("fp32", PARITY_THRESHOLD), ("int8", ORT_INT8_THRESHOLD)):
        onnx_path = ctx.artifacts.get(f"{key}_onnx")
        if onnx_path is None:
            continue
        made = convert_to_ort(onnx_path, ctx.out, ctx.profile.is_arm)
        ctx.artifacts[f"{key}_ort"] = made["ort"]
        if made["config"] is not None:
            ctx.artifacts[f"{key}_ort_config"] = made["config"]
        info.update(target_platform=made["target_platform"], optimization_style=made["optimization_style"])
        figures = _parity(
            ctx.reference_outputs[f"{key}_onnx"], load(made["ort"])(inputs), f".ort {key} vs .onnx {key}", threshold
        )
        check[f"{key}_relative_error"] = figures["relative_error"]
    return {**info, "check": check}


def run_drift(ctx: ExportContext) -> dict[str, Any]:
    """fp32 vs int8 on held-out samples, for the exact QDQ and the host kernels; judged, and repaired if asked."""
    from edgecnn.pipeline.drift_check import check_drift

    return check_drift(ctx)


def run_tflite(ctx: ExportContext) -> dict[str, Any]:
    """Lower the fp32 graph to a `.tflite` (no TensorFlow), checked against ORT fp32; then the int8 `.tflite`."""
    import onnx

    from edgecnn.errors import UsageError
    from edgecnn.lowering.tflite import convert, unsupported_nodes

    model = onnx.load(str(ctx.artifacts["fp32_onnx"]))
    float_scopes: tuple[str, ...] = ()
    deformable = any(n.op_type == "DeformConv" for n in model.graph.node)
    if deformable:  # TFLite has no DeformConv: its builtin-op decomposition runs everywhere
        from edgecnn.lowering.onnx import rewrite_deform_conv
        from edgecnn.lowering.tflite.quantize import node_scope

        model, sampling = rewrite_deform_conv(onnx.shape_inference.infer_shapes(model))
        scope = node_scope(model, [n for names in sampling.values() for n in names])
        float_scopes = (scope,) if scope else ()
    missing = unsupported_nodes(model)
    if missing and not ctx.formats_requested:
        listed = ", ".join(sorted(missing))
        ctx.warn(f"no .tflite: the TFLite lowering has no {listed} yet (the profile's formats asked for it)")
        return {"skipped": f"unsupported op types: {listed}", "check": {}}
    try:
        lowered = convert(model, nchw_io=ctx.options.nchw_io)
    except UsageError as error:
        raise UsageError(f"--format tflite: {error}") from None
    dst = ctx.out / "model.fp32.tflite"
    dst.write_bytes(lowered.data)
    ctx.artifacts["fp32_tflite"] = dst
    ctx.tflite_layout = lowered.input_layout
    out = load(dst, layout=lowered.input_layout)(ctx.check_inputs())
    figures = _parity(ctx.reference_outputs["fp32_onnx"], out, ".tflite fp32 vs ORT fp32")
    info: dict[str, Any] = {
        "input_layout": lowered.input_layout,
        "op_counts": lowered.op_counts,
        "deform": "gather decomposition" if deformable else None,
    }
    check: dict[str, Any] = {"relative_error": figures["relative_error"]}
    if ctx.options.quantize:
        info["int8"] = _tflite_int8(ctx, lowered.data, lowered.input_layout, float_scopes)
        check.update({f"int8_{k}": v for k, v in info["int8"]["check"].items()})
    return {**info, "check": check}


def _tflite_int8(ctx: ExportContext, fp32: bytes, layout: str, float_scopes: tuple[str, ...]) -> dict[str, Any]:
    """Full-integer int8 `.tflite` (ai-edge-quantizer) on the calibration set; drift judged like the ORT artifact.

    ``float_scopes`` (tensor-name regexes) stay float: the sampling path of deformable layers."""
    from edgecnn.lowering.tflite.quantize import quantize_tflite
    from edgecnn.pipeline.drift_check import judge_artifact

    quantized = quantize_tflite(
        fp32,
        ctx.calib.images,
        layout,
        ctx.recipe.tflite_keep_float_ops,
        io=ctx.options.tflite_io,
        keep_float_scopes=float_scopes,
    )
    dst = ctx.out / "model.int8.tflite"
    dst.write_bytes(quantized.data)
    ctx.artifacts["int8_tflite"] = dst
    io = {
        "input_dtype": quantized.input_dtype,
        "output_dtype": quantized.output_dtype,
        "input_scale": quantized.input_scale,
        "input_zero_point": quantized.input_zero_point,
        "output_scale": quantized.output_scale,
        "output_zero_point": quantized.output_zero_point,
    }
    figures = judge_artifact(ctx, load(dst, layout=layout), "tflite")
    return {
        "quantizer": "ai-edge-quantizer static_wi8_ai8",
        "float_scopes": len(float_scopes),
        "io": io,
        "seconds": round(quantized.seconds, 2),
        "op_counts": quantized.op_counts,
        "check": figures,
    }


def run_custom_deform(ctx: ExportContext) -> dict[str, Any]:
    """mmdeploy custom-op twins of the ONNX artifacts (DeformConv renamed), schema-checked; they cannot run here."""
    import onnx

    from edgecnn.lowering.onnx import to_mmdeploy

    made = {}
    for key in ("fp32_onnx", "int8_onnx"):
        if key in ctx.artifacts:
            dst = ctx.out / ctx.artifacts[key].name.replace(".onnx", ".mmdeploy.onnx")
            onnx.save_model(to_mmdeploy(onnx.load(str(ctx.artifacts[key]))), str(dst))
            ctx.artifacts[f"{key.split('_')[0]}_mmdeploy_onnx"] = dst
            made[key] = dst.name
    return {
        "made": made,
        "note": "mmdeploy's custom ops cannot run here: checked by the ONNX checker against "
        "registered schemas and by golden tests of attributes and inputs",
        "check": {"onnx_checker_with_schemas": "passed"},
    }


STAGES: tuple[Stage, ...] = (
    Stage(
        "export",
        "trace to ONNX",
        ("model",),
        ("exported.onnx",),
        "ONNX checker (full) and an ONNX Runtime load; re-export with optimize=False on failure",
        run_export,
    ),
    Stage(
        "parity",
        "ORT fp32 vs PyTorch",
        ("exported.onnx",),
        (),
        f"max abs error ≤ {PARITY_THRESHOLD:g} of the output range",
        run_parity,
        lambda ctx: ctx.source.module is not None,
    ),
    Stage(
        "simplify",
        "simplify graph",
        ("exported.onnx",),
        ("model.fp32.onnx",),
        f"outputs equal the exported graph's (≤ {PARITY_THRESHOLD:g} of the range)",
        run_simplify,
    ),
    Stage(
        "quantize",
        "int8 (QDQ)",
        ("model.fp32.onnx", "calibration"),
        ("model.int8.onnx",),
        "loads in ONNX Runtime, finite outputs",
        run_quantize,
        lambda ctx: ctx.options.quantize,
    ),
    Stage(
        "drift",
        "fp32 vs int8 drift",
        ("model.fp32.onnx", "model.int8.onnx", "held-out samples"),
        (),
        "top-1 agreement and accuracy drop on held-out data, judged for real data and weights (exit 3 when over); "
        "repaired by global remedies, then layers kept in float",
        run_drift,
        lambda ctx: ctx.options.quantize,
    ),
    Stage(
        "ort",
        "ORT mobile format",
        ("model.fp32.onnx", "model.int8.onnx"),
        ("model.fp32.ort", "model.int8.ort"),
        f"fp32 within {PARITY_THRESHOLD:g}, int8 within {ORT_INT8_THRESHOLD:g} of the .onnx outputs",
        run_ort,
        lambda ctx: "ort" in ctx.formats,
    ),
    Stage(
        "tflite",
        "TFLite lowering",
        ("model.fp32.onnx",),
        ("model.fp32.tflite",),
        f"outputs within {PARITY_THRESHOLD:g} of the range of ORT fp32's",
        run_tflite,
        lambda ctx: "tflite" in ctx.formats,
    ),
    Stage(
        "custom",
        "mmdeploy custom ops",
        ("model.fp32.onnx", "model.int8.onnx"),
        ("model.fp32.mmdeploy.onnx", "model.int8.mmdeploy.onnx"),
        "ONNX checker against the registered mmdeploy schemas (the ops cannot run here)",
        run_custom_deform,
        lambda ctx: ctx.options.deform == "custom",
    ),
)
