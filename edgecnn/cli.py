"""The ``edgecnn`` command: parse, call, render (edgecnn.commands). User mistakes are one line and an exit code."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgecnn import __version__
from edgecnn.config.recipes import CALIBRATION_METHODS
from edgecnn.errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, EdgecnnError, UserCodeError
from edgecnn.files import (
    as_terminated,
    json_text,
    room_to_write,
    run_temp_dir,
    stop_if_signalled,
    terminate_as_interrupt,
)
from edgecnn.formats import FORMATS
from edgecnn.models.knobs import KNOBS

# Modules of the `export` extra (pyproject.toml): missing ones are an install hint, not a traceback.
EXPORT_MODULES = frozenset(
    ["torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "PIL", "matplotlib"]
)

# A model's head and input: beyond these a value is a typo, and building its weights would exhaust memory.
NUM_CLASSES = click.IntRange(1, 100_000)
IN_CHANS = click.IntRange(1, 64)  # pipeline/source.py's MAX_INPUT_SHAPE C


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="edgecnn")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error (or set EDGECNN_DEBUG=1).")
def cli(debug: bool) -> None:
    """Take a convolutional network from PyTorch to an edge device: int8, fast, still accurate.

    \b
    Start with:
      edgecnn models                                 the model zoo, with params and MACs
      edgecnn inspect model.onnx                     what export would do with it, in seconds
      edgecnn export mobilenet --profile raspberrypi4
                                                     ONNX + int8 + .ort, checked at every stage
      edgecnn bench model.int8.ort --host pi@raspberrypi.local
                                                     latency on the device, over SSH
    """
    if debug:
        os.environ["EDGECNN_DEBUG"] = "1"


def _int_list(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected a comma list of integers, got '{value}'") from None


def _typed_names() -> set[str]:
    """The parameters of the running command the user typed (not left at their default)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    defaulted = (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return {p.name for p in ctx.command.params if p.name and ctx.get_parameter_source(p.name) not in defaulted}


def _typed(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less those the user left at their default: the API's defaults (the same values, held equal by
    tests/test_cli.py) then apply, and the run knows which options were typed (edgecnn/applies.py)."""
    typed = _typed_names()
    return {name: value for name, value in options.items() if name in typed}


def _knob_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per scaling knob of the knob table (edgecnn/models/knobs.py), in its order: ``--width`` …"""
    for knob in reversed(KNOBS.values()):
        if knob.many:
            option = click.option(knob.flag, callback=lambda ctx, param, value: _int_list(value), help=knob.help)
        else:
            option = click.option(knob.flag, type=knob.type, help=knob.help)
        command = option(command)
    return command


@cli.command()
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models(pattern: str | None, as_json: bool) -> None:
    """List the model zoo: name, family, params, MACs at the default input size.

    PATTERN filters by family or by a glob on the name ('resnet*', '*dcn*');
    a bare word matches names that contain it.

    \b
    Examples:
      edgecnn models
      edgecnn models efficientnet --json
    """
    from edgecnn.models.complexity import describe_model
    from edgecnn.models.registry import list_families, list_models

    names = list_models(pattern)
    if not names:
        from edgecnn.errors import UnknownNameError

        raise UnknownNameError("model pattern", pattern or "", list_models() + list_families())
    rows = [describe_model(name) for name in names]
    if as_json:
        click.echo(json_text(rows, indent=2))
        return
    from edgecnn.commands.render import make_console, render_models

    render_models(rows, make_console())


TASK_HELP = (
    "How int8 drift is judged, per output: classification (top-1 agreement), segmentation (mask mIoU), "
    "embedding (rank-1 retrieval agreement) or raw (cosine); one task for every output, or OUTPUT=TASK,… by "
    "output name or index [default: inferred — one N×K output: classification, one N×K×H×W: segmentation, "
    "otherwise raw]."
)


TASK_OPTIONS = (
    "task",
    "min_miou",
    "min_rank1",
    "min_f1",
    "min_recall",
    "mask_threshold",
    "decoder",
    "score_threshold",
    "nms_iou",
)


def _task_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The task-aware drift options (edgecnn/analysis/task_*.py), shared by export and drift: TASK_OPTIONS."""
    from edgecnn.analysis.task_detection import DECODERS

    options = (
        click.option("--task", "task", help=TASK_HELP),
        click.option(
            "--min-miou",
            type=float,
            default=0.9,
            show_default=True,
            help="Segmentation: smallest mIoU of the int8 masks against the fp32 masks.",
        ),
        click.option(
            "--min-rank1",
            type=float,
            default=0.95,
            show_default=True,
            help="Embedding: smallest rank-1 retrieval agreement with fp32.",
        ),
        click.option(
            "--min-f1",
            type=float,
            default=0.9,
            show_default=True,
            help="Detection: smallest F1 of the int8 detections against the fp32 detections (IoU ≥ 0.5).",
        ),
        click.option(
            "--min-recall",
            type=float,
            default=None,
            help="Detection: also the smallest recall of the int8 detections against the fp32 ones [default: not "
            "checked, F1 is].",
        ),
        click.option(
            "--mask-threshold",
            type=float,
            default=0.5,
            show_default=True,
            help="Segmentation with one N×1×H×W map: a pixel is in the mask when its value is above this.",
        ),
        click.option(
            "--decoder",
            type=click.Choice(DECODERS),
            default="yolo",
            show_default=True,
            help="Detection head layout: yolo = N×(4+C)×A centre-xywh + class scores; yolo-obj = N×A×(5+C) "
            "with objectness; boxes-scores = two outputs, N×A×4 corner boxes and N×A×C scores.",
        ),
        click.option(
            "--score-threshold",
            type=float,
            default=0.25,
            show_default=True,
            help="Detection: keep detections scoring at least this.",
        ),
        click.option(
            "--nms-iou",
            type=float,
            default=0.45,
            show_default=True,
            help="Detection: per-class NMS suppresses boxes overlapping a better one by more than this IoU.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _stage_help() -> dict[str, str]:
    """The stage list and the files of OUT, both read from the stage table."""
    import textwrap

    from edgecnn.pipeline.stages import STAGES

    stages = "\n".join(f"  {i}. {s.name:<10} {s.title}: {s.check}" for i, s in enumerate(STAGES, 1))
    files = ", ".join(dict.fromkeys(o.file for s in STAGES for o in s.outputs if not o.scratch))
    return {"stage_table": stages, "files": textwrap.fill(f"{files}, manifest.json, report.md", 80)}


EXPORT_HELP = """Export MODEL for a device: ONNX, calibrated int8, ONNX Runtime mobile (.ort), each stage checked.

\b
MODEL is one of:
  a zoo name            mobilenet, resnet18, efficientnet_b0 …  (see `edgecnn models`)
  torchvision:NAME      torchvision:resnet50 (architecture only; pass --weights)
  timm:NAME             timm:mobilenetv3_large_100 (needs edgecnn[timm]; pass --weights)
  package.module:attr   a factory function or nn.Module class of your own
  FILE.onnx             an exported model, any opset ≥ 7 (older than --opset:
                        upgraded and checked against it; tracing is skipped)

\b
Stages (each checked against the stage before; a failed check exits 2, but a
failure in a stage of .ort or .tflite only drops that format: the others are
written, the manifest says why, exit 4):
{stage_table}

\b
Writes OUT/ (default exports/MODEL-PROFILE), as the formats and options ask:
{files}.
Everything is written beside OUT and renamed into place at the end: a failure,
Ctrl-C or SIGTERM leaves no half-written OUT. --force replaces only an edgecnn
OUT (one with a manifest.json) or an empty directory; one export at a time
writes an OUT (a lock beside it).

\b
Examples:
  edgecnn export mobilenet --profile raspberrypi4
  edgecnn export mobilenet --width 0.5 --resolution 160 --calib images/ --out out/mv1
  edgecnn export resnet18 --weights ckpt.pt --num-classes 10 --calib data.npz --method entropy
  edgecnn export torchvision:mobilenet_v3_small --weights mnv3.pt --format onnx --json
"""


class _ExportCommand(click.Command):
    """Builds its help from the stage table only when help is asked for (keeps start-up light)."""

    def get_help(self, ctx: click.Context) -> str:
        self.help = EXPORT_HELP.format(**_stage_help())
        return super().get_help(ctx)


@cli.command(cls=_ExportCommand, short_help="Export a model: ONNX, int8, .ort, checked at every stage.")
@click.argument("model")
@click.option(
    "--profile",
    "-p",
    default="x86-avx2",
    show_default=True,
    help="Target device profile (a name in device_profiles/ or a YAML path).",
)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Output directory [default: exports/MODEL-PROFILE].")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--format", "formats", help=f"Comma list of formats: {', '.join(FORMATS)} [default: the profile's].")
@_knob_options
@click.option("--weights", type=click.Path(path_type=Path), help="state_dict or checkpoint (.pt), loaded safely.")
@click.option("--num-classes", type=NUM_CLASSES, help="Classes of the classifier (to match --weights).")
@click.option("--in-chans", type=IN_CHANS, help="Input channels (to match --weights).")
@click.option(
    "--input-shape",
    multiple=True,
    help="Traced input N,C,H,W, for models without a default size (fixes an .onnx MODEL's free dims); several "
    "inputs: name=N,C,H,W once per input.",
)
@click.option("--calib", help="Calibration data: an image folder, a .npz/.npy file, or 'synthetic'.")
@click.option("--calib-size", type=int, help="Calibration samples [default: the recipe's, 128].")
@click.option(
    "--holdout",
    type=int,
    default=64,
    show_default=True,
    help="Samples of --calib held out for the drift check (never used to calibrate).",
)
@click.option(
    "--method",
    help=f"Calibration method: {', '.join(CALIBRATION_METHODS)} (mean_minmax: the mean of each sample's extremes; "
    "auto: per tensor, the range of the best SQNR) [default: the recipe's, min-max, or for a trained classifier "
    "whichever of minmax, mean_minmax and auto keeps the most top-1 decisions on the calibration samples moved; "
    "giving --method pins it].",
)
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help="Correct the mean shift int8 adds to each layer's output out of its bias, measured on the calibration "
    "samples (ORT and .tflite) [default: the recipe's].",
)
@click.option(
    "--weight-rounding/--no-weight-rounding",
    default=None,
    help="Round the int8 weights with error compensation (each rounding error spread over the weights not yet "
    "rounded, weighed by the layer's inputs on the calibration samples) instead of to the nearest grid point "
    "(ORT and .tflite) [default: the recipe's].",
)
@click.option(
    "--opset", type=int, help="ONNX opset (19–21) [default: the recipe's, 20]; an older .onnx MODEL is upgraded to it."
)
@click.option("--no-quantize", is_flag=True, help="Stop at fp32 (no int8 artifacts).")
@click.option("--dynamic-batch", is_flag=True, help="Export with a dynamic batch dimension.")
@click.option(
    "--deform",
    type=click.Choice(["native", "custom", "gather"]),
    help="DeformConv: the standard op (ONNX Runtime ≥ 1.25 has a kernel), plus mmdeploy custom-op twins "
    "(custom), or a gather decomposition any runtime runs, its sampling path float in int8 (gather) "
    "[default: the profile's]. The .tflite always uses the gather decomposition.",
)
@click.option(
    "--nchw-io", is_flag=True, help="TFLite: keep the input and 4-D outputs NCHW (default: NHWC, TFLite's convention)."
)
@click.option(
    "--tflite-io",
    type=click.Choice(["int8", "float"]),
    help="int8 .tflite: int8 input/output (scale and zero point in the manifest) or float32 [default: int8].",
)
@click.option("--recipe", help="Export recipe name or YAML path [default: the model family's].")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed for the calibration split and, without --weights, the model's random weights.",
)
@click.option(
    "--max-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Drift check: largest drop in points on held-out data with ground truth: accuracy (labels), mIoU (masks), "
    "mAP@0.5 (boxes).",
)
@click.option(
    "--min-agreement",
    type=float,
    default=0.99,
    show_default=True,
    help="Drift check: smallest fp32-vs-int8 top-1 agreement on held-out data.",
)
@click.option("--min-cosine", type=float, help="Drift check: smallest mean logit cosine on held-out data.")
@click.option(
    "--fix/--no-fix",
    default=True,
    show_default=True,
    help="Repair drift over the thresholds (global remedies, then layers kept in float).",
)
@click.option("--allow-drift", is_flag=True, help="Exit 0 even when drift stays over the thresholds.")
@_task_options
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def export(model: str, as_json: bool, no_quantize: bool, formats: str | None, **options: Any) -> None:
    from edgecnn.errors import DriftError, PartialExportError
    from edgecnn.pipeline.export import export as run_export
    from edgecnn.progress import RichReporter

    try:
        # only the typed options: each is given, a typed default too (--fix is fix=True, the API's default)
        result = run_export(
            model, reporter=RichReporter(), formats=formats, quantize=not no_quantize, **_typed(options)
        )
    except (PartialExportError, DriftError) as error:  # what was made is written: show it, then the error line
        if error.result is not None:  # (exit 4, exit 3)
            _show_export(error.result, as_json)
        raise
    _show_export(result, as_json)


def _show_export(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json_text(result.manifest, default=str, indent=2))
        return
    from edgecnn.commands.render import make_console, render_export

    render_export(result, make_console())


@cli.command("inspect", short_help="What MODEL is and what export would do with it (seconds, writes nothing).")
@click.argument("model")
@click.option(
    "--input-shape",
    multiple=True,
    help="Input N,C,H,W, for models without a default size or with free dims; several inputs: name=N,C,H,W once "
    "per input.",
)
@click.option("--profile", "-p", default="x86-avx2", show_default=True, help="Device profile (its formats, deform).")
@click.option("--format", "formats", help=f"Comma list of formats: {', '.join(FORMATS)} [default: the profile's].")
@click.option("--opset", type=int, help="Working ONNX opset (19–21) [default: the recipe's, 20].")
@click.option("--no-quantize", is_flag=True, help="As for an fp32-only export (control flow is then no refusal).")
@click.option("--num-classes", type=NUM_CLASSES, help="Classes of the classifier.")
@click.option("--in-chans", type=IN_CHANS, help="Input channels.")
@_knob_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect_command(
    model: str,
    input_shape: tuple[str, ...],
    profile: str,
    formats: str | None,
    opset: int | None,
    no_quantize: bool,
    num_classes: int | None,
    in_chans: int | None,
    as_json: bool,
    **scaling: Any,
) -> None:
    """Show MODEL's inputs and outputs, its ops per format, params and MACs, and what `edgecnn export`
    would do with it: the stages, an opset upgrade, the free dims it fixes, and each format's outcome
    (a .tflite that cannot be made names every op without a lowering and its nodes). Nothing heavy runs:
    MODEL is traced to ONNX (or the .onnx read) and simplified in a temporary directory; no int8, no
    lowering, nothing written.

    MODEL is what `edgecnn export` takes: a zoo name (with its scaling options), torchvision:NAME,
    timm:NAME, package.module:factory, or FILE.onnx.

    \b
    Examples:
      edgecnn inspect mobilenet_v2 --width 0.5
      edgecnn inspect model.onnx --input-shape 1,3,224,224 --format onnx,tflite
      edgecnn inspect resnet18 --json
    """
    from edgecnn.pipeline.inspect import inspect_model

    report = inspect_model(
        model,
        input_shape=input_shape,
        profile=profile,
        formats=formats,
        opset=opset,
        quantize=not no_quantize,
        num_classes=num_classes,
        in_chans=in_chans,
        scaling=scaling,
    )
    if as_json:
        click.echo(json_text(report, default=str, indent=2))
        return
    from edgecnn.commands.inspect import render_inspect
    from edgecnn.commands.render import make_console

    render_inspect(report, make_console())


DRIFT_HELP = """Compare TARGET with REF on real data: does int8 still give the fp32 answers?

\b
REF and TARGET are any artifacts edgecnn knows: a PyTorch model spec (as for
`edgecnn export`, with --weights), an .onnx or an .ort file. Each is fed the
data preprocessed as the manifest beside it says (mean/std, input size).

\b
Figures: top-1 agreement, top-5 overlap, accuracy of each and the drop in points
(when --data has labels: class sub-folders or `labels` in the .npz; with
`masks` or `boxes` + `classes` in the .npz the mIoU or mAP@0.5 drop), logit
cosine and SQNR, max abs error, per class. For a QDQ int8 TARGET two int8
computations are measured: the exact QDQ arithmetic (what ARM and VNNI devices
compute) and this host's kernels (x86 without VNNI saturates); the thresholds
apply to the one that matches the target's profile.

\b
Exit codes: 0 within the thresholds, 1 usage or input error, 3 drift over a
threshold (so `edgecnn drift` can fail a CI job).

\b
Examples:
  edgecnn drift out/model.fp32.onnx out/model.int8.onnx --data val/
  edgecnn drift resnet18 out/model.int8.onnx --weights r18.pt --data val.npz --json
  edgecnn drift out/model.fp32.onnx out/model.int8.onnx --data val/ --fix --out fixed.int8.onnx
"""


@cli.command(help=DRIFT_HELP, short_help="Measure, locate and repair int8 drift; exit 3 when over a threshold.")
@click.argument("ref")
@click.argument("target")
@click.option("--data", required=True, help="Evaluation data: an image folder or a .npz/.npy file (real data).")
@click.option("--profile", "-p", help="Target device profile [default: the one in TARGET's manifest].")
@click.option("--min-agreement", type=float, default=0.99, show_default=True, help="Minimum top-1 agreement.")
@click.option(
    "--max-drop",
    "--max-accuracy-drop",
    "max_accuracy_drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Maximum drop in points against the data's ground truth: accuracy (labels), mIoU (masks), mAP@0.5 (boxes).",
)
@click.option("--min-cosine", type=float, help="Minimum mean logit cosine.")
@click.option("--limit", type=int, default=1000, show_default=True, help="Evaluate at most this many samples.")
@click.option("--weights", type=click.Path(path_type=Path), help="Weights for a PyTorch REF.")
@click.option("--num-classes", type=NUM_CLASSES, help="Classes of a PyTorch REF.")
@click.option("--in-chans", type=IN_CHANS, help="Input channels of a PyTorch REF.")
@click.option(
    "--input-shape",
    multiple=True,
    help="Input N,C,H,W of a PyTorch REF or TARGET without a default size (as for export); several inputs: "
    "name=N,C,H,W once per input [default: the other artifact's].",
)
@click.option(
    "--layers/--no-layers",
    default=None,
    help="Per-layer SQNR of an int8 TARGET (QDQ ONNX or .tflite) against its fp32 twin (table + PNG chart) "
    "[default: on for an int8 TARGET].",
)
@click.option("--chart", type=click.Path(path_type=Path), help="Where to write the per-layer chart (PNG).")
@click.option("--fix", is_flag=True, help="Repair: global remedies, then keep the noisiest layers in float.")
@click.option("--calib", help="Calibration data for --fix [default: --data].")
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Repaired model for --fix, of TARGET's format [default: TARGET.fixed.onnx or .tflite].",
)
@click.option("--force", is_flag=True, help="Replace --out and --chart if they exist.")
@_task_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def drift(
    ref: str,
    target: str,
    as_json: bool,
    min_agreement: float,
    max_accuracy_drop: float,
    min_cosine: float | None,
    **options: Any,
) -> None:
    from edgecnn.analysis.drift import Thresholds
    from edgecnn.commands.drift import drift as run_drift
    from edgecnn.data.calibration import check_source
    from edgecnn.errors import DriftError
    from edgecnn.files import check_suffix

    judging = {name: options.pop(name) for name in TASK_OPTIONS}
    judging.update(min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop, min_cosine=min_cosine)
    typed = _typed(judging)
    if "task" in typed:
        typed["tasks"] = typed.pop("task")
    thresholds = Thresholds.of(**typed)
    check_suffix(options["chart"], ".png", "a PNG chart")
    if options["fix"]:  # before the per-layer chart is written
        check_source(options["calib"])
    report = run_drift(ref, target, thresholds=thresholds, **options)
    if as_json:
        click.echo(json_text(report, default=str, indent=2))
    else:
        from edgecnn.commands.render import make_console, render_drift

        render_drift(report, make_console())
    if not report["passed"]:
        raise DriftError("; ".join(report.get("fix", {}).get("failures") or report["failures"]))


BENCH_HELP = """Time ARTIFACTs (.onnx, .ort, .tflite) here or on a device over SSH: p50/p90/p99, load time, peak RSS.

\b
Runs edgecnn/bench/harness.py (a single file: Python >= 3.8, numpy and one
runtime) in a subprocess, so a crashing runtime or a corrupt model is an error
message. Inputs are random, of each input's shape and dtype (int8/uint8 inputs
quantized with the tensor's scale and zero point), or --input FILE.npy.
TFLite runs with XNNPACK unless --no-xnnpack.

\b
With --host the harness and the artifacts are copied to a fresh temporary
directory on the device, run with its python3 and removed. SSH checks the
host key against known_hosts and uses key authentication only (no password
prompt): run `ssh-copy-id USER@HOST` once. On the device:
  pip install 'edgecnn[device]'   (or just: pip install numpy onnxruntime ai-edge-litert)

\b
--suite probes builds the latency model's probe set for --profile, times it and
writes --out RESULTS.json, which `edgecnn calibrate-profile` reads.

\b
Examples:
  edgecnn bench out/model.int8.ort out/model.int8.tflite
  edgecnn bench model.int8.tflite --threads 4 --runs 500 --json
  edgecnn bench model.int8.ort --host pi@raspberrypi.local --threads 4
  edgecnn bench model.onnx --host pi@10.0.0.7 --port 2222 --identity ~/.ssh/id_ed25519 --budget-s 20
  edgecnn bench --suite probes --profile raspberrypi4 --host pi@raspberrypi.local --out rpi4.json
  edgecnn bench --suite probes --profile x86-avx2 --rounds 3 --out host.json

\b
On a machine whose speed drifts (a shared VM, a device that throttles) use
--rounds: each artifact is then timed in several separate passes, so one slow
phase spoils one pass of one artifact rather than its only measurement.
"""


@cli.command(help=BENCH_HELP, short_help="Time artifacts here or on a device over SSH (p50/p90/p99, RSS).")
@click.argument("artifacts", nargs=-1)
@click.option("--host", metavar="[USER@]HOST", help="Run on this device over SSH [default: here].")
@click.option("--port", type=int, help="SSH port [default: 22 or ~/.ssh/config].")
@click.option("--identity", "-i", type=click.Path(path_type=Path), help="SSH private key.")
@click.option("--known-hosts", type=click.Path(path_type=Path), help="known_hosts file [default: ~/.ssh/known_hosts].")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True, help="SSH connect timeout, s.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Limit for each artifact's run, s.")
@click.option("--python", help="Interpreter for the harness [default: python3 on a device, this one here].")
@click.option("--threads", "-t", type=int, default=1, show_default=True, help="Runtime threads.")
@click.option("--runs", "-n", type=int, help="Timed runs [default: 100, or as many as --budget-s allows].")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--budget-s", type=float, help="Stop timing after this many seconds of runs.")
@click.option(
    "--rounds",
    type=int,
    default=1,
    show_default=True,
    help="Time the whole list this many times, round-robin; report the min of the minima and the median p50.",
)
@click.option("--input", "inputs", type=click.Path(path_type=Path), help="A .npy for the first input.")
@click.option("--no-xnnpack", is_flag=True, help="TFLite: builtin kernels, no XNNPACK delegate.")
@click.option("--suite", type=click.Choice(["probes"]), help="Run a built-in set instead of ARTIFACTs.")
@click.option("--profile", "-p", help="Device profile of --suite probes.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="RESULTS.json of --suite (or of ARTIFACTs).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def bench(
    artifacts: tuple[str, ...],
    suite: str | None,
    profile: str | None,
    out: Path | None,
    force: bool,
    as_json: bool,
    no_xnnpack: bool,
    **options: Any,
) -> None:
    from edgecnn.bench import api
    from edgecnn.errors import UsageError
    from edgecnn.files import check_output_file, check_suffix

    api.check_options(_typed_names(), artifacts, options["host"], suite, out)
    if out:
        check_suffix(out, ".json", "the results as JSON")
        check_output_file(out, force, inputs=[*artifacts, options["inputs"]])

    progress = None
    if not as_json:
        from edgecnn.commands.render import bench_progress

        progress = bench_progress()
    options.update(xnnpack=not no_xnnpack, progress=progress)
    if suite:
        if artifacts:
            raise UsageError("give either ARTIFACTs or --suite, not both")
        if not profile or not out:
            raise UsageError("--suite probes needs --profile P and --out RESULTS.json")
        from edgecnn.commands.probes import bench_probe_suite

        payload: Any = bench_probe_suite(profile, out, **options)
    else:
        payload = api.bench(artifacts, **options)
        if out:
            api.write_json_atomic(out, payload)
    if as_json:
        click.echo(json_text(payload, default=str, indent=2))
        return
    from edgecnn.commands.render import make_console, render_bench, render_bench_suite

    if suite:
        render_bench_suite(payload, make_console(), out)
    else:
        render_bench(payload, make_console(), out)


SWEEP_HELP = """Run a grid of exports (and benches) from SPEC.yaml on Ray, into DIR: resumable, failures isolated.

\b
SPEC lists models (zoo names with knob grids, torchvision:NAME, timm:NAME,
pkg.module:factory or .onnx files, each with weights:), profiles, export:
options (a list is a grid axis: formats: onnx,ort is one cell making both,
formats: [onnx, ort] two cells), exclude: rules and optionally bench:
(artifacts, device hosts, runs). Each
cell calls the same export() as `edgecnn export` in a Ray task, its artifacts in
DIR/cells/<hash>/ (the hash of everything that determines the cell); one record
per finished cell goes to DIR/results.jsonl, then DIR/summary.md, summary.csv and
a Pareto chart per profile (pareto-PROFILE.png).

\b
A rerun skips the recorded cells (crashed ones and failed benches run again);
--force reruns all. A failing cell (bad input, drift, a dead worker after Ray's
retries) is a record, never the end of the sweep: the exit code is 0 unless
--strict (then the highest exit code of the failed cells). Ctrl-C keeps the
records so far. Needs Ray: pip install 'edgecnn[sweep]'.

\b
`edgecnn sweep SPEC.yaml` is short for `edgecnn sweep run SPEC.yaml`;
`edgecnn sweep plan FAMILY --profile P --measure` checks the planner's choice
by measuring its best candidates (see its --help).

\b
Examples:
  edgecnn sweep sweep.yaml --out sweeps/pi4
  edgecnn sweep sweep.yaml --out sweeps/pi4 --workers 2 --strict
  edgecnn sweep sweep.yaml --out /shared/sweeps/all --address ray://head.local:10001
"""


class _SweepGroup(click.Group):
    """``edgecnn sweep SPEC.yaml …`` is short for ``edgecnn sweep run SPEC.yaml …``; ``sweep plan`` checks a plan."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group("sweep", cls=_SweepGroup, help=SWEEP_HELP, short_help="Run a grid of exports and benches on Ray, resumable.")
def sweep_group() -> None:
    pass


_RAY_OPTIONS = (
    click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="The sweep directory DIR."),
    click.option("--address", help="Join the Ray cluster there (auto, ray://HOST:10001) [default: start Ray here]."),
    click.option("--workers", type=click.IntRange(min=1), help="Local Ray CPUs, one export each [default: all cores]."),
    click.option("--force", is_flag=True, help="Rerun every cell, recorded or not."),
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
)


