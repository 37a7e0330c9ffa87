"""``edgecnn bench``: time artifacts with the standalone harness, here or on a device over SSH.

Locally the harness runs in a subprocess, one per artifact, so a runtime that crashes or a corrupt model
is an error message, never a crash of edgecnn. Remotely it is copied with the artifacts into a fresh
temporary directory on the device, run there with the device's Python, and the directory is removed.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from edgecnn.applies import Rules, check_applies
from edgecnn.bench.child import run_child
from edgecnn.bench.harness import DEFAULT_WARMUP
from edgecnn.bench.remote import Session, SshTarget, check_seconds
from edgecnn.errors import BenchError, UsageError, check_file
from edgecnn.files import atomic_write_text, json_text, terminate_as_interrupt
from edgecnn.formats import known_suffixes, require_format

HARNESS = Path(__file__).resolve().with_name("harness.py")
RESULTS_SCHEMA = "edgecnn-bench-results/1"
TIMING_KEYS = ("runs", "min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "load_ms", "peak_rss_mb")
ROUND_KEYS = ("rounds", "round_p50_ms")  # present when the suite ran in several rounds
SPLIT_KEYS = ("xnnpack",)  # a .tflite's XNNPACK split on the device (harness.xnnpack_delegation)

# The bench options that apply to one path only (edgecnn/applies.py): given without it, an error.
RULES = Rules(
    "bench",
    {
        **dict.fromkeys(("port", "identity", "known_hosts", "connect_timeout"), ("host",)),
        "profile": ("suite",),
        "inputs": ("artifacts",),
        "no_xnnpack": ("tflite",),
        "force": ("out",),
    },
    flags={"inputs": "--input"},
)


def check_options(
    given: Iterable[str],
    artifacts: Sequence[str | Path],
    host: str | None,
    suite: str | None,
    out: str | Path | None = None,
) -> None:
    """The options ``given`` must apply to this run: SSH ones to a --host, --profile to --suite, --input to
    ARTIFACTs, --no-xnnpack to a .tflite, --force to --out."""
    tflite = suite is not None or any(Path(a).suffix.lower() == ".tflite" for a in artifacts)
    paths = {
        "host": host is not None,
        "suite": suite is not None,
        "artifacts": suite is None,
        "tflite": tflite,
        "out": out is not None,
    }
    check_applies(RULES, given, {name for name, taken in paths.items() if taken})


def _check_artifacts(artifacts: Iterable[str | Path]) -> list[Path]:
    if not artifacts:
        raise UsageError(f"no artifact to benchmark: give one or more files ({known_suffixes()})")
    for artifact in artifacts:  # as given: Path("") would be the current directory
        check_file(artifact, "artifact")
        require_format(artifact)
    return [Path(a) for a in artifacts]


MAX_THREADS = 256  # more threads than any edge device has cores: a typo, and each one costs a stack
MAX_RUNS = 1_000_000  # timed (or warm-up) runs: beyond, a typo that would run for hours; --budget-s bounds time
MAX_ROUNDS = 1_000


def _harness_options(threads: int, runs: int | None, warmup: int, budget_s: float | None, xnnpack: bool) -> list[str]:
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (one per core of the device), not {threads}")
    if runs is not None and not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"--runs must be between 1 and {MAX_RUNS:,}, not {runs} (--budget-s bounds the time instead)")
    if not 0 <= warmup <= MAX_RUNS:
        raise UsageError(f"--warmup must be between 0 and {MAX_RUNS:,}, not {warmup}")
    if budget_s is not None and not budget_s > 0:
        raise UsageError(f"--budget-s must be > 0, not {budget_s:g}")
    options = ["--compact", "--threads", str(threads), "--warmup", str(warmup)]
    options += ["--runs", str(runs)] if runs is not None else []
    options += ["--budget-s", repr(float(budget_s))] if budget_s is not None else []
    options += [] if xnnpack else ["--no-xnnpack"]
    return options


def check_timing(
    threads: int = 1,
    runs: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float | None = None,
    timeout: float = 600.0,
    rounds: int = 1,
) -> None:
    """The timing settings of a bench, each in its range (a sweep's `bench:` checks them on load, before any
    export)."""
    _harness_options(threads, runs, warmup, budget_s, True)
    if not 1 <= rounds <= MAX_ROUNDS:
        raise UsageError(f"--rounds must be between 1 and {MAX_ROUNDS:,}, not {rounds}")
    check_seconds("--timeout", timeout)
    if budget_s is not None:  # inf or 1e300: timed until --timeout ended the run, 10 minutes later
        check_seconds("--budget-s", budget_s)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class HarnessBug(RuntimeError):
    """The harness hit an error it does not foresee: a bug of edgecnn's, reported as one (exit 70)."""


