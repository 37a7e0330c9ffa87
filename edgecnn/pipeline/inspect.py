"""``edgecnn inspect``: what MODEL is and what ``edgecnn export`` would do with it, without the heavy stages.

The source is resolved as export resolves it and made into the graph export would simplify (traced to
ONNX in the run's temporary directory, or the ONNX file upgraded and its free dims fixed), then
simplified; nothing is quantized, lowered or written. The report is a JSON-ready dict.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgecnn.config.profiles import load_profile
from edgecnn.config.recipes import recipe_for_family
from edgecnn.errors import CheckFailedError, UsageError, reading
from edgecnn.formats import parse_formats
from edgecnn.pipeline.context import ExportOptions
from edgecnn.pipeline.export import _plannable, _validate, planned_stages
from edgecnn.pipeline.onnx_input import default_opset, fix_input_dims, refusals, upgrade_opset, wants_upgrade
from edgecnn.pipeline.source import InputShapes, ModelSource, parse_input_shapes, resolve_source
from edgecnn.pipeline.stages import lower_for_tflite, tflite_graph


def inspect_model(
    model: Any,
    *,
    input_shape: str | tuple[str, ...] | InputShapes | None = None,
    profile: str = "x86-avx2",
    formats: str | None = None,
    opset: int | None = None,
    quantize: bool = True,
    num_classes: int | None = None,
    in_chans: int | None = None,
    scaling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inputs, outputs, op types per format, params, MACs and the export plan of ``model`` (as for
    :func:`edgecnn.pipeline.export.export`)."""
    scaling = {k: v for k, v in (scaling or {}).items() if v is not None}
    options = ExportOptions(model, profile, formats=formats, opset=opset, quantize=quantize, scaling=scaling)
    _validate(options)
    target = load_profile(profile)
    planned = _plannable(options, target)
    chosen = parse_formats(formats, target.formats)
    shape = parse_input_shapes(input_shape)
    source = resolve_source(
        model, scaling=scaling, num_classes=num_classes, in_chans=in_chans, input_shape=shape, profile=target
    )
    options.deform = target.deform
    working = opset or recipe_for_family(source.family).opset
    import onnx

    work = Path(tempfile.mkdtemp(prefix="edgecnn-inspect-"))
    try:
        too_large = _memory_refusals(source, quantize, recipe_for_family(source.family).calibration_size, options)
        if too_large and source.kind != "onnx":  # tracing would allocate such an input: refused as export does
            raise UsageError(too_large[0])
        graph, conversion, refused, notes = _working_graph(source, working, opset is not None, quantize, work)
        refused += too_large
        saved = work / "working.onnx"
        onnx.save_model(graph, str(saved))
        if source.kind == "onnx" and not refused and "error" not in conversion:
            refused += _run_refusals(saved, source.onnx_path)
        simplified, loads = _simplified(graph, saved, notes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from edgecnn.lowering.tflite import unsupported_nodes

    if "tflite" in chosen:  # lowered as the tflite_ops stage lowers it
        lowering = lower_for_tflite(simplified)
        missing, problem = unsupported_nodes(lowering.graph), lowering.problem
    else:
        missing, problem = unsupported_nodes(tflite_graph(simplified)[0]), None
    report = _describe(simplified, source, missing, loads)
    report["export"] = _plan(options, source, chosen, formats is not None, problem, conversion, refused)
    report["export"]["profile"] = target.name
    if planned:
        notes.append(
            f"export would let the planner choose the scaling for {target.name}'s "
            f"{target.latency_budget_ms:g} ms budget (`edgecnn plan`); shown: the model's defaults"
        )
    report["notes"] = notes
    return report


def _working_graph(
    source: ModelSource, working: int, asked: bool, quantize: bool, work: Path
) -> tuple[Any, dict, list[str], list[str]]:
    """The ONNX graph export's simplify stage would take, the opset conversion it needs, why export would refuse
    the given graph (as export checks it: before the conversion), and notes."""
    import onnx

    notes: list[str] = []
    if source.kind != "onnx":
        from edgecnn.pipeline.onnx_export import export_onnx

        path = work / "exported.onnx"
        export_onnx(source.module, source.inputs or source.input_shape, path, working)
        return onnx.load(str(path)), {"original": working, "working": working, "upgrade": False}, [], notes
    with reading(source.onnx_path, "ONNX MODEL", "keep its external data files beside it, as they were saved"):
        model = onnx.load(str(source.onnx_path), load_external_data=True)
    if not model.opset_import:  # what export's ONNX checker refuses first; shape inference would fail on it below
        raise UsageError(f"{source.onnx_path} is not a valid ONNX model: it imports no opset")
    refused = refusals(model, quantize)
    original = default_opset(model)
    conversion: dict[str, Any] = {"original": original, "working": original, "upgrade": False}
    if wants_upgrade(original, working, asked):
        conversion.update(working=working, upgrade=True)
        try:
            model = upgrade_opset(model, working, source.onnx_path)
        except UsageError as error:
            conversion["error"] = str(error)
            notes.append("the opset upgrade fails: the graph below is the given one")
    conversion["fixed_dims"] = fix_input_dims(model, list(source.input_shapes().values()))
    return model, conversion, refused, notes


def _memory_refusals(source: ModelSource, quantize: bool, calibration_size: int, options: ExportOptions) -> list[str]:
    """Why export would refuse the calibration samples at the model's input size before allocating them (the
    default counts: the recipe's calibration size and the held-out samples, or the checks' few without int8)."""
    from edgecnn.data.calibration import check_memory
    from edgecnn.pipeline.context import CHECK_SAMPLES

    count = calibration_size + options.holdout if quantize else CHECK_SAMPLES
    refused = []
    for shape in source.input_shapes().values():
        if all(isinstance(d, int) and d > 0 for d in shape[1:]):
            try:
                check_memory(tuple(shape[1:]), count)
            except UsageError as error:
                refused.append(str(error))
    return refused


def _run_refusals(path: Path, given: Path) -> list[str]:
    """Why export would refuse the working graph saved at ``path`` when ONNX Runtime runs it (as export's trial
    run does)."""
    from edgecnn.runtime.loader import trial_run

    try:
        trial_run(path, "ONNX MODEL", "", shown=given)
    except UsageError as error:
        return [str(error)]
    return []


def _simplified(model: Any, src: Path, notes: list[str]) -> tuple[Any, bool]:
    """``model`` (saved at ``src``) simplified as export's simplify stage does (the given graph when simplification
    fails), and whether ONNX Runtime loads it (the simplifier's result is checked with the ONNX checker and an ORT
    load)."""
    import onnx

    from edgecnn.pipeline.onnx_export import check_onnx
    from edgecnn.pipeline.simplify import simplify

    dst = src.with_name("simplified.onnx")
    try:
        simplify(src, dst)
    except CheckFailedError as error:
        notes.append(f"not simplified ({error}): ops are the unsimplified graph's")
        try:
            check_onnx(src)
        except ValueError as problem:
            notes.append(f"ONNX Runtime does not load it: {problem}")
            return onnx.shape_inference.infer_shapes(model), False
        return onnx.shape_inference.infer_shapes(model), True
    return onnx.shape_inference.infer_shapes(onnx.load(str(dst))), True


def _tensor(value: Any) -> dict[str, Any]:
    """Name, shape (a free dim by its name or None) and numpy dtype name of a graph input or output."""
    from onnx import TensorProto, helper

    dims = value.type.tensor_type.shape.dim
    elem = value.type.tensor_type.elem_type
    try:
        dtype = helper.tensor_dtype_to_np_dtype(elem).name
    except (KeyError, TypeError):  # no numpy twin (bfloat16, float8 …) or not a tensor
        dtype = TensorProto.DataType.Name(elem).lower() if elem else "unknown"
    return {
        "name": value.name,
        "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims],
        "dtype": dtype,
    }


def _describe(model: Any, source: ModelSource, missing: dict[str, list[str]], loads: bool) -> dict[str, Any]:
    """Inputs, outputs, op types with their TFLite coverage (``missing``: unsupported op → nodes) and ONNX
    Runtime's (``loads``: the graph loads), params and MACs of the simplified graph."""
    from edgecnn.lowering.tflite.registry import op_key

    initializers = {t.name for t in model.graph.initializer}
    counts = Counter(op_key(node) for node in model.graph.node)
    ops = [
        {"op": op, "count": n, "onnx": loads, "ort": loads, "tflite": op not in missing, "unsupported_nodes": []}
        for op, n in sorted(counts.items())
    ]
    for op, nodes in missing.items():  # after the DeformConv rewrite, ops the graph did not hold may be missing
        row = next((r for r in ops if r["op"] == op), None)
        if row is None:
            row = {"op": op, "count": 0, "onnx": loads, "ort": loads, "tflite": False}
            ops.append(row)
        row["unsupported_nodes"] = nodes
    if source.module is not None and not source.inputs:  # several inputs: counted on the graph, as an ONNX MODEL
        from edgecnn.models.complexity import count_macs, count_params

        params, macs = count_params(source.module), count_macs(source.module, source.input_shape[1:])
        basis = "PyTorch module"
    else:
        params = _onnx_params(model)
        macs, basis = _onnx_macs(model, source.input_shape[0]), "ONNX graph"
    return {
        "model": source.to_dict(),
        "inputs": [_tensor(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [_tensor(v) for v in model.graph.output],
        "ops": ops,
        "nodes": len(model.graph.node),
        "params": params,
        "macs": macs,
        "counted_by": basis,
    }


def _onnx_params(model: Any) -> int:
    """The weights of an ONNX graph: its float constants, and the int8 ones a DequantizeLinear reads (a QDQ graph's
    weights and biases); no quantization scale or zero point, no integer shape."""
    floats = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
    qdq = ("QuantizeLinear", "DequantizeLinear")
    quantization = {name for n in model.graph.node if n.op_type in qdq for name in n.input[1:]}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return sum(
        math.prod(t.dims)
        for t in model.graph.initializer
        if t.name not in quantization and (t.data_type in floats or t.name in quantized)
    )


def _onnx_macs(model: Any, batch: int) -> int | None:
    """Multiply-accumulates of one sample from the graph's op costs (None when shapes are not static)."""
    from edgecnn.costs.op_costs import onnx_op_costs, summarize

    try:
        return int(summarize(onnx_op_costs(model, "fp32"))["macs"] // max(batch, 1))
    except UsageError:
        return None


def _plan(
    options: ExportOptions,
    source: ModelSource,
    formats: tuple[str, ...],
    requested: bool,
    tflite_problem: str | None,
    conversion: dict[str, Any],
    refused: list[str],
) -> dict[str, Any]:
    """What export would do: refusals, the opset conversion, stages, and each format's outcome (``tflite_problem``:
    why the graph does not lower to TFLite, :func:`lower_for_tflite`)."""
    status: dict[str, dict[str, str]] = {name: {"status": "ok"} for name in formats}
    missing = tflite_problem if "tflite" in formats else None
    if missing is not None:
        status["tflite"] = {"status": "fails" if requested else "skipped", "stage": "tflite_ops", "reason": missing}
    ctx = SimpleNamespace(options=options, source=source, formats=formats, dropped={})
    stages = {name: "runs" for name in planned_stages(ctx)}
    if missing is not None:
        stages["tflite_ops"] = "fails" if requested else "skips tflite"
        stages["tflite"] = "not reached"
    refusal = "; ".join(refused) or conversion.get("error")
    fails = [name for name, s in status.items() if s["status"] == "fails"]
    return {
        "refused": refusal or None,
        "opset": conversion,
        "stages": stages if not refusal else {},
        "formats": status,
        "expected_exit_code": 1 if refusal else (4 if fails else 0),  # when no numerical check fails
    }