def _ray_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_RAY_OPTIONS):
        command = option(command)
    return command


@sweep_group.command("run", help=SWEEP_HELP, short_help="Run SPEC.yaml's grid (the default of `edgecnn sweep`).")
@click.argument("spec", type=click.Path(path_type=Path))
@_ray_options
@click.option("--strict", is_flag=True, help="Exit non-zero when a cell failed.")
def sweep_run(
    spec: Path, out: Path, address: str | None, workers: int | None, force: bool, strict: bool, as_json: bool
) -> None:
    from edgecnn.commands.render import SweepProgress
    from edgecnn.commands.sweep import check_strict, sweep

    shown = SweepProgress()
    try:
        records = sweep(
            spec, out, address=address, workers=workers, force=force, progress=shown.line, counts=shown.counts
        )
    finally:
        shown.close()
    if as_json:
        click.echo(json_text(records, default=str, indent=2))
    if strict:  # after the table: a CI log shows what failed, then the exit code says it
        check_strict(records, out)


SWEEP_PLAN_HELP = """Check the planner by measurement: export and bench FAMILY's best candidates around the budget.

\b
The planner (`edgecnn plan`) predicts; this measures. The --top candidates of best
expected top-1 predicted within 1.5× the budget (and the planner's choice) are
exported and benched as a sweep into DIR (resumable like any sweep), on the
device with --host, else here. The choice is confirmed when it is the best
expected top-1 among the candidates whose measured p50 fits the budget. The
result goes to DIR/plan-check.json.

\b
Examples:
  edgecnn sweep plan mobilenet --profile raspberrypi4 --measure --host pi@pi4.local --out checks/pi4
  edgecnn sweep plan mobilenet --profile x86-avx2 --measure --budget-ms 2 --top 2 --out checks/x86
"""