def interpret(
    returncode: int, stdout: str, stderr: str, name: str, where: str, python: str, renames: dict[str, str]
) -> dict[str, Any]:
    """The harness's result, or a one-line BenchError saying what went wrong where (``where``: '' or 'host: ')."""

    def rename(text: str) -> str:
        for remote_name, local_name in renames.items():
            text = text.replace(remote_name, local_name)
        return text

    payload: Any = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    if isinstance(payload, dict) and payload.get("bug"):
        raise HarnessBug(f"{where}the harness failed on {name}: {rename(str(payload['error']))}")
    if isinstance(payload, dict) and "error" in payload:
        raise BenchError(f"{where}{rename(str(payload['error']))}")
    if returncode == 0 and isinstance(payload, dict):
        return payload
    last = next((line.strip() for line in reversed(stderr.strip().splitlines()) if line.strip()), "no message")
    if returncode == 127 and ("not found" in stderr or "no such file" in stderr.lower()):
        _no_python(where, python)
    if returncode < 0 or returncode > 128:  # killed by a signal (a remote shell reports 128 + signal)
        number = -returncode if returncode < 0 else returncode - 128
        hint = " (out of memory?)" if number == signal.SIGKILL else ""
        raise BenchError(f"{where}the runtime crashed ({_signal_name(number)}{hint}) while benchmarking {name}")
    if "SyntaxError" in stderr:
        raise BenchError(f"{where}{python} cannot run the harness (it needs Python >= 3.8): {last}")
    if returncode == 0:  # it ran and said nothing a harness says: not a Python
        raise BenchError(f"{where}'{python}' gave no harness result: is it a Python? pass --python PATH of python3")
    raise BenchError(f"{where}the harness failed on {name} (exit {returncode}): {rename(last)}")


def _no_python(where: str, python: str) -> NoReturn:
    raise BenchError(f"{where}no Python at '{python}'; install python3 (>= 3.8) or pass --python PATH")


def _bench_local(
    paths: list[Path], options: list[str], inputs: Path | None, python: str | None, timeout: float, progress: Any
) -> list[dict[str, Any]]:
    python = python or sys.executable
    extra = ["--input", str(inputs)] if inputs else []
    results = []
    for i, path in enumerate(paths):
        progress(f"[{i + 1}/{len(paths)}] {path.name}")
        argv = [python, str(HARNESS), str(path), *options, *extra]
        try:
            done = run_child(argv, timeout)
        except FileNotFoundError:
            _no_python("", python)
        except OSError as error:  # a directory, a file without execute permission
            raise BenchError(
                f"cannot run '{python}': {error.strerror.lower()}; pass --python PATH of python3"
            ) from None
        except subprocess.TimeoutExpired:
            raise BenchError(f"benchmarking {path.name} did not finish within {timeout:g} s") from None
        result = interpret(done.returncode, done.stdout, done.stderr, path.name, "", python, {})
        result.update({"artifact": path.name, "path": str(path), "host": "local"})
        results.append(result)
    return results


def _bench_remote(
    paths: list[Path],
    options: list[str],
    inputs: Path | None,
    python: str,
    target: SshTarget,
    timeout: float,
    progress: Any,
) -> list[dict[str, Any]]:
    # Files go to the device under fixed safe names (a0.onnx …): no local file name reaches the remote shell.
    remote_names = [f"a{i}{path.suffix.lower()}" for i, path in enumerate(paths)]
    renames = {name: path.name for name, path in zip(remote_names, paths, strict=True)}
    results = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as staging:
        stage = Path(staging)
        (stage / "harness.py").symlink_to(HARNESS)
        for name, path in zip(remote_names, paths, strict=True):
            (stage / name).symlink_to(path.resolve())
        files = [stage / "harness.py", *(stage / name for name in remote_names)]
        if inputs:
            (stage / "input.npy").symlink_to(inputs.resolve())
            files.append(stage / "input.npy")
        progress(f"connecting to {target.where}")
        with Session(target, run_timeout=timeout) as session:
            session.copy(files)
            extra = ["--input", session.path("input.npy")] if inputs else []
            for i, (name, path) in enumerate(zip(remote_names, paths, strict=True)):
                progress(f"[{i + 1}/{len(paths)}] {path.name} on {target.where}")
                remote = [python, session.path("harness.py"), session.path(name), *options, *extra]
                done = session.ssh(remote, what=f"benchmarking {path.name}")
                result = interpret(
                    done.returncode, done.stdout, done.stderr, path.name, f"{target.where}: ", python, renames
                )
                result.update({"artifact": path.name, "path": str(path), "host": target.host})
                results.append(result)
            remote_dir = session.remote_dir
    for result in results:
        result["remote_dir"] = remote_dir
    return results


