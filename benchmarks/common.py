"""Shared helpers of the benchmarks: machine description, timing, result files and BENCHMARKS.md.

Every benchmark script writes its figures with :func:`write_result` into
``benchmarks/results/<name>.json``; :func:`render_markdown` turns all of them
into the tables of ``BENCHMARKS.md``. ``RESULTS_DIR`` is read at call time, so
tests can point it at a temporary directory.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.files import atomic_write_text

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# Flag names as reported by /proc/cpuinfo (x86 "flags", Arm "Features") → name reported here.
ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avxvnni",
    "avxvnni": "avxvnni",
    "neon": "neon",
    "asimd": "asimd",
    "asimddp": "asimddp",
}

# Module to import → distribution whose version is reported.
PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
    "edgecnn": "edgecnn",
    "ai_edge_litert": "ai-edge-litert",
}


def _cpuinfo() -> dict[str, str]:
    """The first value of every key of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _cpu_model(info: dict[str, str]) -> str:
    """The CPU's marketing name, or the best substitute the platform offers."""
    for key in ("model name", "hardware", "cpu model", "model"):
        if info.get(key):
            return info[key]
    if info.get("cpu implementer"):
        return f"Arm implementer {info['cpu implementer']} part {info.get('cpu part', '?')}"
    return platform.processor() or platform.machine() or "unknown"


def _isa_flags(info: dict[str, str]) -> list[str]:
    """The instruction-set extensions of interest that the CPU reports, sorted."""
    reported = set((info.get("flags") or info.get("features") or "").split())
    return sorted({name for flag, name in ISA_FLAGS.items() if flag in reported})


