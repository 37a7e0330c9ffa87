"""The ``edgecnn`` command: parse, call the API, print. User mistakes are one line and an exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgecnn import __version__
from edgecnn.errors import EXIT_USAGE, EdgecnnError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="edgecnn")
def cli() -> None:
    """Take a convolutional network from PyTorch to an edge device: int8, fast, still accurate.

    \b
    Start with:
      edgecnn models                                 the model zoo, with params and MACs
      edgecnn export mobilenet --profile raspberrypi4
                                                     ONNX + int8 + .ort, checked at every stage
    """


def _human(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(count)


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
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgecnn model zoo ({len(rows)} models)")
    for column in ("name", "family", "params", "MACs", "input", "top-1 (published)"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left", no_wrap=True)
    for row in rows:
        top1 = row["reference"].get("top1")
        table.add_row(
            row["name"],
            row["family"],
            _human(row["params"]),
            _human(row["macs"]),
            "×".join(map(str, row["input_size"])),
            f"{top1:.1f}" if top1 else "",
        )
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(table)


def _stage_help() -> str:
    from edgecnn.pipeline.stages import STAGES

    return "\n".join(f"  {i}. {s.name:<10} {s.title}: {s.check}" for i, s in enumerate(STAGES, 1))


EXPORT_HELP = """Export MODEL for a device: ONNX, calibrated int8, ONNX Runtime mobile (.ort), each stage checked.

\b
MODEL is one of:
  a zoo name            mobilenet, resnet18, efficientnet_b0 …  (see `edgecnn models`)
  torchvision:NAME      torchvision:resnet50 (architecture only; pass --weights)
  package.module:attr   a factory function or nn.Module class of your own
  FILE.onnx             an exported model (tracing is skipped)

\b
Stages (each checked against the stage before; a failed check exits 2):
{stages}

\b
Writes OUT/ (default exports/MODEL-PROFILE): model.fp32.onnx, model.int8.onnx,
model.fp32.ort, model.int8.ort, *.required_operators.config, manifest.json,
report.md. Everything is written beside OUT and renamed into place at the end:
a failure or Ctrl-C leaves no half-written OUT.

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
        self.help = EXPORT_HELP.format(stages=_stage_help())
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
@click.option("--format", "formats", help="Comma list of formats: onnx, ort [default: the profile's].")
@click.option("--width", type=float, help="Width multiplier α (MobileNet, EfficientNet with --phi, ResNet).")
@click.option("--resolution", type=float, help="Input size in pixels, or a multiplier ρ ≤ 1 of the default.")
@click.option("--phi", type=float, help="EfficientNet compound coefficient φ (model 'efficientnet').")
@click.option("--depth", type=float, help="Depth multiplier (model 'efficientnet').")
@click.option("--growth-rate", type=int, help="DenseNet growth rate k.")
@click.option("--weights", type=click.Path(path_type=Path), help="state_dict or checkpoint (.pt), loaded safely.")
@click.option("--num-classes", type=int, help="Classes of the classifier (to match --weights).")
@click.option("--in-chans", type=int, help="Input channels (to match --weights).")
@click.option("--input-shape", help="Traced input N,C,H,W, for models without a default size.")
@click.option("--calib", help="Calibration data: an image folder, a .npz/.npy file, or 'synthetic'.")
@click.option("--calib-size", type=int, help="Calibration samples [default: the recipe's, 128].")
@click.option(
    "--method",
    type=click.Choice(["minmax", "percentile", "entropy"]),
    help="Calibration method [default: the recipe's].",
)
@click.option("--opset", type=int, help="ONNX opset (19–21) [default: the recipe's, 20].")
@click.option("--no-quantize", is_flag=True, help="Stop at fp32 (no int8 artifacts).")
@click.option("--dynamic-batch", is_flag=True, help="Export with a dynamic batch dimension.")
@click.option("--recipe", help="Export recipe name or YAML path [default: the model family's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the calibration split.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def export(model: str, as_json: bool, no_quantize: bool, formats: str | None, **options: Any) -> None:
    from edgecnn.pipeline.export import export as run_export
    from edgecnn.progress import RichReporter

    result = run_export(model, reporter=RichReporter(), formats=formats, quantize=not no_quantize, **options)
    if as_json:
        click.echo(json.dumps(result.manifest, indent=2, default=str))
        return
    _print_summary(result)


def _print_summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    manifest = result.manifest
    table = Table(title=f"{manifest['model']['name']} → {result.out}", title_justify="left")
    for column in ("artifact", "size", "sha256"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for entry in manifest["artifacts"].values():
        table.add_row(entry["path"], f"{entry['bytes'] / 1e6:.2f} MB", entry["sha256"][:12])
    console = Console()
    console.print(table)
    agreement = manifest.get("agreement")
    if agreement:
        console.print(
            f"int8 vs fp32 on {agreement['samples']} held-out samples "
            f"({agreement['basis'].replace('_', ' ')}): top-1 agreement {agreement['top1']:.3f}, "
            f"cosine {agreement['cosine']:.4f}",
            highlight=False,
        )
    console.print(f"report: {result.out / 'report.md'}", highlight=False)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: runs the click group and turns user errors into one line on stderr."""
    try:
        return cli.main(args=argv, prog_name="edgecnn", standalone_mode=False)
    except EdgecnnError as error:
        click.echo(f"edgecnn: error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("edgecnn: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("edgecnn: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
