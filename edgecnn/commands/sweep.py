"""``edgecnn sweep``: a grid of exports (and benches) as Ray tasks, with resume, retries and failure isolation.

The driver alone writes DIR/results.jsonl, one line per finished cell (files.append_line), under DIR's lock; the
workers write each cell's artifacts to DIR/cells/<key>/ through export()'s own atomic output. A rerun skips the
cells recorded already (except those whose worker was lost and failed benches); ``force`` reruns every cell.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn.commands.sweep_cell import one_line, run_bench, run_cell
from edgecnn.commands.sweep_spec import LOCAL, Cell, Spec, load_spec
from edgecnn.commands.sweep_summary import FAILED, cells, write_summary
from edgecnn.errors import EXIT_INTERNAL, EdgecnnError, UsageError
from edgecnn.files import (
    STOPPING,
    Terminated,
    append_line,
    atomic_write_text,
    current_run_temp_dir,
    ensure_writable_dir,
    json_text,
    output_lock,
    read_lines,
    remove_dead_outputs,
    run_temp_dir,
    stop_if_signalled,
    stopping_signals_received,
    stopping_signals_recorded,
)

RESULTS = "results.jsonl"
MAX_RETRIES = 2  # Ray re-runs a cell whose worker died this many times, then it is recorded as worker-lost
RERUN = ("worker-lost", "bench-error")  # statuses a rerun tries again: a lost worker or an unreachable device may
# recover (a cell that crashed on a bug of its own would crash again: --force re-runs it)
# Ray puts its sockets at TEMP/session_<date>_<time>_<µs>_<pid>/sockets/plasma_store, and a socket path has 107 bytes.
RAY_TEMP_ROOM = 107 - len("/session_2026-12-04_19-16-30_272960_1234567") - len("/sockets/plasma_store")


class SweepFailedError(EdgecnnError):
    """``--strict``: some cells failed; the exit code is the highest of theirs."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def import_ray() -> Any:
    """Ray, or one line saying how to install it (the `sweep` extra)."""
    try:
        import ray
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "ray":
            raise
        raise UsageError("edgecnn sweep runs on Ray, which is not installed: pip install 'edgecnn[sweep]'") from None
    return ray


def host_resource(host: str) -> str:
    """The Ray custom resource (capacity 1) that stands for one bench device: one bench per device at a time."""
    return "edgecnn_host_" + (LOCAL if host == LOCAL else hashlib.sha256(host.encode()).hexdigest()[:12])


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each cell key in results.jsonl (a line a crash cut is skipped)."""
    records = {}
    for line in read_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return records


def _check_dir(out: Path) -> None:
    """DIR must be new, empty, or a sweep's own (it holds results.jsonl), and writable (or, if new, its parent)."""
    if os.path.lexists(out) and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; give a new directory's path")
    if out.is_dir() and not (out / RESULTS).is_file() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not a sweep directory (no {RESULTS}) and not empty: give a new one")
    ensure_writable_dir(out)


def check_strict(records: list[dict[str, Any]], out: Path) -> None:
    """``--strict``: raise SweepFailedError, with the highest exit code of the failed cells, when any failed."""
    failed = [r for r in records if r["status"] in FAILED]
    if failed:
        code = max(r.get("exit_code") or 1 for r in failed)
        raise SweepFailedError(f"{len(failed)} of {cells(len(records))} failed (see {Path(out) / 'summary.md'})", code)


