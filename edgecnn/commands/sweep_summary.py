"""A sweep's tables and charts: DIR/summary.md (a table per profile), DIR/summary.csv and DIR/pareto-<profile>.png."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from edgecnn.commands.sweep_spec import LOCAL
from edgecnn.files import atomic_write_text

COLUMNS = (
    "key",
    "label",
    "profile",
    "status",
    "exit_code",
    "predicted_ms",
    "bench_p50_ms",
    "bench_host",
    "size_mb",
    "int8_agreement",
    "task_score",
    "fp32_accuracy",
    "int8_accuracy",
    "passed",
    "wall_s",
    "message",
)
FAILED = ("error", "drift", "partial", "crashed", "worker-lost", "bench-error")


def cells(count: int) -> str:
    """``1 cell``, ``6 cells``."""
    return f"{count} cell{'' if count == 1 else 's'}"


def latency(record: dict[str, Any]) -> tuple[float | None, str]:
    """A cell's latency for the chart: measured (bench p50, and where: a bench without ``hosts:`` runs here, not on
    the profile's device) when there is one, else the prediction."""
    if record.get("bench_p50_ms") is not None:
        return record["bench_p50_ms"], f"measured on {_host(record)}"
    return record.get("predicted_ms"), "predicted"


def _host(record: dict[str, Any]) -> str:
    """Where a cell was benched: a device's host, or this machine."""
    host = record.get("bench_host")
    return "this machine, not the device" if host in (None, LOCAL) else str(host)


def headline(record: dict[str, Any]) -> tuple[float | None, str]:
    """A cell's accuracy figure: int8 accuracy when the data has labels, else the task score, else agreement."""
    for key, name in (("int8_accuracy", "int8 accuracy"), ("task_score", "int8 task score")):
        if record.get(key) is not None and (key != "int8_accuracy" or record.get("labels")):
            return record[key], name
    return record.get("int8_agreement"), "int8 top-1 agreement"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(records: list[dict[str, Any]]) -> str:
    """A table per profile: label, status, latency, size, int8 figures, pass/fail; failures with their message."""
    lines = ["# Sweep summary", ""]
    done = sum(r["status"] == "ok" for r in records)
    lines += [f"{cells(len(records))}: {done} ok, {len(records) - done} failed.", ""]
    for profile in dict.fromkeys(r["profile"] for r in records):
        rows = [r for r in records if r["profile"] == profile]
        lines += [f"## {profile}", ""]
        lines += [
            "| cell | status | predicted ms | measured p50 ms | measured on | size MB | int8 agreement | task score | "
            "int8 accuracy | passed | wall s |"
        ]
        lines += ["|" + "---|" * 11]
        for r in rows:
            where = _host(r) if r.get("bench_p50_ms") is not None else None
            values = [r["label"], r["status"], r.get("predicted_ms"), r.get("bench_p50_ms"), where, r.get("size_mb")]
            values += [r.get("int8_agreement"), r.get("task_score"), r.get("int8_accuracy"), r.get("passed")]
            values += [r.get("wall_s")]
            lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            lines += ["", "Failed cells:", ""]
            for r in failed:
                lines.append(f"- `{r['key']}` {r['label']}: {r['status']} (exit {r['exit_code']}): {r['message']}")
        lines.append("")
    return "\n".join(lines)


def csv_text(records: list[dict[str, Any]]) -> str:
    """Every cell as a CSV row of COLUMNS."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell_text(record.get(k)) for k in COLUMNS})
    return buffer.getvalue()


def _cell_text(value: Any) -> Any:
    """A CSV value; text a spreadsheet would run as a formula (=, +, -, @ first) is quoted with a leading '."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def charts(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """A PNG per profile of the accuracy figure against latency, the Pareto front marked (cells with both)."""
    from edgecnn.analysis.plots import pareto_chart

    made = []
    for profile in dict.fromkeys(r["profile"] for r in records):
        rows = [r for r in records if r["profile"] == profile and r.get("artifact")]
        rows = [r for r in rows if latency(r)[0] is not None and headline(r)[0] is not None]
        if not rows:
            continue
        points = [(float(latency(r)[0]), float(headline(r)[0])) for r in rows]  # type: ignore[arg-type]
        kinds = {latency(r)[1] for r in rows}
        names = {headline(r)[1] for r in rows}
        xlabel = f"latency for {profile} (ms): {' / '.join(sorted(kinds))}"
        path = out / f"pareto-{re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(profile).stem)}.png"  # a profile may be a path
        title = f"edgecnn sweep: {profile}, {len(rows)} cells"
        made.append(pareto_chart(points, [r["label"] for r in rows], path, xlabel, " / ".join(sorted(names)), title))
    return made


def write_summary(records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Write summary.md, summary.csv and the charts into ``out``; their paths."""
    md = atomic_write_text(out / "summary.md", markdown(records))
    table = atomic_write_text(out / "summary.csv", csv_text(records))
    return {"summary_md": str(md), "summary_csv": str(table), "charts": [str(p) for p in charts(records, out)]}
