"""What the ``edgecnn`` commands print: one function per command, given the API's result and a rich Console.

It imports rich, so the CLI imports it inside a command, only when that command prints (never for ``--help``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from edgecnn.analysis.mixed_precision import BASELINE
from edgecnn.analysis.tasks import summary, task
from edgecnn.pipeline.manifest import figure

if TYPE_CHECKING:
    from edgecnn.analysis.planner import Plan
    from edgecnn.pipeline.export import ExportResult


def make_console() -> Console:
    """A rich console for stdout, at least 120 columns wide when output is not a terminal (pipes, CI logs)."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


def bench_progress() -> Callable[[str], None]:
    """A callback printing progress lines on stderr (stdout stays the table)."""
    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]{message}[/]", highlight=False)


class SweepProgress:
    """A sweep's progress on stderr: a plain line per event (never wrapped: a log to grep) and, on a terminal, one
    bar for the grid with its counts."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.bar = None
        if self.console.is_terminal:
            columns = (TextColumn("grid"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
            columns += (TextColumn("{task.description}"), TimeElapsedColumn())
            self.bar = Progress(*columns, console=self.console, transient=True)
        self.task: Any = None

    def line(self, text: str) -> None:
        """One event: above the bar on a terminal, else a plain line."""
        if self.bar is None:
            print(text, file=sys.stderr, flush=True)
        else:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def counts(self, state: dict[str, int]) -> None:
        """The grid's state (the keys of sweep()'s ``counts``) drawn as the bar."""
        if self.bar is None:
            return
        words = [f"done {state['done']}", f"failed {state['failed']}", f"running {state['exporting']}"]
        words += [f"queued {state['queued']}"] if state["queued"] else []
        words += [f"benching {state['benching']}"] if state["benching"] else []
        words += [f"waiting on a device {state['waiting']}"] if state["waiting"] else []
        finished = state["done"] + state["failed"]
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("", total=state["total"])
        self.bar.update(self.task, total=state["total"], completed=finished, description=" · ".join(words))
        self.bar.refresh()
        if finished == state["total"]:  # the grid is done: the bar goes before the closing lines
            self.close()

    def close(self) -> None:
        """Stop drawing (the bar goes; the lines stay)."""
        if self.bar is not None and self.task is not None:
            self.bar.stop()
            self.bar.remove_task(self.task)
            self.task = None


def _human(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(count)


def render_models(rows: list[dict[str, Any]], console: Console) -> None:
    """``edgecnn models``: the zoo table of :func:`~edgecnn.models.complexity.describe_model` rows."""
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
    console.print(table)


def render_export(result: ExportResult, console: Console) -> None:
    """``edgecnn export``: the artifacts, the int8-vs-fp32 agreement and where the report is."""
    manifest = result.manifest
    table = Table(title=f"{manifest['model']['name']} → {result.out}", title_justify="left")
    for column in ("artifact", "size", "sha256"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for entry in manifest["artifacts"].values():
        table.add_row(entry["path"], f"{entry['bytes'] / 1e6:.2f} MB", entry["sha256"][:12])
    console.print(table)
    agreement, drift = manifest.get("agreement"), manifest.get("drift") or {}
    if agreement:
        console.print(
            f"int8 vs fp32 on {agreement['samples']} "
            f"{'held-out samples' if agreement.get('held_out') else 'calibration samples (none held out)'} "
            f"({agreement['basis'].replace('_', ' ')}): {_task_headline(agreement[agreement['basis']])}"
            f"{_repaired(drift.get('fix'))}",
            highlight=False,
        )
        for name, figs in (agreement.get("formats") or {}).items():
            fix = (drift.get("formats") or {}).get(name, {}).get("fix")
            console.print(f"int8 {name} vs fp32: {_task_headline(figs)}{_repaired(fix)}", highlight=False)
    for name, status in manifest.get("format_status", {}).items():
        if status["status"] != "ok":
            colour = "red" if status["status"] == "failed" else "yellow"
            console.print(
                f"[{colour}]{name} not made[/] ({status['status']} at {status['stage']}): {status['reason']}",
                highlight=False,
            )
    console.print(f"report: {result.out / 'report.md'}", highlight=False)


def _task_headline(figs: dict[str, Any]) -> str:
    """One computation's figures: each output's task figures (top-1 agreement for a lone classifier), cosine."""
    outputs = figs.get("outputs") or {}
    if (len(outputs) == 1 and next(iter(outputs.values())).get("task") == "classification") or not outputs:
        return f"top-1 agreement {figure(figs.get('top1_agreement'), '.3f')}, cosine {figs['cosine']:.4f}"
    shown = "; ".join(f"{name}: {summary(out)}" if len(outputs) > 1 else summary(out) for name, out in outputs.items())
    return f"{shown}, cosine {figs['cosine']:.4f}"


def _repaired(fix: dict[str, Any] | None) -> str:
    """`` (repaired: …)`` when a drift repair replaced the artifact."""
    return f" (repaired: {fix['chosen']})" if fix and fix["chosen"] != "baseline" else ""


def _headline(figs: dict[str, Any]) -> str:
    """A repair's figures: top-1 agreement for a classifier, else the task figure it was judged by (its name for
    one task: mIoU, rank-1 agreement …) and the worst output's cosine."""
    if figs.get("top1_agreement") is not None:
        return f"top-1 agreement {figure(figs['top1_agreement'])}"
    kinds = set((figs.get("tasks") or {}).values())
    if figs.get("score") is None or not kinds - {"raw"}:
        return f"cosine {figs['cosine']:.4f}"
    named = task(next(iter(kinds))) if len(kinds) == 1 else None  # a raw output's figure is its cosine: unnamed
    label = dict(named.shown).get(named.headline, "task figure") if named else "worst task figure"
    return f"{label} {figs['score']:.4f}, cosine {figs['cosine']:.4f}"


