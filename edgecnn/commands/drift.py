"""``edgecnn drift``: compare any two artifacts on real data, locate the drift per layer, optionally repair it."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecnn.analysis.drift import (
    EXACT_QDQ,
    FLAGS,
    HOST_KERNELS,
    Thresholds,
    evaluator,
    figures,
    host_unlike_target,
    int8_basis,
    int8_computations,
    verdict,
)
from edgecnn.analysis.layerwise import layer_errors
from edgecnn.analysis.layerwise_tflite import rank_tflite
from edgecnn.analysis.mixed_precision import repair_model
from edgecnn.analysis.plots import layer_sqnr_chart
from edgecnn.analysis.tasks import option_scopes
from edgecnn.applies import Rules, check_applies
from edgecnn.data.calibration import SYNTHETIC
from edgecnn.errors import UsageError
from edgecnn.files import check_output_file, check_suffix, terminate_as_interrupt
from edgecnn.pipeline.artifact import Artifact, load_images, one_preprocessing, open_artifact
from edgecnn.pipeline.source import parse_input_shapes
from edgecnn.runtime.outputs import Inputs, Outputs, batch_size, take

LAYER_SAMPLES = 32

# The drift options that apply to one path only (edgecnn/applies.py): given without it, an error.
RULES = Rules(
    "drift",
    {
        **option_scopes(),
        "max_accuracy_drop": ("truth",),
        "calib": ("fix",),
        "out": ("fix",),
        "chart": ("layers", "int8_target"),
        "layers": ("int8_target",),  # given: --layers or --no-layers (None: on for an int8 TARGET)
        "profile": ("int8_target",),  # it picks the int8 kernels and the ops the repair keeps float
        "force": ("named_output",),
        "fix": ("int8_target",),
    },
    {**FLAGS, "layers": "--no-layers"},
)


def _target_device(
    manifest: dict[str, Any] | None, profile: str | None
) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """(name, arch, ISA features, op types slower in int8) of the device the target is meant for: ``profile``, else
    the one the export's ``manifest`` (TARGET's, or REF's of the same export) names."""
    from edgecnn.config.profiles import list_profiles, load_profile

    recorded = (manifest or {}).get("profile")
    if profile is None and recorded and recorded["name"] in list_profiles():
        profile = recorded["name"]
    if profile is not None:
        p = load_profile(profile)
        return p.name, p.arch, p.features, p.int8_slower_op_types
    if recorded:
        return recorded["name"], recorded["arch"], tuple(recorded.get("features", ())), ()
    return "this host", "x86_64", (), ()


def _int8_tflite(artifact: Artifact) -> Any:
    """The parsed model of an int8 `.tflite` artifact, else None."""
    if artifact.kind != "tflite" or artifact.path is None:
        return None
    from edgecnn.lowering.tflite.flatbuffer import parse
    from edgecnn.lowering.tflite.quantize import is_quantized

    model = parse(artifact.path.read_bytes())
    return model if is_quantized(model) else None


def _fp32_twin(reference: Artifact, target: Artifact) -> Path | None:
    """The fp32 model TARGET was quantized from, of TARGET's format: REF when it is that, else the export's
    sibling named in the manifest beside TARGET."""
    if target.kind == "tflite":
        if reference.kind == "tflite" and _int8_tflite(reference) is None:
            return reference.path
        return target.sibling("fp32_tflite")
    if reference.kind == "onnx" and not reference.is_qdq:
        return reference.path
    return target.sibling("fp32_onnx")


def _tflite_layout(artifact: Artifact, model: Any) -> str:
    """The input layout of a `.tflite` artifact: from its manifest, else inferred from its first input's shape."""
    from edgecnn.runtime.loader import tflite_layout

    recorded = ((artifact.manifest or {}).get("model") or {}).get("tflite_input_layout")
    graph = model.subgraphs[0]
    return recorded or tflite_layout(tuple(int(d) for d in graph.tensors[graph.inputs[0]].shape))


