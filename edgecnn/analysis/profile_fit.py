"""``edgecnn calibrate-profile``: fit a profile's latency coefficients to a RESULTS.json of measured probes.

RESULTS.json is what ``edgecnn bench --suite probes`` writes (and ``benchmarks/latency_fidelity.py`` on
this host): per probe its ``dtype``, op costs (``ops``) and measured ``p50_ms``. Each dtype is fitted on
its own; the result is the base profile with a new ``latency:`` block, written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from edgecnn.costs.latency_model import Coefficients, LatencyModel, Sample, channel_block, fit
from edgecnn.costs.op_costs import DTYPES, MAC_CLASSES, OpCost
from edgecnn.errors import UsageError, check_file, reading
from edgecnn.files import atomic_write_text, check_output_file

RESULTS_SCHEMA = "edgecnn-bench-results/1"
STATISTICS = ("p50_ms", "min_ms", "mean_ms")  # which measured figure a fit follows


def load_results(path: Path) -> dict[str, Any]:
    """Read and check a RESULTS.json; errors name the file and the problem."""
    try:
        with reading(path, "results file", "give the RESULTS.json of `edgecnn bench --suite probes`"):
            check_file(path, "results file")  # a FIFO would block the read for ever
            text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is no error
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not JSON: {error.msg} (line {error.lineno})") from None
    except ValueError:  # an integer of thousands of digits
        raise UsageError(
            f"{path} holds a number too long to read; give the RESULTS.json of `edgecnn bench --suite probes`"
        ) from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a RESULTS.json") from None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
        raise UsageError(f"{path}: not an edgecnn RESULTS.json (schema '{RESULTS_SCHEMA}')")
    for key in ("device", "runtime"):
        if not isinstance(data.get(key) or {}, dict):
            raise UsageError(f"{path}: {key}: expected a mapping, got {type(data[key]).__name__}")
    threads = data.get("threads") or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise UsageError(f"{path}: threads: expected a whole number from 1 to 256, got {threads!r}")
    rows = data.get("results") or []
    if not isinstance(rows, list):
        raise UsageError(f"{path}: results: expected a list of probe results, got {type(rows).__name__}")
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UsageError(f"{path}: results[{index}]: expected a mapping, got {type(row).__name__}")
        missing = [k for k in ("name", "dtype", "ops", "p50_ms") if row.get(k) is None]
        if missing:
            raise UsageError(f"{path}: results[{index}]: missing {', '.join(missing)} (was it a probe suite run?)")
        probe = f"{row['name']} ({row['dtype']})"
        if probe in seen:  # a copy would count as another network: a fit of fewer than it claims
            raise UsageError(f"{path}: results[{index}]: probe {probe} is there twice: give each probe once")
        seen.add(probe)
        rounds = row.get("rounds") or 1
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise UsageError(f"{path}: results[{index}]: rounds: expected a whole number ≥ 1, got {rounds!r}")
    return data


PLAUSIBLE_MS = (1e-6, 1e7)  # one nanosecond to about three hours: beyond these a figure is a typo or an overflow


def _latency(row: dict[str, Any], statistic: str) -> float:
    """A probe's measured ``statistic`` in ms: a finite positive number, or a UsageError naming the field."""
    value = row[statistic]
    try:
        ms = float(value)
    except (TypeError, ValueError):
        ms = float("nan")
    if isinstance(value, bool) or not math.isfinite(ms) or ms <= 0:
        raise UsageError(f"RESULTS.json: probe {row['name']}: {statistic} must be a positive number, got {value!r}")
    if not PLAUSIBLE_MS[0] <= ms <= PLAUSIBLE_MS[1]:
        raise UsageError(
            f"RESULTS.json: probe {row['name']}: {statistic} {value!r} is not a plausible latency "
            f"({PLAUSIBLE_MS[0]:g}–{PLAUSIBLE_MS[1]:g} ms)"
        )
    return ms


def samples(
    results: dict[str, Any], dtype: str, names: Sequence[str] | None = None, statistic: str = "p50_ms"
) -> list[Sample]:
    """The measured probes of one dtype (optionally only ``names``) as fit samples, at ``statistic``."""
    if statistic not in STATISTICS:
        raise UsageError(f"statistic must be one of {', '.join(STATISTICS)}, not '{statistic}'")
    chosen = [r for r in results["results"] if r["dtype"] == dtype and (names is None or r["name"] in names)]
    missing = [r["name"] for r in chosen if r.get(statistic) is None]
    if missing:
        raise UsageError(f"RESULTS.json: probe {missing[0]} has no {statistic}")
    fitted = []
    for row in chosen:
        try:
            costs = [OpCost.from_row(op) for op in row["ops"]]
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise UsageError(f"RESULTS.json: probe {row['name']}: its ops are malformed: {error}") from None
        fitted.append(Sample(costs, _latency(row, statistic), row["name"]))
    return fitted