def _per_output(outputs: dict[str, Any], basis: str) -> Table:
    """A row per output: its task (and where it came from), the task's figures, cosine and SQNR."""
    table = Table(title=f"per output ({basis.replace('_', ' ')})", title_justify="left")
    for column in ("output", "task", "task figures", "cosine", "SQNR dB"):
        table.add_column(column, justify="right" if column in ("cosine", "SQNR dB") else "left")
    for name, figs in outputs.items():
        shown = summary(figs)
        origin = "" if figs.get("task_origin", "given") == "given" else f" ({figs['task_origin']})"
        table.add_row(name, figs["task"] + origin, shown, f"{figs['cosine']:.4f}", f"{figs['sqnr_db']:.1f}")
    return table


def render_drift(report: dict[str, Any], console: Console) -> None:
    """``edgecnn drift``: figures per computation, the worst layers, notes, the repair and the verdict."""
    table = Table(
        title=f"{report['target']} vs {report['reference']} on {report['samples']} samples", title_justify="left"
    )
    classifier = any(figs["top1_agreement"] is not None for figs in report["computations"].values())
    columns = ("computation", "top-1 agreement", "top-5 overlap", "cosine", "SQNR dB", "accuracy", "drop")
    for column in columns if classifier else ("computation", "worst cosine", "worst SQNR dB"):
        table.add_column(column, justify="left" if column == "computation" else "right")
    for name, figs in report["computations"].items():
        row = [name.replace("_", " ") + (" (judged)" if name == report["basis"] else "")]
        if classifier:
            row += [figure(figs["top1_agreement"]), figure(figs.get("top5_overlap"))]
        row += [f"{figs['cosine']:.4f}", f"{figs['sqnr_db']:.1f}"]
        if classifier:
            accuracy = (
                f"{figs['reference_accuracy']:.3f}→{figs['target_accuracy']:.3f}" if "target_accuracy" in figs else ""
            )
            row += [accuracy, f"{figs['accuracy_drop_points']:.2f}" if "accuracy_drop_points" in figs else ""]
        table.add_row(*row)
    console.print(table)
    outputs = report["computations"][report["basis"]].get("outputs") or {}
    if len(outputs) > 1 or any(figs["task"] != "classification" for figs in outputs.values()):
        console.print(_per_output(outputs, report["basis"]))
    if report.get("layers"):
        title = f"worst layers (per-layer SQNR vs fp32, {report.get('layers_basis', 'exact QDQ')})"
        layers = Table(title=title, title_justify="left")
        for column in ("node", "op", "SQNR dB", "cosine", "noise added dB"):
            layers.add_column(column, justify="left" if column in ("node", "op") else "right")
        for layer in report["layers"][:10]:
            layers.add_row(
                layer["node"],
                layer["op_type"],
                f"{layer['sqnr_db']:.1f}",
                f"{layer['cosine']:.4f}",
                f"{layer['added_noise_db']:.1f}",
            )
        console.print(layers)
        console.print(f"chart: {report['chart']}", highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    fix = report.get("fix")
    if fix:
        wrote = f"wrote {fix['out']}" + (" (TARGET as it was: no try did better)" if fix["chosen"] == BASELINE else "")
        console.print(
            f"fix: {fix['chosen']} → {_headline(fix)}, {len(fix['kept_float'])} node(s) kept float, "
            f"{fix['bytes_before']:,} → {fix['bytes_after']:,} bytes; {wrote}",
            highlight=False,
        )
    basis = report["basis"].replace("_", " ")
    if fix:  # TARGET's verdict, then the repaired model's (the command's exit follows the latter)
        console.print(f"drift ({basis}): TARGET {_verdict(not report['failures'], report['failures'])}; repaired "
                      f"{_verdict(fix['passed'], fix['failures'])}", highlight=False)  # fmt: skip
    else:
        console.print(f"drift ({basis}): {_verdict(report['passed'], report['failures'])}", highlight=False)


def _verdict(passed: bool, failures: list[str]) -> str:
    return "[green]PASSED[/]" if passed else "[red]FAILED[/]: " + "; ".join(failures)


def render_bench(results: list[dict[str, Any]], console: Console, out: Path | None = None) -> None:
    """``edgecnn bench``: the latency table of :func:`~edgecnn.bench.api.bench` results, the device, ``out`` if any."""
    threads = sorted({str(r.get("threads", "?")) for r in results})
    table = Table(title=f"latency in ms, {'/'.join(threads)} thread(s)", title_justify="left")
    columns = ("artifact", "runtime", "delegate", "runs", "min", "p50", "p90", "p99", "mean", "std", "load")
    for column in (*columns, "RSS MB"):
        left = column in ("artifact", "runtime", "delegate")
        table.add_column(column, justify="left" if left else "right", no_wrap=column != "artifact")
    short = {"onnxruntime": "ort", "ai_edge_litert": "litert", "tflite_runtime": "tflite"}
    for r in results:
        runtime = r.get("runtime") or {}
        table.add_row(
            r["artifact"],
            f"{short.get(runtime.get('name'), runtime.get('name', ''))} {runtime.get('version', '')}".strip(),
            str(r.get("delegate", "")),
            str(r["runs"]),
            *(f"{r[key]:.3f}" for key in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "load_ms")),
            f"{r['peak_rss_mb']:.1f}" if r.get("peak_rss_mb") is not None else "",
        )
    console.print(table)
    from edgecnn.runtime.xnnpack import Delegation

    for r in results:  # a .tflite XNNPACK splits runs partly in LiteRT's own, slower kernels: say where
        if r.get("xnnpack"):
            console.print(f"{r['artifact']}: {Delegation(**r['xnnpack']).summary()}", highlight=False)
    device = results[0].get("device") or {}
    where = results[0].get("host", "local")
    freq = f", {device['freq_mhz']:g} MHz" if device.get("freq_mhz") else ""
    governor = f", governor {device['governor']}" if device.get("governor") else ""
    console.print(
        f"device ({where}): {device.get('board') or device.get('cpu', '?')}, {device.get('cores', '?')} cores, "
        f"{device.get('machine', '?')}{freq}{governor}; {device.get('os', '?')}; Python {device.get('python', '?')}",
        highlight=False,
    )
    if out:
        console.print(f"wrote {out}", highlight=False)