def _aligned(ref: Artifact, tgt: Artifact, reference: Outputs, target: Outputs) -> Outputs:
    """REF's outputs under TARGET's names: matched by name, or by position when no name is shared (a PyTorch REF's
    outputs against an exported file's); one line when they are not the same outputs (count, shapes, or names
    that match only in part, which neither way pairs surely)."""
    names = list(target) if set(reference) != set(target) else list(reference)
    if len(reference) != len(target):
        raise UsageError(
            f"REF {ref.label} has {len(reference)} outputs ({', '.join(reference)}), TARGET {tgt.label} has "
            f"{len(target)} ({', '.join(target)}): they are not the same model"
        )
    shared = [name for name in reference if name in target]
    if shared and set(reference) != set(target):
        raise UsageError(
            f"REF {ref.label}'s outputs ({', '.join(reference)}) and TARGET {tgt.label}'s ({', '.join(target)}) share "
            f"only some names ({', '.join(shared)}): edgecnn pairs outputs by name, or by position when no name is "
            "shared; give models whose outputs have the same names"
        )
    aligned = dict(zip(names, reference.values(), strict=True)) if names != list(reference) else dict(reference)
    for name, values in aligned.items():
        if values.shape[1:] != target[name].shape[1:]:
            ref_shape, tgt_shape = "×".join(map(str, values.shape[1:])), "×".join(map(str, target[name].shape[1:]))
            which = f"output '{name}': " if len(aligned) > 1 else ""
            raise UsageError(
                f"{which}REF {ref.label} gives {ref_shape} outputs per image, TARGET {tgt.label} gives {tgt_shape}: "
                "they are not the same model (for a PyTorch REF, is --num-classes right?)"
            )
    return aligned