@sweep_group.command("plan", help=SWEEP_PLAN_HELP, short_help="Check the planner's choice by measurement.")
@click.argument("family")
@click.option("--profile", "-p", required=True, help="Device profile (see `edgecnn profiles`).")
@click.option("--measure", is_flag=True, help="Export and bench the candidates (required: it is what this does).")
@click.option("--budget-ms", type=float, help="Latency budget [default: the profile's latency_budget_ms].")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Candidates to measure.")
@click.option("--calib", help="Calibration data for the int8 exports [default: synthetic].")
@click.option("--runs", type=click.IntRange(min=1), default=30, show_default=True, help="Timed runs per candidate.")
@click.option("--host", metavar="[USER@]HOST", help="Bench on this device over SSH [default: here].")
@click.option("--port", type=int, help="SSH port.")
@click.option("--identity", "-i", help="SSH private key.")
@click.option("--known-hosts", help="known_hosts file.")
@click.option("--python", help="The device's Python for the harness [default: python3].")
@_ray_options
def sweep_plan(
    family: str,
    profile: str,
    measure: bool,
    budget_ms: float | None,
    top: int,
    calib: str | None,
    runs: int,
    as_json: bool,
    **options: Any,
) -> None:
    from edgecnn.commands.sweep_plan import plan_check
    from edgecnn.errors import UsageError

    if not measure:
        raise UsageError("sweep plan measures the candidates: pass --measure (`edgecnn plan` predicts only)")
    from edgecnn.applies import Rules, check_applies

    ssh = {k: options.pop(k) for k in ("host", "port", "identity", "known_hosts", "python")}
    host = {k: v for k, v in ssh.items() if v is not None} if ssh["host"] else None
    # the sweep's local bench runs in its Ray worker's own Python: --python too is for the device only
    rules = Rules("sweep plan", dict.fromkeys(("port", "identity", "known_hosts", "python"), ("host",)))
    check_applies(rules, _typed_names(), {"host"} if host else set())
    from edgecnn.commands.render import SweepProgress

    shown = SweepProgress()
    try:
        report = plan_check(
            family,
            profile,
            budget_ms=budget_ms,
            top=top,
            host=host,
            calib=calib,
            runs=runs,
            progress=shown.line,
            counts=shown.counts,
            **options,
        )
    finally:
        shown.close()
    if as_json:
        click.echo(json_text(report, indent=2))
        return
    click.echo(
        f"{report['family']} on {profile}, budget {report['budget_ms']:g} ms, measured on {report['measured_on']}:"
    )
    for row in report["candidates"]:
        measured = f"{row['measured_ms']:.3g} ms" if row["measured_ms"] is not None else row["status"]
        mark = "→" if row["chosen"] else " "
        fits = "fits" if row["fits_measured"] else "over"
        click.echo(
            f" {mark} {row['label']:<40} predicted {row['predicted_ms']:.3g} ms, measured {measured} "
            f"({fits}), expected top-1 {row['expected_top1']:.1f}%"
        )
    verdict = "confirmed" if report["confirmed"] else f"not confirmed: best measured is {report['best_measured']}"
    click.echo(f"planner's choice {report['chosen']}: {verdict}")