def render_bench_suite(payload: dict[str, Any], console: Console, out: Path | None = None) -> None:
    """``edgecnn bench --suite``: :func:`render_bench` of a RESULTS.json payload (its shared keys on every row)."""
    shared = {key: payload[key] for key in ("host", "threads", "device", "runtime", "delegate")}
    render_bench([{**row, **shared} for row in payload["results"]], console, out)


def render_profiles(rows: list[dict[str, Any]], console: Console) -> None:
    """``edgecnn profiles``: one row per :meth:`~edgecnn.config.profiles.Profile.summary`."""
    table = Table(title="device profiles", title_justify="left")
    for column in ("name", "cpu", "cores", "threads", "formats", "budget ms", "memory MB", "latency model"):
        table.add_column(
            column, justify="right" if column in ("cores", "threads", "budget ms", "memory MB") else "left"
        )
    for row in rows:
        latency = row["latency"]
        model = f"{latency['runtime']}, {latency['threads']} thr, {latency['measurements']} measurements"
        table.add_row(
            row["name"],
            f"{row['cpu']['model']} @ {row['cpu']['clock_ghz']:g} GHz",
            str(row["cpu"]["cores"]),
            str(row["threads"]),
            ", ".join(row["formats"]),
            f"{row['latency_budget_ms']:g}" if row["latency_budget_ms"] else "—",
            f"{row['memory_budget_mb']:g}" if row["memory_budget_mb"] else "—",
            model,
        )
    console.print(table)


