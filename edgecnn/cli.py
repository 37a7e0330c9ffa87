"""The ``edgecnn`` command: parse, call the API, print. User mistakes are one line and an exit code."""

from __future__ import annotations

import json
import sys
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
      edgecnn models                 the model zoo, with params and MACs
      edgecnn models mobilenet       the models whose name or family matches
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