# --- device profiles, latency prediction and planning
@cli.command(short_help="List the device profiles: CPU, runtimes, budgets, latency model.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def profiles(as_json: bool) -> None:
    """List the device profiles of device_profiles/ (each validated on load).

    \b
    Examples:
      edgecnn profiles
      edgecnn profiles --json
    """
    from edgecnn.config.profiles import list_profiles, load_profile

    rows = [load_profile(name).summary() for name in list_profiles()]
    if as_json:
        click.echo(json_text(rows, indent=2))
        return
    from edgecnn.commands.render import make_console, render_profiles

    render_profiles(rows, make_console())


@cli.command(short_help="Predict a network's latency on a device profile, per op class.")
@click.argument("model")
@click.option("--profile", "-p", required=True, help="Device profile (see `edgecnn profiles`).")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "fp32", "int8"]),
    default="auto",
    show_default=True,
    help="Predict every op at this dtype; auto reads a QDQ graph's int8 ops as int8 (a zoo MODEL: fp32).",
)
@_knob_options
@click.option("--json", "as_json", is_flag=True, help="Print the prediction as JSON.")
def predict(model: str, profile: str, dtype: str, as_json: bool, **scaling: Any) -> None:
    """Predict MODEL's latency on a profile with its latency model (per op: max(compute, memory) + overhead).

    MODEL is an .onnx file (its shapes must be static) or a zoo name with its scaling.

    \b
    Examples:
      edgecnn predict exports/demo/model.int8.onnx --profile raspberrypi4
      edgecnn predict mobilenet_v1 --width 0.5 --resolution 160 --profile x86-avx2 --dtype int8 --json
    """
    from edgecnn.analysis.prediction import predict_model

    report = predict_model(model, profile, None if dtype == "auto" else dtype, scaling)
    if as_json:
        click.echo(json_text(report, indent=2))
        return
    from edgecnn.commands.render import make_console, render_predict

    render_predict(report, make_console())