def describe_source(results: dict[str, Any], path: Path) -> str:
    """One line naming the measurement a fit comes from."""
    runtime = results.get("runtime") or {}
    device = results.get("device") or {}
    rounds = max((int(r.get("rounds") or 1) for r in results["results"]), default=1)
    runs = f"probe runs in {rounds} rounds" if rounds > 1 else "probe runs"
    return (
        f"{Path(path).name}: {len(results['results'])} {runs}, {runtime.get('name', '?')} "
        f"{runtime.get('version', '')}, {results.get('threads', '?')} thread(s), on {device.get('cpu', '?')} "
        f"({results.get('host', 'local')}), fitted {date.today().isoformat()}"
    ).replace("  ", " ")


def calibrate(
    results: dict[str, Any], measured: dict[str, list[Sample]], base: LatencyModel, source: str
) -> LatencyModel:
    """A latency model fitted to the ``measured`` samples of ``results`` per dtype; unmeasured dtypes keep
    ``base``'s coefficients."""
    if not any(measured.values()):
        found = sorted({str(r["dtype"]) for r in results["results"]})
        if not found:  # was "its 0 results have dtype none"
            raise UsageError(
                "RESULTS.json holds no results: run `edgecnn bench --suite probes --profile P --out RESULTS.json` "
                "and give the file it writes"
            )
        raise UsageError(
            f"RESULTS.json has no probe results to fit: its {len(results['results'])} results have dtype "
            f"{', '.join(found)}, the latency model fits {' and '.join(DTYPES)}"
        )
    unshaped = next(
        (
            s.name
            for fitted in measured.values()
            for s in fitted
            for c in s.costs
            if c.op_class in MAC_CLASSES and not c.channels
        ),
        None,
    )
    if unshaped:
        raise UsageError(
            f"RESULTS.json has op rows without channel counts ({unshaped} …), written by an older edgecnn: "
            "re-run `edgecnn bench --suite probes` to fit this version's latency model"
        )
    coefficients: dict[str, Coefficients] = {}
    for dtype in DTYPES:
        previous = base.coefficients.get(dtype)
        if measured.get(dtype):
            block = channel_block(base.vector_bytes, dtype)
            coefficients[dtype] = fit(measured[dtype], previous, [{"source": source}], block=block)
        elif previous is not None:
            coefficients[dtype] = previous
    runtime = (results.get("runtime") or {}).get("name") or base.runtime
    runtime = "tflite" if "lite" in runtime else "onnxruntime"
    return LatencyModel(runtime, int(results.get("threads") or 1), coefficients, base.vector_bytes)


def _check_profile_out(out: Path, force: bool, inputs: list[Any]) -> Path:
    """A new profile's path: a .yaml (what --profile loads), checked writable and not an input."""
    check_output_file(out, force, inputs=inputs)
    if out.name.lower() in (".yaml", ".yml"):  # a hidden file of no suffix, and a profile of no name
        raise UsageError(
            f"--out {out} is only a suffix: give the profile a name, e.g. {out.with_name('my-device.yaml')}"
        )
    if out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"--out {out} must end in .yaml, or --profile cannot load it: name it {out.stem}.yaml")
    return out


def write_profile(base_path: Path, model: LatencyModel, out: Path, force: bool = False) -> Path:
    """The base profile's YAML with ``latency:`` replaced, written to ``out`` atomically (validated first)."""
    from edgecnn.config.profiles import profile_from_data

    out = _check_profile_out(Path(out), force, [base_path])
    data = yaml.safe_load(Path(base_path).read_text(encoding="utf-8"))
    data["name"] = out.stem
    data["latency"] = model.to_dict()
    profile_from_data(data, str(out))  # the new file must load
    text = f"# Written by edgecnn calibrate-profile from {Path(base_path).name}.\n" + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, width=110
    )
    return atomic_write_text(out, text)


def calibrate_file(
    results_path: Path, base: str, out: Path, force: bool = False, statistic: str = "p50_ms"
) -> dict[str, Any]:
    """``edgecnn calibrate-profile``: fit, report the in-sample error per dtype, write the new profile."""
    from edgecnn.config.profiles import load_profile

    profile = load_profile(base)
    _check_profile_out(Path(out), force, [results_path, profile.path or None])  # before the work, not after it
    results = load_results(Path(results_path))
    source = f"{describe_source(results, Path(results_path))}, {statistic.removesuffix('_ms')} latency"
    measured = {dtype: samples(results, dtype, statistic=statistic) for dtype in DTYPES}
    model = calibrate(results, measured, profile.latency, source)
    report: dict[str, Any] = {"base": profile.name, "statistic": statistic, "fit": {}}
    for dtype, fitted in measured.items():
        if not fitted:
            continue
        errors = [abs(model.predict(s.costs).total_ms / s.measured_ms - 1) * 100 for s in fitted]
        report["fit"][dtype] = {
            "samples": len(fitted),
            "mape_pct": round(sum(errors) / len(errors), 2),
            "within_10pct": round(sum(e <= 10 for e in errors) / len(errors), 3),
            "coefficients": model.coefficients[dtype].to_dict(),
        }
    report["out"] = str(write_profile(Path(profile.path), model, Path(out), force))
    return report