@terminate_as_interrupt()
def drift(
    reference: str,
    target: str,
    data: str,
    profile: str | None = None,
    thresholds: Thresholds | None = None,
    limit: int = 1000,
    weights: str | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_shape: str | tuple[str, ...] | None = None,
    layers: bool | None = None,
    chart: Path | None = None,
    fix: bool = False,
    calib: str | None = None,
    out: Path | None = None,
    seed: int = 0,
    force: bool = False,
) -> dict[str, Any]:
    """Figures, verdict, per-layer localisation and (with ``fix``) a repaired int8 model of TARGET vs REFERENCE.

    An existing ``chart`` or ``out`` is replaced only with ``force``; the default names beside TARGET always are."""
    thresholds = thresholds or Thresholds()
    if limit < 1:
        raise UsageError(f"--limit must be ≥ 1 sample, got {limit}; give 1 or more, or leave it out for every sample")
    typed = (
        thresholds.given
        | {
            name
            for name, value in (
                ("calib", calib),
                ("out", out),
                ("chart", chart),
                ("force", force),
                ("fix", fix),
                ("profile", profile),
            )
            if value not in (None, False)
        }
        | ({"layers"} if layers is not None else set())
    )
    rules = replace(RULES, flags={**(RULES.flags or {}), "layers": "--no-layers" if layers is False else "--layers"})
    layers = layers is not False
    taken = {"fix"} if fix else set()
    taken |= {"layers"} if layers else set()
    taken |= {"named_output"} if out is not None or chart is not None else set()
    check_applies(rules, typed, taken, known={"fix", "layers", "named_output"})
    for option, source in (("--data", data), ("--calib", calib)):  # before any work
        if source is not None and (str(source) == SYNTHETIC or not str(source).strip()):
            raise UsageError(f"{option} must be real data, not '{source}': give an image folder or a .npz/.npy file")
    suffix = ".tflite" if Path(target).suffix.lower() == ".tflite" else ".onnx"  # a repair has TARGET's format
    if fix:  # before anything is read
        check_suffix(out, suffix, "a TFLite model" if suffix == ".tflite" else "an ONNX model")
    given = parse_input_shapes(input_shape)
    tgt = open_artifact(target, input_shape=given)
    inputs = (reference, target, data, calib, weights)
    chart_named, out_named = chart is not None, out is not None
    if tgt.path is not None:  # a file TARGET: the chart and the repaired model default to names beside it
        kind = "" if tgt.path.suffix.lower() == ".onnx" else tgt.path.suffix.lower()  # .int8.tflite's own chart
        chart = chart or tgt.path.with_name(f"{tgt.path.stem}{kind}.drift_layers.png")
        out = out or tgt.path.with_name(f"{tgt.path.stem}.fixed{suffix}")
    for path, named, needed in ((chart, chart_named, layers), (out, out_named, fix)):
        if needed and path is not None:
            check_output_file(path, force or not named, inputs)
    ref = open_artifact(reference, weights, num_classes, in_chans, input_shape=given or tgt.inputs or tgt.input_shape)
    if given is not None and ref.kind != "torch" and tgt.kind != "torch":
        raise UsageError("--input-shape applies to a PyTorch REF or TARGET: model files keep their own input shapes")
    tflite = _int8_tflite(tgt)
    check_applies(rules, typed, {"int8_target"} if tgt.is_qdq or tflite is not None else set(), known={"int8_target"})
    assumed = one_preprocessing(ref, tgt)  # one side's manifest (or PyTorch recipe) preprocesses both
    if tgt.manifest is None and ref.manifest is not None:  # a copy of REF's export's model: that export's record
        tgt.manifest = ref.manifest  # (device, how it was quantized) serves the verdict and the repair alike
    ref_images, dataset = load_images(ref, data, limit, seed)
    tgt_images, _ = load_images(tgt, data, limit, seed)
    labels, names = dataset.labels, dataset.class_names
    check_applies(RULES, typed, {"truth"} if labels is not None else set(), known={"truth"}, why="--data has none")
    ref_logits = _aligned(
        ref, tgt, ref.runner().run_all(ref_images), tgt.runner().run_all(take(tgt_images, slice(0, 1)))
    )
    device, arch, features, slow_types = _target_device(tgt.manifest, profile)
    qdq = tgt.is_qdq
    if qdq:
        computations = int8_computations(tgt.path, tgt_images, ref_logits, labels, names, thresholds=thresholds)
        basis = int8_basis(arch, features)
    else:
        basis = HOST_KERNELS if tgt.kind == "ort" else "as_is"
        computations = {basis: figures(ref_logits, tgt.runner().run_all(tgt_images), labels, names, thresholds)}
    judged = verdict(computations, basis, thresholds)
    report: dict[str, Any] = {
        "reference": ref.label,
        "target": tgt.label,
        "data": data,
        "samples": batch_size(ref_images),
        "labels": labels is not None,
        "device": device,
        "basis": basis,
        "computations": computations,
        **{
            k: judged[k]
            for k in ("top1_agreement", "cosine", "accuracy_drop_points", "passed", "failures", "notes", "thresholds")
        },
    }
    unlike = host_unlike_target(basis)
    if unlike:
        report["notes"].append(unlike)
    if assumed:
        report["notes"].append(assumed)
    twin = _fp32_twin(ref, tgt) if qdq or tflite is not None else None
    if (qdq or tflite is not None) and twin is None and (layers or fix):
        report["notes"].append(
            f"per-layer figures need the fp32 {'.tflite' if tflite is not None else 'ONNX'} twin: give it as REF or "
            "keep the export's manifest beside TARGET"
        )
    calib_images = load_images(tgt, calib or data, 128, seed + 1)[0] if fix and twin is not None else None
    if layers and twin is not None:  # after --calib is read: a bad one leaves no chart behind
        samples = take(tgt_images, slice(0, LAYER_SAMPLES))
        if tflite is not None:
            layout = _tflite_layout(tgt, tflite)
            errors = rank_tflite(twin.read_bytes(), tgt.path.read_bytes(), samples, layout)
        else:
            errors = layer_errors(twin, tgt.path, samples)
        report["layers"] = [e.to_dict() for e in errors]
        report["layers_basis"] = "LiteRT int8 kernels" if tflite is not None else "exact QDQ"
        report["chart"] = str(layer_sqnr_chart(errors, chart, f"{tgt.label}: per-layer SQNR vs fp32"))
    if fix:
        if twin is None:
            raise UsageError(
                "--fix needs a QDQ int8 ONNX or int8 .tflite TARGET and its fp32 twin (as REF or via the manifest)"
            )
        if tflite is not None:
            report["fix"] = _fix_tflite(
                tgt,
                tflite,
                twin,
                ref_logits,
                (judged, computations),
                thresholds,
                dataset,
                tgt_images,
                calib_images,
                out,
            )
        else:
            evaluate = evaluator(
                tgt_images,
                ref_logits,
                labels,
                basis if basis in (EXACT_QDQ, HOST_KERNELS) else HOST_KERNELS,
                thresholds,
            )
            report["fix"] = _fix(
                tgt, twin, evaluate, tgt_images, (judged, computations), basis, slow_types, calib_images, out
            )
        report["passed"] = report["fix"]["passed"]
        if tflite is not None and not report["passed"]:
            report["notes"].append(
                "the repaired .tflite keeps TARGET's input and output dtypes (a drop-in replacement): when an int8 "
                "output is what costs the figure, export again without --tflite-io int8 (the export's repair makes "
                "such an output float32)"
            )
    return report