@cli.command("calibrate-profile", short_help="Fit a profile's latency coefficients to measured probes.")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--base", required=True, help="Profile to start from (name or YAML): all but latency is kept.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="The new profile YAML.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--statistic",
    type=click.Choice(["p50", "min", "mean"]),
    default="p50",
    show_default=True,
    help="Which measured latency to fit: min suits hosts whose timing is bimodal (shared VMs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the fit as JSON.")
def calibrate_profile(results: Path, base: str, out: Path, force: bool, statistic: str, as_json: bool) -> None:
    """Fit the latency model of a profile to RESULTS.json (non-negative least squares, per dtype).

    \b
    RESULTS.json comes from `edgecnn bench --suite probes --profile BASE --out RESULTS.json`
    (on the device, --host USER@HOST) or from benchmarks/latency_fidelity.py on this host.

    \b
    Examples:
      edgecnn bench --suite probes --profile raspberrypi4 --host pi@raspberrypi --out pi4.json
      edgecnn calibrate-profile pi4.json --base raspberrypi4 --out device_profiles/my-pi4.yaml
    """
    from edgecnn.analysis.profile_fit import calibrate_file

    report = calibrate_file(results, base, out, force, f"{statistic}_ms")
    if as_json:
        click.echo(json_text(report, indent=2))
        return
    from edgecnn.commands.render import make_console, render_calibrate_profile

    render_calibrate_profile(report, make_console())