@terminate_as_interrupt()
def bench(
    artifacts: Sequence[str | Path],
    host: str | None = None,
    threads: int = 1,
    runs: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float | None = None,
    inputs: str | Path | None = None,
    xnnpack: bool = True,
    python: str | None = None,
    port: int | None = None,
    identity: str | Path | None = None,
    known_hosts: str | Path | None = None,
    connect_timeout: float = 10.0,
    timeout: float = 600.0,
    rounds: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time each artifact with the harness, locally or on ``host`` over SSH; one result dict per artifact.

    ``runs`` timed runs (100 by default) or ``budget_s`` seconds, whichever first, after ``warmup`` runs;
    ``inputs`` is a ``.npy`` for the first input (random otherwise); ``python`` the interpreter to run the
    harness with (this one locally, ``python3`` on a device); ``timeout`` bounds each harness run.
    ``rounds`` > 1 times the whole list that many times, round-robin, and merges each artifact's rounds
    (:func:`merge_rounds`): a slow phase of the machine then hits one round, not one artifact's only run.
    Failures raise :class:`~edgecnn.errors.BenchError` (or UsageError) with a one-line message.
    """
    paths = _check_artifacts(artifacts)
    options = _harness_options(threads, runs, warmup, budget_s, xnnpack)
    check_timing(threads, runs, warmup, budget_s, timeout, rounds)
    input_path = Path(inputs) if inputs is not None else None
    if input_path is not None and (input_path.suffix != ".npy" or not input_path.is_file()):
        raise UsageError(f"--input must be an existing .npy file, not {inputs}")
    report = progress or (lambda message: None)
    target = None
    ssh = (("port", port), ("identity", identity), ("known_hosts", known_hosts))
    check_options([name for name, value in ssh if value is not None], paths, host, None)
    if host is not None:
        target = SshTarget(
            host,
            port=port,
            identity=Path(identity) if identity else None,
            known_hosts=Path(known_hosts) if known_hosts else None,
            connect_timeout=connect_timeout,
        )

    def tagged(prefix: str) -> Callable[[str], None]:
        return lambda message: report(prefix + message)

    per_round = []
    for number in range(rounds):
        tagged_report = tagged(f"round {number + 1}/{rounds} " if rounds > 1 else "")
        if target is None:
            per_round.append(_bench_local(paths, options, input_path, python, timeout, tagged_report))
        else:
            remote_python = python or "python3"
            per_round.append(_bench_remote(paths, options, input_path, remote_python, target, timeout, tagged_report))
    if rounds == 1:
        return per_round[0]
    return [merge_rounds(list(results)) for results in zip(*per_round, strict=True)]


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One artifact's results from several rounds as one: the min of the minima, the median of the rounds'
    p50/p90/p99/mean/std/load time, the sum of the runs, the largest peak RSS; ``round_p50_ms`` keeps each
    round's p50."""
    import statistics

    merged = dict(results[0])
    merged["runs"] = sum(r["runs"] for r in results)
    if all("total_s" in r for r in results):
        merged["total_s"] = round(sum(r["total_s"] for r in results), 4)
    merged["min_ms"] = min(r["min_ms"] for r in results)
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "load_ms"):
        merged[key] = round(statistics.median(r[key] for r in results), 4)
    peaks = [r["peak_rss_mb"] for r in results if r.get("peak_rss_mb") is not None]
    merged["peak_rss_mb"] = max(peaks) if peaks else None
    merged["rounds"] = len(results)
    merged["round_p50_ms"] = [r["p50_ms"] for r in results]
    return merged


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write ``payload`` as JSON atomically (see :func:`edgecnn.files.atomic_write_text`)."""
    text = json_text(payload, default=_json_default, indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(Path(path), text)


def run_suite(
    probes: list[dict[str, Any]], out: str | Path, profile: str, host: str | None = None, **bench_options: Any
) -> dict[str, Any]:
    """Bench every probe's ``artifact`` in one session and write RESULTS.json (``edgecnn calibrate-profile``'s input).

    Each result row is the probe's metadata (its ``artifact`` as a base name) plus the harness's timing keys.
    """
    if not probes:
        raise UsageError("the probe suite is empty: nothing to benchmark")
    missing = [p.get("name", "?") for p in probes if "artifact" not in p]
    if missing:
        raise UsageError(f"probes without an artifact: {', '.join(map(str, missing))}")
    results = bench([p["artifact"] for p in probes], host=host, **bench_options)
    rows = []
    for probe, result in zip(probes, results, strict=True):
        row = {key: value for key, value in probe.items() if key != "artifact"}
        row["artifact"] = Path(probe["artifact"]).name
        row.update({key: result.get(key) for key in TIMING_KEYS})
        row.update({key: result[key] for key in (*ROUND_KEYS, *SPLIT_KEYS) if result.get(key)})
        rows.append(row)
    first = results[0]
    payload = {
        "schema": RESULTS_SCHEMA,
        "profile": profile,
        "host": "local" if host is None else host,
        "threads": first.get("threads"),
        "device": first.get("device"),
        "runtime": first.get("runtime"),
        "delegate": first.get("delegate"),
        "results": rows,
    }
    write_json_atomic(Path(out), payload)
    return payload
