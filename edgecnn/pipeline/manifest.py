"""The output directory's manifest.json and report.md (OUT itself is made by :mod:`edgecnn.files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.analysis.tasks import summary
from edgecnn.files import json_text
from edgecnn.pipeline.source import sha256_file


def artifact_entry(path: Path, root: Path) -> dict[str, Any]:
    """Path (relative to the output directory), size and sha256 of one artifact."""
    return {"path": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON with a trailing newline."""
    path.write_text(json_text(data, default=_json_default, indent=2) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figure(value: float | None, spec: str = ".4f") -> str:
    """A figure for a table: ``—`` when it is not defined (top-1 of a model without a classification output)."""
    return "—" if value is None else format(value, spec)


def _plan_lines(plan: dict[str, Any] | None) -> list[str]:
    """The planner's decision, when it chose the scaling."""
    if not plan:
        return []
    chosen, runner_up = plan["chosen"], plan.get("runner_up")
    lines = [
        "## Plan",
        "",
        f"- budget {plan['budget_ms']:g} ms"
        + (f" less {plan['headroom'] * 100:g}% headroom" if plan.get("headroom") else "")
        + (f", {plan['memory_budget_mb']:g} MB" if plan.get("memory_budget_mb") else "")
        + f" ({plan['dtype']}, latency model: {plan['latency_model']}); "
        f"{plan['candidates']} {plan['family']} candidates",
        f"- chosen: {chosen['label']}, predicted {chosen['predicted_ms']:.2f} ms, expected top-1 "
        f"{chosen['expected_top1']:.1f} ({chosen['accuracy']})",
    ]
    if runner_up:
        lines.append(
            f"- runner-up: {runner_up['label']}, predicted {runner_up['predicted_ms']:.2f} ms, "
            f"expected top-1 {runner_up['expected_top1']:.1f}"
        )
    return [*lines, ""]


def render_report(manifest: dict[str, Any]) -> str:
    """report.md: the manifest for a person."""
    model, profile = manifest["model"], manifest["profile"]
    lines = [
        f"# edgecnn export: {model['name']} for {profile['name']}",
        "",
        f"edgecnn {manifest['edgecnn_version']}, {manifest['created']}.",
        "",
    ]
    for warning in manifest.get("warnings", []):
        lines.append(f"> **Warning:** {warning}")
    if manifest.get("warnings"):
        lines.append("")
    scaling = ", ".join(f"{k}={v}" for k, v in model.get("scaling", {}).items()) or "none"
    lines += [
        "## Model",
        "",
        f"- source: {model['kind']} `{model['name']}`"
        + (f" (family {model['family']})" if model.get("family") else ""),
        f"- scaling: {scaling} ({model.get('scaling_origin', 'arguments')})",
        f"- input: {model['layout']} {'×'.join(map(str, model['input_shape']))}, "
        f"mean {model['mean']}, std {model['std']}",
        "- outputs: "
        + ", ".join(
            f"`{o['name']}` {'×'.join('?' if d is None else str(d) for d in o['shape'])}" for o in model["outputs"]
        ),
        *_tflite_layout_lines(model),
        f"- weights: {model['weights']['path'] if model.get('weights') else 'none (random initialisation)'}",
        "",
        "## Target",
        "",
        f"- profile `{profile['name']}`: {profile['arch']}, {profile['cpu']}, {profile['threads']} threads",
        f"- int8 reduce_range: {profile['reduce_range']}",
        *_weights_lines((manifest["stages"].get("quantize") or {}).get("weights_choice")),
        *_weight_bits_lines((manifest["stages"].get("quantize") or {}).get("weight_bits")),
        *_float_choice_lines(((manifest["stages"].get("quantize") or {}).get("keep_float") or {}), "ORT int8"),
        *_tflite_speed_lines(manifest["stages"].get("tflite") or {}),
        "",
        *_plan_lines(manifest.get("plan")),
        "## Calibration",
        "",
    ]
    calib = manifest["calibration"]
    lines += [
        f"- {calib['method']} on {calib['count']} samples from `{calib['source']}` "
        f"(sha256 {calib['sha256'][:16]}…), {calib['held_out']} held out for agreement",
        *_range_choice_lines(calib.get("range_choice")),
        *_per_tensor_lines(calib.get("per_tensor")),
        *_per_tensor_lines(calib.get("tflite_per_tensor"), "the .tflite's tensors"),
        *_bias_lines(manifest["stages"]),
        *_rounding_lines(manifest["stages"]),
        *_float_output_lines(manifest["stages"]),
        "",
    ]
    lines += ["## Stages", "", "| stage | status | seconds | check |", "|---|---|---:|---|"]
    for name, stage in manifest["stages"].items():
        check = "; ".join(f"{k} {_fmt(v)}" for k, v in stage.get("check", {}).items() if not isinstance(v, dict))
        check = check or stage.get("reason", "")
        lines.append(f"| {name} | {stage['status']} | {stage.get('seconds', 0):.1f} | {check} |")
    dropped = {name: s for name, s in manifest.get("format_status", {}).items() if s["status"] != "ok"}
    if dropped:
        lines += ["", "## Formats not made", ""]
        lines += [f"- **{name}** {s['status']} at stage {s['stage']}: {s['reason']}" for name, s in dropped.items()]
    lines += ["", "## Artifacts", "", "| file | bytes | sha256 |", "|---|---:|---|"]
    for entry in manifest["artifacts"].values():
        lines.append(f"| {entry['path']} | {entry['bytes']:,} | `{entry['sha256'][:16]}…` |")
    agreement = manifest.get("agreement") or {}
    if agreement:
        lines += [
            "",
            "## fp32 vs int8 agreement (held-out samples)",
            "",
            "| computation | samples | top-1 agreement | cosine | SQNR dB | accuracy drop (points) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key in ("exact_qdq", "host_kernels"):
            figures = agreement.get(key)
            if figures:
                drop = figures.get("accuracy_drop_points")
                lines.append(
                    f"| {key.replace('_', ' ')} | {agreement['samples']} | {figure(figures['top1_agreement'])} | "
                    f"{figures['cosine']:.4f} | {figures['sqnr_db']:.1f} | "
                    f"{'' if drop is None else f'{drop:.2f}'} |"
                )
        for name, figures in (agreement.get("formats") or {}).items():
            drop = figures.get("accuracy_drop_points")
            lines.append(
                f"| {name} int8 | {figures['samples']} | {figure(figures['top1_agreement'])} | "
                f"{figures['cosine']:.4f} | {figures['sqnr_db']:.1f} | {'' if drop is None else f'{drop:.2f}'} |"
            )
        lines += _output_lines(agreement)
        lines += [
            "",
            f"Judged on {agreement['basis'].replace('_', ' ')} (the computation that matches the target): "
            f"top-1 {figure(agreement['top1'])}, cosine {agreement['cosine']:.4f}.",
        ]
    lines += _drift_section(manifest.get("drift") or {})
    return "\n".join(lines) + "\n"


def _output_lines(agreement: dict[str, Any]) -> list[str]:
    """Each output's task and figures, cosine and SQNR per int8 computation, for a model with several outputs or
    one judged by another task than classification."""
    rows = {key: agreement[key] for key in ("exact_qdq", "host_kernels") if agreement.get(key)}
    rows.update({f"{name} int8": figures for name, figures in (agreement.get("formats") or {}).items()})
    outputs = [output for figures in rows.values() for output in figures.get("outputs", {}).values()]
    if all(len(figures.get("outputs", {})) < 2 for figures in rows.values()) and all(
        output.get("task", "classification") == "classification" for output in outputs
    ):
        return []
    lines = [
        "",
        "| computation | output | task | task figures | cosine | SQNR dB |",
        "|---|---|---|---|---:|---:|",
    ]
    for key, figures in rows.items():
        for name, output in figures["outputs"].items():
            kind = output.get("task", "")
            shown = summary(output) if kind else ""
            lines.append(
                f"| {key.replace('_', ' ')} | {name} | {kind} | {shown} | {output['cosine']:.4f} | "
                f"{output['sqnr_db']:.1f} |"
            )
    tasks = {name: output for figures in rows.values() for name, output in figures.get("outputs", {}).items()}
    lines += ["", *(f"- `{name}`: {output['task']} ({output['task_origin']})" for name, output in tasks.items())]
    return lines


def _drift_section(drift: dict[str, Any]) -> list[str]:
    """The report's drift check: the overall verdict, then each int8 artifact's own (the ORT model's, then every
    other format's) with its repair."""
    if not drift:
        return []
    lines = ["", "## Drift check", ""]
    speed = drift.get("speed")
    if speed:
        lines += [
            f"Speed: int8 {speed['int8_ms']:.3g} ms, fp32 {speed['fp32_ms']:.3g} ms ({speed['basis']}): "
            f"**{speed['faster']} is faster** (int8/fp32 {speed['int8_over_fp32']:.2f}).",
            "",
        ]
    if not drift["judged"]:
        return [*lines, f"Not judged: {'; '.join(drift['not_judged_because'])}."]
    final = drift["final"]
    lines.append(
        f"**{'Passed' if drift['passed'] else 'FAILED'}** "
        f"(thresholds: {', '.join(f'{k} {v}' for k, v in final['thresholds'].items() if v is not None)})."
    )
    own = [f for f in final["failures"] if not any(f.startswith(f"{name}: ") for name in drift.get("formats", {}))]
    lines += ["", f"int8 ONNX/ORT: {'passed' if not own else 'FAILED'}.", *(f"- {failure}" for failure in own)]
    lines += [f"- note: {note}" for note in final.get("notes", [])]
    if drift.get("fix"):
        lines += _fix_lines(drift["fix"], drift["initial"]["failures"], "drift_layers.png")
    for name, outcome in drift.get("formats", {}).items():
        lines += ["", f"int8 {name}: {'passed' if outcome['passed'] else 'FAILED'}."]
        lines += [f"- {failure}" for failure in outcome["failures"]]
        if outcome.get("fix"):
            lines += _fix_lines(outcome["fix"], outcome["initial"]["failures"])
    return lines


def _tflite_layout_lines(model: dict[str, Any]) -> list[str]:
    """The layout of the ``.tflite``'s input and 4-D outputs, which the ONNX artifacts hold as N, C, H, W."""
    layout = model.get("tflite_input_layout")
    if not layout:
        return []
    maps = [f"`{name}`" for name in model.get("tflite_output_layouts") or {}]
    outputs = f" and its 4-D outputs ({', '.join(maps)})" if maps else ""
    hint = " (transpose to N, C, H, W to compare with the ONNX model)" if layout == "NHWC" else ""
    return [f"- .tflite: the input{outputs} are {layout}{hint}"]


def _weights_lines(choice: dict[str, Any] | None) -> list[str]:
    """The export's per-channel, per-tensor or mixed choice for the ORT int8 weights, when it made one."""
    if not choice:
        return []
    chosen = choice["chosen"].replace("_", " ")
    tries = choice.get("tries")
    if not tries:
        return [f"- ORT int8 weights: {chosen} ({choice.get('kept_per_channel_because', '')})"]
    moved = choice.get("moved_images")
    names = {"per_channel": "per channel", "per_tensor": "per tensor (equalized)"}
    wide = choice.get("mixed_per_channel_spread_db") or {}
    names["mixed"] = f"mixed (equalized; {len(wide)} wide-spread layer{'s' if len(wide) != 1 else ''} per channel)"

    def figures(label: str) -> str:
        one = tries[label]
        top1 = f", top-1 changed on {one['moved_wrong']} of {moved['images']} moved images" if moved else ""
        return f"{names[label]} {one['min_ms']:.3g} ms, SQNR {one['sqnr_db']:.1f} dB{top1}"

    ranges = f", {choice['ranges']} ranges" if choice.get("ranges") else ""
    line = f"- ORT int8 weights: {chosen} — " + "; ".join(figures(label) for label in tries) + f" (timed here{ranges})"
    because = choice.get("kept_per_channel_because")
    return [line + (f": {because}" if because else "")]


def _float_choice_lines(keep: dict[str, Any], artifact: str) -> list[str]:
    """The op types ``artifact`` keeps float because the target runs them slower in int8, and how it was decided."""
    choice = keep.get("slower_in_int8") or {}
    if not choice.get("candidates"):
        return []
    chosen = ", ".join(choice["chosen"]) or "none"
    tries = choice.get("tries", [])
    figures = "; ".join(f"{'+'.join(t['float']) or 'none'} {_try_figure(t)}" for t in tries)
    if any("min_ms" in t for t in tries):
        how = f"Timed here: {figures}"
    else:
        basis = choice.get("basis", "")
        how = " — ".join(part for part in (f"{basis[:1].upper()}{basis[1:]}", figures) if part)
    failed = "; ".join(f"{'+'.join(t['float'])} ({t['why']})" for t in choice.get("failed_tries", []))
    how += f"; could not be made: {failed}" if failed else ""
    line = f"- {artifact} ops kept float for speed: {chosen} of {', '.join(choice['candidates'])}"
    return [f"{line}. {how}" if how else line]


def _try_figure(one: dict[str, Any]) -> str:
    """A float-op variant's figure: its time, or its XNNPACK partitions where nothing was timed."""
    return f"{one['min_ms']:.3g} ms" if "min_ms" in one else f"{one['partitions']} partition(s)"


def _tflite_speed_lines(tflite: dict[str, Any]) -> list[str]:
    """The int8 `.tflite`'s float-op choice, how XNNPACK splits each `.tflite`, and the int8 one's latency against
    the fp32 one, when measured."""
    from edgecnn.runtime.xnnpack import Delegation

    int8 = tflite.get("int8") or {}
    lines = _float_choice_lines(int8.get("keep_float") or {}, "int8 .tflite")
    for artifact, record in (("fp32 .tflite", tflite.get("xnnpack")), ("int8 .tflite", int8.get("xnnpack"))):
        if record:
            lines.append(f"- {artifact}: {Delegation(**record).summary()}")
    speed = int8.get("speed")
    if speed:
        lines.append(
            f"- int8 .tflite {speed['int8_ms']:.3g} ms, fp32 .tflite {speed['fp32_ms']:.3g} ms ({speed['basis']}): "
            f"**{speed['faster']} is faster** (int8/fp32 {speed['int8_over_fp32']:.2f})"
        )
    return lines


def _int8_records(stages: dict[str, Any], key: str) -> dict[str, Any]:
    """Each int8 artifact's record ``key`` (``stages.quantize`` and ``stages.tflite.int8``), by artifact."""
    return {
        "ORT int8": (stages.get("quantize") or {}).get(key),
        "int8 .tflite": ((stages.get("tflite") or {}).get("int8") or {}).get(key),
    }


def _bias_lines(stages: dict[str, Any]) -> list[str]:
    """The int8 biases each artifact's export corrected."""
    records = _int8_records(stages, "bias_correction")
    return [
        f"- {artifact} biases not corrected: {record['skipped']}"
        if record.get("skipped")
        else f"- {artifact} biases corrected in {record['layers']} layers on {record['samples']} calibration samples "
        f"(mean shift per output channel {record['mean_abs_shift']:.3g}, largest {record['max_abs_shift']:.3g}, in "
        "output units)"
        for artifact, record in records.items()
        if record
    ]


def _rounding_lines(stages: dict[str, Any]) -> list[str]:
    """How each artifact's int8 weights were rounded, when they were rounded with error compensation."""
    records = _int8_records(stages, "weight_rounding")
    return [
        f"- {artifact} weights rounded to nearest: {record['skipped']}"
        if record.get("skipped")
        else f"- {artifact} weights rounded with error compensation in {record['layers']} layers on "
        f"{record['samples']} calibration samples ({record['weights_moved']:.1%} of the weights off the nearest "
        "grid point)"
        for artifact, record in records.items()
        if record
    ]


def _range_choice_lines(choice: dict[str, Any] | None) -> list[str]:
    """The choice of activation ranges (every int8 artifact's) and what it was chosen on, or why it was not made."""
    if not choice:
        return []
    if "not_chosen_because" in choice:
        return [f"- activation ranges: {choice['chosen']} (no range choice: {choice['not_chosen_because']})"]
    counts = ", ".join(f"{count} ({method})" for method, count in choice["disagreements"].items())
    chosen = choice["chosen"]
    splits = ", ".join(
        f"{split['only_chosen_wrong']} to {split['only_other_wrong']} against {other} (sign test p {_p(split['p'])})"
        for other, split in choice["against"].items()
    )
    return [
        f"- activation ranges: {chosen} — top-1 changed on {counts} of {choice['images']} images, the "
        f"calibration samples and each moved {'/'.join(map(str, choice['shifts_px']))} px, exact QDQ; images only "
        f"{chosen} gets wrong, to those only the other does: {splits}"
        + (f"; judged on {choice['judged_on']}" if choice.get("judged_on") else "")
    ]


def _p(p: float) -> str:
    """A p-value as the manifest rounds it (4 places): < 0.0001 when it rounded to 0."""
    return f"{p:g}" if p > 0 else "< 0.0001"


def _float_output_lines(stages: dict[str, Any]) -> list[str]:
    """The ORT int8 outputs its Gemm/MatMul writes in float, unrounded."""
    floated = (stages.get("quantize") or {}).get("float_outputs")
    if not floated:
        return []
    names = ", ".join(f"`{n}`" for n in floated)
    return [f"- ORT int8 output {names} written in float by its int8 Gemm/MatMul (not rounded to 8 bits)"]


def _weight_bits_lines(bits: dict[str, Any] | None) -> list[str]:
    """Which layers kept 7-bit weights under reduce_range (their u8s8 pair sums saturate), when it was decided."""
    if not bits or not bits.get("layers", 1):
        return []
    if bits["seven_bit"] == "all":
        return [f"- ORT int8 weights 7-bit in every layer: {bits['kept_because']}"]
    seven = len(bits["seven_bit"])
    return [
        f"- ORT int8 weights 8-bit in {bits['layers'] - seven} of {bits['layers']} layers the x86 u8s8 kernels run, "
        f"7-bit in {seven} whose pair sums saturate on {bits['samples']} calibration samples (depthwise: 8-bit)"
    ]


def _per_tensor_lines(counts: dict[str, int] | None, whose: str = "per tensor") -> list[str]:
    """Method auto: how many activation tensors (``whose``) took each method's range."""
    if not counts:
        return []
    taken = ", ".join(f"{n} {method}" for method, n in counts.items())
    return [f"- {whose} (the range of the best SQNR on the calibration samples): {taken}"]


def _fix_lines(fix: dict[str, Any], initial: list[str], chart: str | None = None) -> list[str]:
    """A repair: what failed, the tries, the choice, what stayed float, size and latency, the worst layers."""
    reduce_range = f", reduce_range {fix['reduce_range']}" if fix["reduce_range"] else ""
    reduce_range += "".join(f", {t.replace('_', ' ')}" for t in fix.get("techniques", []))
    lines = [
        "",
        f"Initial: {'; '.join(initial) or 'passed'}. Repair chose **{fix['chosen']}** (method {fix['method']}"
        f"{reduce_range}).",
        *_per_tensor_lines((fix.get("calibration") or {}).get("counts")),
        "",
        "| try | passed | task figure | cosine | accuracy drop | layers in float | bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for a in fix["attempts"]:
        drop = a["accuracy_drop_points"]
        lines.append(
            f"| {a['label']} | {a['passed']} | {figure(a.get('score'))} | {a['cosine']:.4f} | "
            f"{'' if drop is None else f'{drop:.2f}'} | {len(a['kept_float'])} | {a['bytes']:,} |"
        )
    if fix.get("failed_tries"):
        failed = "; ".join(f"{t['label']} ({t['why']})" for t in fix["failed_tries"])
        lines += ["", f"Could not be made: {failed}."]
    if fix["kept_float"]:
        lines += ["", f"Kept in float: {', '.join(f'`{n}`' for n in fix['kept_float'])}."]
    if fix.get("float_outputs"):
        lines.append(f"Outputs made float32 with them: {', '.join(f'`{n}`' for n in fix['float_outputs'])}.")
    lines += ["", f"Size {fix['bytes_before']:,} → {fix['bytes_after']:,} bytes."]
    if "latency_ms_before" in fix:
        lines.append(
            f"Latency {fix['latency_ms_before']:.2f} → {fix['latency_ms_after']:.2f} ms ({fix['latency_basis']})."
        )
    elif "latency_basis" in fix:
        lines.append(f"Latency: {fix['latency_basis']}.")
    if fix.get("layers"):
        lines += [
            "",
            f"Worst layers before the repair (per-layer SQNR{f'; chart: {chart}' if chart else ''}):",
            "",
            "| node | op | SQNR dB | cosine | noise added dB |",
            "|---|---|---:|---:|---:|",
        ]
        for layer in fix["layers"][:15]:
            lines.append(
                f"| {layer['node']} | {layer['op_type']} | {layer['sqnr_db']:.1f} | "
                f"{layer['cosine']:.4f} | {layer['added_noise_db']:.1f} |"
            )
    return lines