def _package_version(module: str, dist: str) -> str | None:
    """The installed version of a package, or None if it cannot be imported."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception:
        return None


def _logical_cores() -> int:
    """Logical cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """CPU, cores, ISA flags, OS, Python and package versions, and the UTC time of the call."""
    info = _cpuinfo()
    versions = {module: _package_version(module, dist) for module, dist in PACKAGES.items()}
    return {
        "cpu": _cpu_model(info),
        "logical_cores": _logical_cores(),
        "isa_flags": _isa_flags(info),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {module: version for module, version in versions.items() if version is not None},
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def time_callable(
    fn: Callable[[], object], warmup: int = 3, runs: int = 10, min_seconds: float = 0.0
) -> dict[str, float | int]:
    """Latency of ``fn()`` in ms: ``warmup`` untimed calls, then at least ``runs`` timed calls
    and as many more as needed to spend ``min_seconds`` in timed calls."""
    if runs < 1:
        raise ValueError(f"runs must be ≥ 1, got {runs}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < runs or spent < min_seconds:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed * 1e3)
        spent += elapsed
    p50, p90 = np.percentile(times, [50, 90])
    return {
        "runs": len(times),
        "min_ms": min(times),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "mean_ms": statistics.fmean(times),
        "std_ms": statistics.pstdev(times),
    }


def interleaved(calls: dict[str, Callable[[], object]], rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """min and p50 ms of each callable over ``rounds`` interleaved rounds (the order reversed every other round, so
    that a slow spell of the host falls on all alike), each round one :func:`time_callable` of ``runs`` runs: the
    minimum of the rounds' minima and the median of their p50s."""
    mins: dict[str, list[float]] = {key: [] for key in calls}
    p50s: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)
    for r in range(rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            timing = time_callable(calls[key], warmup=2, runs=runs)
            mins[key].append(timing["min_ms"])
            p50s[key].append(timing["p50_ms"])
    return {k: {"min_ms": round(min(mins[k]), 4), "p50_ms": round(float(np.median(p50s[k])), 4)} for k in calls}


def _json_default(obj: Any) -> Any:
    """JSON form of numpy scalars and arrays (anything with tolist) and paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_result(name: str, rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> Path:
    """Write ``RESULTS_DIR/<name>.json`` atomically: benchmark name, machine info, meta and rows."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"invalid benchmark name {name!r}")
    payload = {"benchmark": name, "machine": machine_info(), "meta": meta, "rows": rows}
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    return atomic_write_text(Path(RESULTS_DIR) / f"{name}.json", text)


def load_results() -> list[dict[str, Any]]:
    """Every result file of ``RESULTS_DIR``, sorted by file name."""
    results = []
    for path in sorted(Path(RESULTS_DIR).glob("*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read benchmark result {path}: {err}") from err
    return results


def format_value(value: Any) -> str:
    """A table cell: floats to 3 significant digits (no exponent above 1), None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) < 1:
            return f"{value:.3g}"
        decimals = max(0, 2 - math.floor(math.log10(abs(value))))
        return f"{value:.{decimals}f}"
    if isinstance(value, (list, tuple)):
        return "×".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of ``rows``; columns are the union of their keys in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        return "_No rows._"
    lines = [
        "| " + " | ".join(format_value(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(format_value(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    """One line describing a machine: CPU, cores, ISA flags, OS, Python and package versions."""
    parts = [
        f"{machine.get('cpu', 'unknown CPU')} ({machine.get('machine', '?')})",
        f"{machine.get('logical_cores', '?')} logical cores",
    ]
    if machine.get("isa_flags"):
        parts.append(" ".join(machine["isa_flags"]))
    parts.append(str(machine.get("os", "unknown OS")))
    parts.append(f"Python {machine.get('python', '?')}")
    parts += [f"{pkg} {version}" for pkg, version in (machine.get("versions") or {}).items()]
    return " · ".join(parts)


# meta entries shown as tables of their own (a summary a reader wants before the rows), per benchmark
TABLES_OF_META = {"quant_peers": ("edgecnn_gaps", "pooled"), "quant_draws": ("gaps",), "quant_shift": ("gaps",)}


def _section(result: dict[str, Any]) -> list[str]:
    """The markdown section of one result file."""
    meta = result.get("meta") or {}
    machine = result.get("machine") or {}
    lines = [f"## {result.get('benchmark', 'unnamed')}", ""]
    if meta.get("description"):
        lines += [str(meta["description"]), ""]
    lines += [markdown_table(result.get("rows") or []), ""]
    figures = _meta_figures(meta)
    if figures:
        lines += ["Meta: " + " · ".join(figures) + ".", ""]
    for key in TABLES_OF_META.get(str(result.get("benchmark")), ()):
        if meta.get(key):
            lines += [f"`{key}`:", "", markdown_table(meta[key]), ""]
    lines += [f"Measured {machine.get('date_utc', 'at an unknown date')} (UTC).", ""]
    return lines


def _meta_figures(meta: dict[str, Any]) -> list[str]:
    """The meta's stand-alone figures: numbers, and small mappings of numbers (`p50_over_min`)."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    figures = []
    for key, value in meta.items():
        if number(value):
            figures.append(f"`{key}` {value:g}")
        elif isinstance(value, dict) and 0 < len(value) <= 4 and all(number(v) for v in value.values()):
            figures.append(f"`{key}` " + ", ".join(f"{k} {v:g}" for k, v in value.items()))
    return figures


def render_markdown() -> str:
    """The text of BENCHMARKS.md, rendered from every result file of ``RESULTS_DIR``."""
    results = load_results()
    lines = [
        "# Benchmarks",
        "",
        "Every figure below is measured by `make bench` (`benchmarks/run.py`), which runs the scripts of "
        "`benchmarks/`, stores their results in `benchmarks/results/*.json` and regenerates this file; "
        "do not edit it by hand. Timings depend on the machine and its load: the tests never assert them.",
        "",
    ]
    machines: dict[str, list[str]] = {}
    for result in results:
        machines.setdefault(machine_line(result.get("machine") or {}), []).append(str(result.get("benchmark")))
    if machines:
        lines += ["Measured on:", ""]
        lines += [f"- {line} — {', '.join(names)}" for line, names in machines.items()]
        lines.append("")
    else:
        lines += ["_No results yet: run `make bench`._", ""]
    for result in results:
        lines += _section(result)
    return "\n".join(lines).rstrip("\n") + "\n"