def sweep(
    spec: str | Path | dict[str, Any],
    out: str | Path,
    address: str | None = None,
    workers: int | None = None,
    force: bool = False,
    strict: bool = False,
    progress: Callable[[str], None] | None = None,
    counts: Callable[[dict[str, int]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run SPEC's grid into ``out`` on Ray (local with ``workers`` CPUs, or the cluster at ``address``); the table.

    Each returned record is one cell: key, label, status (ok, error, drift, partial, crashed, worker-lost,
    bench-error), exit code, message, predicted latency, size, int8 figures, bench figures, wall time. ``strict`` raises
    :class:`SweepFailedError` when a cell failed (after the summary is written). ``progress`` gets a line per event,
    ``counts`` the grid's state whenever it changes (total, done, failed, exporting, queued, benching, waiting on a
    device): the CLI's bar.
    """
    ray = import_ray()
    say = progress or (lambda message: None)
    loaded = load_spec(spec)
    out = Path(out)
    _check_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {out}: {error.strerror.lower()}") from None
    with output_lock(out):
        results = out / RESULTS
        if not results.exists():
            atomic_write_text(results, "")
        known = read_records(results)
        todo = [c for c in loaded.cells if force or c.key not in known or known[c.key]["status"] in RERUN]
        say(f"{cells(len(loaded.cells))}: {len(loaded.cells) - len(todo)} recorded already, {len(todo)} to run")
        if todo:
            with contextlib.ExitStack() as stack:
                temp = current_run_temp_dir() or stack.enter_context(run_temp_dir())
                _run(ray, loaded, todo, out, address, workers, force, known, (say, counts), temp)
        records = [known[c.key] for c in loaded.cells if c.key in known]
        write_summary(records, out)
    failed = sum(r["status"] in FAILED for r in records)
    say(f"{cells(len(records))}: {len(records) - failed} ok, {failed} failed; summary in {out / 'summary.md'}")
    if strict:
        check_strict(records, out)
    return records


def _start(ray: Any, address: str | None, workers: int | None, spec: Spec, temp: Path) -> int:
    """Join the cluster at ``address`` or start Ray here (quiet, its files in the run's temp dir); the CPUs to use."""
    hosts = [h["host"] for h in spec.hosts] or ([LOCAL] if spec.bench else [])
    resources = {host_resource(h): 1 for h in hosts}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address:
        try:
            with _stopped_as_ours(ray, defer_ctrl_c=False):  # no process started here: Ctrl-C may cut a hung join
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            reason = one_line(str(error), 300)
            raise UsageError(
                f"cannot join the Ray cluster at {address}: {reason} (a cluster with token authentication also "
                "needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            ) from None
        missing = [h for h in hosts if host_resource(h) not in ray.cluster_resources()]
        if missing:
            wanted = json.dumps({host_resource(h): 1 for h in missing})
            raise UsageError(
                f"the Ray cluster at {address} has no device resource for {', '.join(missing)}: start the node that "
                f"reaches them with ray start --resources='{wanted}'"
            )
    else:
        cpus = workers or os.cpu_count() or 1
        with _stopped_as_ours(ray, defer_ctrl_c=True):
            ray.init(num_cpus=cpus, resources=resources, _temp_dir=str(_ray_temp(temp)), **quiet)
    for number, handler in handlers.items():  # Ray's own handlers would skip our clean-up and exit codes
        signal.signal(number, handler)
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextlib.contextmanager
def _stopped_as_ours(ray: Any, defer_ctrl_c: bool) -> Iterator[None]:
    """While Ray starts, a SIGTERM ends it as edgecnn's termination (exit 143, 'edgecnn: terminated', Ray shut down
    and the run's files removed), and — with ``defer_ctrl_c``, for a Ray started here — Ctrl-C as an abort (130).
    Ray would install its own SIGTERM handler (``sys.exit(15)``), and a raise landing while it forks its processes
    is swallowed there ('Exception ignored in _releaseLock', a traceback, the sweep going on as if nothing
    happened); a KeyboardInterrupt in the middle of a local ``ray.init`` left Ray's agents running, unknown to
    ``ray.shutdown``. So Ray is kept from installing its handler, the signals are only recorded meanwhile, and a
    recorded one ends the start once ``ray.init`` returns or fails (a second Ctrl-C is not deferred)."""
    before = len(stopping_signals_received())
    replays: list[Callable[[], None]] = []
    deferring = _ctrl_c_deferred(replays) if defer_ctrl_c else contextlib.nullcontext()
    try:
        with _ray_start_patched(ray), deferring, stopping_signals_recorded():
            yield
    except SystemExit as stop:
        if stop.code in STOPPING:
            raise Terminated(stop.code) from None
        raise
    except BaseException as error:
        _stop_if_signalled(before, replays, error)
        raise
    _stop_if_signalled(before, replays)


def _stop_if_signalled(before: int, replays: list[Callable[[], None]], cause: BaseException | None = None) -> None:
    """Raise the stopping signal recorded since ``before`` (as Terminated), else replay a deferred Ctrl-C."""
    received = stopping_signals_received()[before:]
    if received:
        raise Terminated(received[0]) from cause
    for replay in replays:
        replay()


@contextlib.contextmanager
def _ctrl_c_deferred(replays: list[Callable[[], None]]) -> Iterator[None]:
    """While inside, the first SIGINT is only recorded — as a call of its handler, appended to ``replays`` — and its
    handler put back, so that a second one acts at once; an ignored or default SIGINT is left as it is."""
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        yield
        return

    def record(signum: int, frame: Any) -> None:
        replays.append(lambda: previous(signum, None))
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, record)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is record:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _ray_start_patched(ray: Any) -> Iterator[None]:
    """Ray's start, made to leave signals to edgecnn: no SIGTERM handler of its own, no stack dump on SIGTERM, and
    each of its processes in a process group of its own."""
    private = getattr(ray, "_private", None)
    utils = getattr(private, "utils", None)
    own = getattr(utils, "set_sigterm_handler", None)
    if own is not None:
        utils.set_sigterm_handler = lambda handler: None
    # Ray's GCS and raylet would share edgecnn's process group: a signal to the group (a CI job cancelled, a
    # supervisor's stop, `kill -TERM -PGID`) killed them mid-start and left ray.init waiting 30–60 s for a GCS gone.
    # Only where the kernel ends them with their parent (Linux): elsewhere Ray's reaper kills its own group.
    services = getattr(private, "services", None)
    popen = getattr(services, "ConsolePopen", None)
    shares_fate = getattr(utils, "detect_fate_sharing_support", lambda: False)
    if popen is not None and os.name == "posix" and shares_fate():
        services.ConsolePopen = _own_group(popen)
    else:
        popen = None
    # the driver's core worker would install a crash handler that also dumps a stack for SIGTERM (until edgecnn's
    # handler is set again after the start); Ray's worker processes keep theirs
    constants = getattr(private, "ray_constants", None)
    dumps = getattr(constants, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", None)
    if dumps is not None:
        constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    try:
        yield
    finally:
        if own is not None:
            utils.set_sigterm_handler = own
        if popen is not None:
            services.ConsolePopen = popen
        if dumps is not None:
            constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = dumps


def _own_group(popen: type[subprocess.Popen]) -> type[subprocess.Popen]:
    """``popen`` whose children each start in a process group of their own (in the same session): edgecnn, their
    parent, still gets its group's signals and shuts them down (``ray.shutdown`` signals each one by its pid; the
    kernel ends them with their parent, Ray's fate sharing)."""

    class OwnGroup(popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            then = kwargs.get("preexec_fn")

            def preexec() -> None:
                os.setpgid(0, 0)
                if then is not None:
                    then()

            kwargs["preexec_fn"] = preexec
            super().__init__(*args, **kwargs)

    return OwnGroup


def _ray_temp(temp: Path) -> Path:
    """Ray's temporary directory: the run's own when its sockets' paths fit there, else a short one in /tmp (that
    one removed with the run's)."""
    if len(str(temp)) <= RAY_TEMP_ROOM:
        return temp
    short = Path(tempfile.mkdtemp(prefix="edgecnn-ray.", dir="/tmp"))
    (temp / "ray-temp").symlink_to(short)  # for the record; removed below with the run
    _SHORT_TEMPS.append(short)
    return short


_SHORT_TEMPS: list[Path] = []


def _run(
    ray: Any,
    spec: Spec,
    todo: list[Cell],
    out: Path,
    address: str | None,
    workers: int | None,
    force: bool,
    known: dict[str, dict[str, Any]],
    report: tuple[Callable[[str], None], Callable[[dict[str, int]], None] | None],
    temp: Path,
) -> None:
    """Run ``todo`` as Ray tasks, at most one export per CPU in flight, and a bench per device at a time."""
    ours = not ray.is_initialized()  # a caller's own Ray session is used as it is, and left running
    scheduler = None
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, *STOPPING)}
    try:
        slots = _start(ray, address, workers, spec, temp) if ours else max(1, int(ray.cluster_resources()["CPU"]))
        # a local bench takes every CPU of a Ray started here (timed after the exports, not among them); a cluster's
        # nodes differ, so there it takes one
        bench_cpus = slots if ours and not address else 1
        scheduler = Scheduler(ray, spec, out, slots, known, report, bench_cpus, force)
        scheduler.run(todo)
    finally:
        if ours:
            ray.shutdown()
            if not address and scheduler is not None:  # this machine's workers are gone: so are their partials
                scheduler.remove_cut_short()
            # its core worker leaves these signals at the system's default underneath Python's handlers: a SIGTERM
            # while the summary is written would kill the run unsaid, its temporary directory left behind
            for number, handler in handlers.items():
                signal.signal(number, handler)
        while _SHORT_TEMPS:
            shutil.rmtree(_SHORT_TEMPS.pop(), ignore_errors=True)


def _lost(ray: Any, error: Exception) -> str:
    """One line for a task that returned no result: its worker died (after Ray's retries), or the task raised."""
    if isinstance(error, ray.exceptions.RayTaskError) and not isinstance(error, ray.exceptions.WorkerCrashedError):
        cause = getattr(error, "cause", None) or error
        text = one_line(str(cause), 300)
        return f"internal error: {type(cause).__name__}: {text}"
    text = one_line(str(error), 300)
    return f"worker lost {MAX_RETRIES + 1} times: {type(error).__name__}: {text}"


class Scheduler:
    """Submits exports (and the benches after them), records each finished cell, says progress."""

    def __init__(
        self,
        ray: Any,
        spec: Spec,
        out: Path,
        slots: int,
        known: dict[str, dict[str, Any]],
        report: tuple[Callable[[str], None], Callable[[dict[str, int]], None] | None],
        bench_cpus: int = 1,
        force: bool = False,
    ):
        self.ray, self.spec, self.out, self.slots, self.known = ray, spec, out, slots, known
        self.say, self.counts_to = report
        self.shown: dict[str, int] = {}
        self.bench_cpus, self.force = bench_cpus, force
        self.export = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(run_cell)
        self.bench = ray.remote(max_retries=MAX_RETRIES)(run_bench)
        self.hosts = spec.hosts or [{"host": LOCAL}]
        self.load = collections.Counter({h["host"]: 0 for h in self.hosts})
        self.inflight: dict[Any, tuple[Cell, str, float, dict[str, Any]]] = {}
        self.counts = collections.Counter()
        self.total = 0

    def run(self, todo: list[Cell]) -> None:
        queue = collections.deque(todo)
        self.total = len(todo)
        # An interrupt leaves the tasks in flight unrecorded; ray.shutdown() (or, on a cluster, the driver's exit)
        # ends them. No ray.cancel: cancelling a task as it completes trips a check in Ray 2.60's core worker.
        while queue or self.inflight:
            while queue and self._exporting() < self.slots:
                cell = queue.popleft()
                if self._rebench(cell):
                    continue
                ref = self.export.remote(
                    cell.model, cell.profile, cell.scaling, cell.options, self._dir(cell), self.spec.search
                )
                self.inflight[ref] = (cell, "export", time.perf_counter(), {})
            self._show(len(queue))
            ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
            stop_if_signalled()  # a stop a library swallowed while we waited: no further cell is recorded or started
            for ref in ready:
                self._finished(ref)
        self._show(0)

    def _exporting(self) -> int:
        return sum(phase == "export" for _, phase, _, _ in self.inflight.values())

    def _bench_paths(self, record: dict[str, Any]) -> list[str | None]:
        """The paths of the artifacts the spec's bench times, from a cell's record (None: not made)."""
        return [record.get("artifacts", {}).get(a) for a in (self.spec.bench or {}).get("artifacts", [])]

    def _show(self, queued: int) -> None:
        """The grid's counts to ``counts_to``, when they changed: a device runs one bench, the others wait for it."""
        if self.counts_to is None:
            return
        benches = [h for h, n in self.load.items() if n]
        state = {
            "total": self.total,
            "done": self.counts["done"],
            "failed": self.counts["failed"],
            "exporting": self._exporting(),
            "queued": queued,
            "benching": len(benches),
            "waiting": sum(self.load[h] - 1 for h in benches),
        }
        if state != self.shown:
            self.shown = state
            self.counts_to(dict(state))

    def _bench(self, cell: Cell, record: dict[str, Any], paths: list[str], started: float) -> None:
        """Time a cell's artifacts on the least loaded device (Ray queues it there while the device is busy)."""
        host = min(self.hosts, key=lambda h: self.load[h["host"]])
        self.load[host["host"]] += 1
        record["bench_host"] = host["host"]
        options = {"resources": {host_resource(host["host"]): 1}}
        options["num_cpus"] = self.bench_cpus if host["host"] == LOCAL else 0
        where = None if host["host"] == LOCAL else host
        self.inflight[self.bench.options(**options).remote(paths, where, self.spec.bench)] = (
            cell,
            "bench",
            started,
            record,
        )

    def _rebench(self, cell: Cell) -> bool:
        """A cell whose export is recorded ok but whose bench failed (an unreachable device) is benched again, its
        artifacts kept: True when it was."""
        record = self.known.get(cell.key)
        if self.force or record is None or record["status"] != "bench-error" or not self.spec.bench:
            return False
        paths = self._bench_paths(record)
        if not paths or not all(p and Path(p).is_file() for p in paths):
            return False
        kept = {k: v for k, v in record.items() if k not in ("bench", "bench_p50_ms", "bench_host", "wall_s")}
        self._bench(cell, kept | {"status": "ok", "exit_code": 0, "message": ""}, paths, time.perf_counter())
        return True

    def remove_cut_short(self) -> None:
        """After a stop, once this machine's Ray is shut down: the partial outputs and locks of the exports in flight
        (their workers are dead; a rerun runs those cells again)."""
        for cell, phase, _, _ in self.inflight.values():
            if phase == "export":
                remove_dead_outputs(Path(self._dir(cell)))

    def _dir(self, cell: Cell) -> str:
        return str((self.out / "cells" / cell.key).resolve())

    def _finished(self, ref: Any) -> None:
        cell, phase, started, record = self.inflight.pop(ref)
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            raised = isinstance(error, self.ray.exceptions.RayTaskError) and not isinstance(
                error, self.ray.exceptions.WorkerCrashedError
            )
            value = {
                "status": ("crashed" if raised else "worker-lost") if phase == "export" else "bench-error",
                "exit_code": EXIT_INTERNAL if phase == "export" else 1,
                "message": _lost(self.ray, error),
            }
            if phase == "bench":
                value = {"error": value["message"]}
        if phase == "export":
            record = self._base(cell) | value
            paths = [p for p in self._bench_paths(record) if p]
            if self.spec.bench and paths:
                self._bench(cell, record, paths, started)
                return
        else:
            self.load[record["bench_host"]] -= 1
            record["bench"] = value
            record["bench_p50_ms"] = value.get("p50_ms")
            if "error" in value and record["status"] == "ok":
                record.update(status="bench-error", exit_code=value.get("exit_code", 1), message=value["error"])
        record["wall_s"] = round(time.perf_counter() - started, 2)
        record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        append_line(self.out / RESULTS, json_text(record, default=str))
        self.known[cell.key] = record
        self._say(record)

    def _base(self, cell: Cell) -> dict[str, Any]:
        return {
            "key": cell.key,
            "label": cell.label,
            "model": cell.model,
            "profile": cell.profile,
            "scaling": cell.scaling,
            "axes": cell.axes,
            "options": cell.options,
            "cell_dir": f"cells/{cell.key}",
            "edgecnn_version": __version__,
        }

    def _say(self, record: dict[str, Any]) -> None:
        self.counts["failed" if record["status"] in FAILED else "done"] += 1
        finished = self.counts["done"] + self.counts["failed"]
        benching = sum(phase == "bench" for _, phase, _, _ in self.inflight.values())
        running = len(self.inflight) - benching
        figures = []
        if record.get("predicted_ms") is not None:
            figures.append(f"{record['predicted_ms']:.3g} ms predicted")
        if record.get("bench_p50_ms") is not None:
            figures.append(f"{record['bench_p50_ms']:.3g} ms on {record['bench_host']}")
        if record.get("size_mb") is not None:
            figures.append(f"{record['size_mb']:.3g} MB")
        if record.get("int8_agreement") is not None:
            figures.append(f"agreement {record['int8_agreement']:.3f}")
        detail = ", ".join(figures) if record["status"] == "ok" else f"exit {record['exit_code']}: {record['message']}"
        self.say(
            f"[{finished}/{self.total}] {record['status']:<7} {record['label']} — {detail} ({record['wall_s']:.1f} s)"
            f"  done {self.counts['done']} · failed {self.counts['failed']} · running {running}"
            + (f" · benching {benching}" if self.spec.bench else "")
        )