PLAN_HELP = """Choose FAMILY's scaling for a device: the best expected accuracy within its budgets.

\b
FAMILY is mobilenet (MobileNetV1, α × ρ), mobilenet_v2 (α × ρ), efficientnet
(φ 0–7 by 0.25, B0–B7, Lite0–4) or resnet (18–152 × ρ). Every candidate is
costed without an export and predicted with the profile's latency model;
memory is weights + the largest operator's activations; expected top-1 is
read from published ImageNet tables (interpolated between published points,
extrapolated ones flagged and chosen only when nothing else fits). A
candidate fits when its prediction leaves --headroom of the budget free:
predictions are estimates (see BENCHMARKS.md, latency_fidelity).

\b
Examples:
  edgecnn plan mobilenet --profile raspberrypi4
  edgecnn plan efficientnet --profile x86-avx2 --budget-ms 15 --dtype int8 --json
"""


@cli.command(help=PLAN_HELP, short_help="Pick α, ρ or φ to fit a device's latency budget with the best accuracy.")
@click.argument("family")
@click.option("--profile", "-p", required=True, help="Device profile (see `edgecnn profiles`).")
@click.option("--budget-ms", type=float, help="Latency budget [default: the profile's latency_budget_ms].")
@click.option("--memory-mb", type=float, help="Memory budget [default: the profile's memory_budget_mb].")
@click.option(
    "--headroom",
    type=float,
    default=0.05,
    show_default=True,
    help="Fraction of the budget kept free for prediction error (0: predictions up to the budget fit).",
)
@click.option("--dtype", type=click.Choice(["int8", "fp32"]), default="int8", show_default=True)
@click.option("--chart", type=click.Path(path_type=Path), help="PNG chart [default: plan-FAMILY-PROFILE.png].")
@click.option("--force", is_flag=True, help="Replace --chart if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    family: str,
    profile: str,
    budget_ms: float | None,
    memory_mb: float | None,
    headroom: float,
    dtype: str,
    chart: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    from edgecnn.analysis.planner import PLANNABLE, grid_size
    from edgecnn.analysis.planner import plan as run_plan
    from edgecnn.analysis.plots import plan_chart
    from edgecnn.applies import Rules, check_applies
    from edgecnn.errors import UnknownNameError
    from edgecnn.files import check_output_file, check_suffix, ensure_writable_dir
    from edgecnn.progress import RichReporter

    if not grid_size(family):
        raise UnknownNameError("planner family", family, PLANNABLE)
    check_applies(Rules("plan", {"force": ("chart",)}), _typed_names(), {"chart"} if chart else set())
    if chart:
        check_suffix(chart, ".png", "a PNG chart")
        check_output_file(chart, force, inputs=[profile])
    else:
        ensure_writable_dir(Path.cwd())
    reporter = RichReporter()
    try:
        advance = reporter.bar(f"costing {family} candidates", grid_size(family))
        result = run_plan(family, profile, budget_ms, dtype, memory_mb, on_candidate=advance, headroom=headroom)
    finally:
        reporter.close()
    chart_path = plan_chart(result, chart or Path(f"plan-{result.family}-{result.profile}.png"))
    report = {**result.to_dict(), "chart": str(chart_path)}
    if as_json:
        click.echo(json_text(report, indent=2))
        return
    from edgecnn.commands.render import make_console, render_plan

    render_plan(result, make_console(), chart_path)


def _click_error(error: click.ClickException) -> str:
    """click's usage error as one line, with its `--help` hint."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    return f"{message} (try '{ctx.command_path} --help')" if ctx is not None else message


def _one_line(message: str) -> str:
    """``message`` on one line: a newline in a value it quotes (a path, a --host) shown as ``\\n``."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> Any:
    """Entry point: runs the click group in a temporary directory of its own (removed at the end, or by the next
    run after a SIGKILL); user errors are one line on stderr, a bug is one line and exit 70."""
    with terminate_as_interrupt(), run_temp_dir():
        return _main(argv)


def _main(argv: list[str] | None) -> Any:
    try:
        with room_to_write(Path(tempfile.gettempdir())):  # a full disk under any file, a temporary one too: one line
            return cli.main(args=argv, prog_name="edgecnn", standalone_mode=False)
    except EdgecnnError as error:
        stop_if_signalled()  # what a SIGTERM a library swallowed left failing: 'terminated', exit 143
        click.echo(f"edgecnn: error: {_one_line(str(error))}", err=True)
        if isinstance(error, UserCodeError):
            click.echo(error.details.rstrip(), err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort as error:
        stopped = as_terminated(error)
        if stopped is not None:  # SIGTERM, SIGHUP: terminate_as_interrupt says so, exits 143, 129
            raise stopped from None
        click.echo("edgecnn: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # `edgecnn` alone: the help, as with --help
        click.echo(error.ctx.get_help())
        sys.exit(EXIT_OK)
    except click.ClickException as error:
        click.echo(f"edgecnn: error: {_click_error(error)}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt as error:
        stopped = as_terminated(error)
        if stopped is not None:
            raise stopped from None
        click.echo("edgecnn: interrupted", err=True)
        sys.exit(130)
    except Exception as error:
        stop_if_signalled()
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in EXPORT_MODULES:
            # the core install has no torch/onnx: say which extra brings them
            click.echo(f"edgecnn: error: this needs {error.name}: pip install 'edgecnn[export]'", err=True)
            sys.exit(EXIT_USAGE)
        if os.environ.get("EDGECNN_DEBUG", "") not in ("", "0"):  # the traceback, and still the exit code of a bug
            import traceback

            traceback.print_exc()
            sys.exit(EXIT_INTERNAL)
        message = " ".join(str(error).split())[:300]
        click.echo(
            f"edgecnn: error: internal error: {type(error).__name__}: {message} — this is a bug in edgecnn, "
            "please report it; run with --debug or EDGECNN_DEBUG=1 for the traceback",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
