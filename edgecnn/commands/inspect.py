"""``edgecnn inspect``: the report of :func:`edgecnn.pipeline.inspect.inspect_model` as tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from edgecnn.commands.render import _human

MARK = {True: "[green]✓[/]", False: "[red]✗[/]"}
FORMAT_COLOUR = {"ok": "green", "skipped": "yellow", "fails": "red"}


def _shape(shape: list[Any]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def render_inspect(report: dict[str, Any], console: Console) -> None:
    """Inputs and outputs, op types per format, size, and what ``edgecnn export`` would do."""
    model = report["model"]
    tensors = Table(title=f"{model['name']} ({model['kind']})", title_justify="left")
    for column in ("", "name", "shape", "dtype"):
        tensors.add_column(column)
    for kind in ("inputs", "outputs"):
        for tensor in report[kind]:
            tensors.add_row(kind[:-1], tensor["name"], _shape(tensor["shape"]), tensor["dtype"])
    console.print(tensors)
    macs = "unknown (shapes not static)" if report["macs"] is None else _human(report["macs"])
    console.print(
        f"params {_human(report['params'])}, MACs {macs} per sample (counted on the {report['counted_by']}), "
        f"{report['nodes']} nodes after simplification",
        highlight=False,
    )
    ops = Table(title="op types (simplified graph)", title_justify="left")
    for column in ("op", "count", "onnx / ort", "tflite", "nodes without a TFLite lowering"):
        ops.add_column(column, justify="right" if column == "count" else "left")
    for row in report["ops"]:
        nodes = row["unsupported_nodes"]
        shown = ", ".join(nodes[:6]) + (f" … ({len(nodes)})" if len(nodes) > 6 else "")
        ops.add_row(row["op"], str(row["count"]), MARK[row["onnx"] and row["ort"]], MARK[row["tflite"]], shown)
    console.print(ops)
    _render_plan(report["export"], console)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _render_plan(plan: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]edgecnn export would[/] (profile {plan['profile']}):", highlight=False)
    if plan["refused"]:
        console.print(f"  [red]refuse it (exit 1):[/] {plan['refused']}", highlight=False)
        return
    opset = plan["opset"]
    if opset["upgrade"]:
        console.print(f"  upgrade opset {opset['original']} → {opset['working']} (onnx.version_converter)")
    if opset.get("fixed_dims"):
        fixed = ", ".join(f"{name}={size}" for name, size in opset["fixed_dims"].items())
        console.print(f"  fix the free input dims: {fixed}", highlight=False)
    console.print(
        "  run: " + ", ".join(f"{name} ({what})" if what != "runs" else name for name, what in plan["stages"].items())
    )
    for name, status in plan["formats"].items():
        colour = FORMAT_COLOUR[status["status"]]
        reason = f": {status['reason']}" if "reason" in status else ""
        console.print(f"  {name}: [{colour}]{status['status']}[/]{reason}", highlight=False)
    console.print(f"  exit {plan['expected_exit_code']} unless a numerical check fails", highlight=False)