def render_predict(report: dict[str, Any], console: Console) -> None:
    """``edgecnn predict``: predicted time per op class and the totals."""
    table = Table(
        title=f"{report['model']} on {report['profile']} ({report['runtime']}, {report['threads']} thread(s))",
        title_justify="left",
    )
    for column in ("op class", "ops", "ms", "share"):
        table.add_column(column, justify="left" if column == "op class" else "right")
    total = report["predicted_ms"]
    for name, figures in report["by_class"].items():
        table.add_row(
            name, str(figures["ops"]), f"{figures['ms']:.2f}", f"{figures['ms'] / total:.0%}" if total > 0 else "–"
        )
    console.print(table)
    console.print(
        f"predicted {total:.2f} ms ({report['dtype']}), {report['macs_m']:.1f}M MACs, "
        f"~{report['memory_mb']:.1f} MB (weights + largest activations)",
        highlight=False,
    )


def render_calibrate_profile(report: dict[str, Any], console: Console) -> None:
    """``edgecnn calibrate-profile``: the fit's in-sample error per dtype and the profile written."""
    for dtype, figures in report["fit"].items():
        console.print(
            f"{dtype}: {figures['samples']} probes, in-sample error {figures['mape_pct']:.1f}% mean, "
            f"{figures['within_10pct']:.0%} within ±10%",
            highlight=False,
        )
    console.print(f"wrote {report['out']}", highlight=False)


def render_plan(result: Plan, console: Console, chart: Path) -> None:
    """``edgecnn plan``: every candidate, best expected accuracy first, the choice and the chart written."""
    memory = f", {result.memory_budget_mb:g} MB" if result.memory_budget_mb else ""
    table = Table(
        title=f"{result.family} on {result.profile}, {result.dtype}: budget {result.budget_ms:g} ms"
        f" (predictions ≤ {result.limit_ms:.3g} ms fit){memory}",
        title_justify="left",
    )
    for column in ("candidate", "predicted ms", "memory MB", "MACs M", "expected top-1", "accuracy", "fits"):
        table.add_column(
            column, justify="left" if column in ("candidate", "accuracy") else "right", no_wrap=column == "candidate"
        )
    ranked = sorted(result.candidates, key=lambda c: (-c.expected_top1, c.predicted_ms))
    for candidate in ranked:
        mark = "[bold green]← chosen[/]" if candidate is result.chosen else ("yes" if candidate.fits else "")
        style = "bold" if candidate is result.chosen else ("dim" if not candidate.fits else None)
        table.add_row(
            candidate.label,
            f"{candidate.predicted_ms:.2f}",
            f"{candidate.memory_mb:.1f}",
            f"{candidate.macs_m:.0f}",
            f"{candidate.expected_top1:.1f}",
            candidate.accuracy,
            mark,
            style=style,
        )
    console.print(table)
    chosen = result.chosen
    console.print(
        f"chosen: {chosen.label}: {chosen.predicted_ms:.2f} ms predicted, expected top-1 {chosen.expected_top1:.1f}"
        f" ({chosen.accuracy})" + (f"; runner-up {result.runner_up.label}" if result.runner_up else ""),
        highlight=False,
    )
    console.print(f"chart: {chart}", highlight=False)