def _fix(
    tgt: Artifact,
    twin: Path,
    evaluate: Any,
    images: Inputs,
    judged: Any,
    basis: str,
    slow_types: tuple[str, ...],
    calib_images: Inputs,
    out: Path | None,
) -> dict[str, Any]:
    """Repair TARGET (judged ``judged``) by re-quantizing its fp32 ``twin`` on ``calib_images``; the best goes to
    OUT."""
    from edgecnn.pipeline.quantize import Quantizer

    manifest_quant = ((tgt.manifest or {}).get("stages") or {}).get("quantize") or {}
    method = manifest_quant.get("method", "minmax")
    reduce_range = manifest_quant.get("reduce_range", basis == HOST_KERNELS)
    per_channel = manifest_quant.get("per_channel", True)  # as the export quantized it (equalized when it did)
    equalized = bool((manifest_quant.get("equalization") or {}).get("applied"))
    keep = manifest_quant.get("keep_float") or {}
    chosen = "slower_in_int8" in keep
    if chosen:  # the export chose (and timed) its float op types, TARGET has them float: the repair keeps those
        slow_types = tuple(keep.get("op_types") or ())
    corrected = manifest_quant.get("bias_correction") is not None  # the export corrected TARGET's biases
    rounded = manifest_quant.get("weight_rounding") is not None  # and rounded its weights with compensation
    with Quantizer(
        twin, calib_images, per_channel=per_channel, equalize=equalized, bias_correct=corrected, round_weights=rounded
    ) as quantizer:
        quantizer.per_channel_weights = tuple(manifest_quant.get("per_channel_weights") or ())  # a mixed graph's
        return _repaired(
            quantizer,
            evaluate,
            tgt,
            judged,
            out,
            method=method,
            reduce_range=reduce_range,
            images=images,
            saturating_target=basis == HOST_KERNELS,
            slow_op_types=slow_types,
            slow_float_already=chosen,
        )


def _fix_tflite(
    tgt: Artifact,
    model: Any,
    twin: Path,
    reference: Outputs,
    judged: Any,
    thresholds: Thresholds,
    dataset: Any,
    images: Inputs,
    calib_images: Inputs,
    out: Path | None,
) -> dict[str, Any]:
    """Repair the int8 `.tflite` TARGET (parsed ``model``, judged ``judged``) by re-quantizing its fp32 ``twin`` on
    ``calib_images`` with ai-edge-quantizer — the other calibration methods and bias correction first, then its ops
    ranked in LiteRT: a drop-in replacement — the same I/O dtypes, and the ops TARGET has in float stay float. The
    best goes to OUT."""
    from edgecnn.analysis.layerwise_tflite import rank_tflite
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer, op_names, quantized_tensors
    from edgecnn.pipeline.tflite_calibration import TfliteCalibration
    from edgecnn.runtime.loader import load

    layout = _tflite_layout(tgt, model)
    graph = model.subgraphs[0]
    quantized = quantized_tensors(model)
    io = "int8" if graph.tensors[graph.inputs[0]].name.decode() in quantized else "float"
    floats = tuple(op for op in op_names(model) if op.split(";")[0] not in quantized)

    def evaluate(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        out = load(path, layout=layout).run_all(images)
        computations = {"as_is": figures(reference, out, dataset.labels, dataset.class_names, thresholds)}
        return verdict(computations, "as_is", thresholds), computations

    def rank(path: Path, samples: Inputs) -> list[Any]:
        return rank_tflite(quantizer.fp32, Path(path).read_bytes(), samples, layout)

    recorded = ((((tgt.manifest or {}).get("stages") or {}).get("tflite") or {}).get("int8")) or {}
    source, equalization = _tflite_source(tgt, twin, recorded, calib_images, layout)
    quantizer = TfliteQuantizer(
        source,
        calib_images,
        layout,
        io=io,
        per_channel=recorded.get("per_channel", True),  # as the export quantized it
        bias_correct=recorded.get("bias_correction") is not None,
        round_weights=recorded.get("weight_rounding") is not None,
        method=recorded.get("method", "minmax"),
        calibrator=TfliteCalibration,
    )
    known = set(quantizer.ops)
    fix = _repaired(
        quantizer,
        evaluate,
        tgt,
        judged,
        out,
        method=quantizer.method,
        reduce_range=False,
        images=images,
        saturating_target=False,
        keep_float=tuple(op for op in floats if op in known),
        rank=rank,
    )
    if equalization is not None:
        fix["equalization"] = equalization
    return fix


def _tflite_source(
    tgt: Artifact, twin: Path, recorded: dict[str, Any], calib_images: Inputs, layout: str
) -> tuple[bytes, dict[str, Any] | None]:
    """The fp32 `.tflite` to re-quantize TARGET from: its ``twin`` as it is, or — when the export quantized a
    per-tensor TARGET from a cross-layer equalized twin (``recorded``: the manifest's ``stages.tflite.int8``) —
    the export's fp32 ONNX equalized again on ``calib_images`` and lowered, as the ORT repair does; with the
    equalization's record (None when there was none to redo)."""
    if recorded.get("per_channel", True) or not (recorded.get("equalization") or {}).get("applied"):
        return twin.read_bytes(), None
    fp32_onnx = tgt.sibling("fp32_onnx")
    if fp32_onnx is None:
        why = "the export's fp32 ONNX is not beside TARGET: re-quantized from the fp32 .tflite unequalized"
        return twin.read_bytes(), {"applied": False, "why": why}
    import onnx

    from edgecnn.pipeline.stages import equalized_tflite

    with tempfile.TemporaryDirectory(prefix="edgecnn-equalize-") as tmp:
        data, info = equalized_tflite(onnx.load(str(fp32_onnx)), calib_images, Path(tmp), layout == "NCHW")
    return data or twin.read_bytes(), info


def _repaired(quantizer: Any, evaluate: Any, tgt: Artifact, judged: Any, out: Path | None, **search: Any) -> dict:
    """:func:`repair_model` of TARGET (judged ``judged``) in a scratch directory, the best written to OUT; the
    report's ``fix``: where it went, whether it passes, the search's record and its figures."""
    with tempfile.TemporaryDirectory(prefix="edgecnn-fix-") as tmp:
        found, record = repair_model(quantizer, evaluate, tgt.path, out, Path(tmp), judged, **search)
    best = found.best
    return {
        "out": str(out),
        "passed": best.verdict["passed"],
        **record,
        "top1_agreement": best.verdict["top1_agreement"],
        "score": best.verdict["score"],  # the task figure the repair maximised
        "tasks": best.verdict["tasks"],
        "cosine": best.verdict["cosine"],
        "accuracy_drop_points": best.verdict.get("accuracy_drop_points"),
        "failures": best.verdict["failures"],
    }
