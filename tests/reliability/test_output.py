"""Output under failure: signals, a killed run, two runs at once, planted links, --force, unwritable paths.

Every case runs the real ``edgecnn`` in a subprocess and checks the exit code, the one line on stderr, that
nothing is half-written beside OUT or in the temporary directory, and that nothing that was there is lost.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.conftest import conv_relu_onnx
from tests.reliability.conftest import REPO, default_signals

TINY = ["mobilenet_v1", "--width", "0.25", "--resolution", "32", "--format", "onnx", "--calib-size", "8"]
TINY += ["--holdout", "4"]
FIRST_STAGE = "✓ export"
UNWRITABLE = Path("/sys/edgecnn-out")  # sysfs: read-only even for root


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """PYTHONPATH to this checkout, and a private TMPDIR to check for leftovers in."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmpdir), **extra}


def edgecnn(tmp_path: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "edgecnn", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=600, cwd=cwd or tmp_path, env=_env(tmp_path, **env)
    )


def python(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """``python -c script`` in ``tmp_path`` with this checkout and a private TMPDIR."""
    argv = [sys.executable, "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_env(tmp_path))


def start(tmp_path: Path, *args: str, group: bool = False) -> subprocess.Popen:
    """``edgecnn *args`` in a subprocess; with ``group``, the leader of a process group of its own (as a shell's
    job is), for signals to the whole group."""
    argv = [sys.executable, "-m", "edgecnn", *args]
    return subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(tmp_path), preexec_fn=default_signals,
        start_new_session=group,
    )  # fmt: skip


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command's name (state, parent, …); [] when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _in_session(session: int) -> set[int]:
    """The running processes (not zombies) of ``session``: a process started in it stays there, orphaned or not,
    unless it starts a session of its own."""
    every = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return {pid for pid in every if (fields := _stat(pid))[:1] != ["Z"] and fields[3:4] == [str(session)]}


def wait_for(proc: subprocess.Popen, text: str) -> str:
    """Read ``proc``'s stderr until a line contains ``text``; what was read."""
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"exited ({proc.wait()}) before '{text}':\n{seen}"
        seen += line
    return seen


def assert_one_line(stderr: str, prefix: str, message: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and message in lines[0], stderr
    assert "Traceback" not in stderr


def assert_failed(result: subprocess.CompletedProcess, message: str, code: int = 1) -> None:
    assert result.returncode == code, result.stderr
    assert_one_line(result.stderr, "edgecnn: error:", message)


def assert_no_leftovers(tmp_path: Path, *expected: str) -> None:
    """Beside OUT only ``expected``, and nothing of edgecnn's in the private TMPDIR."""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "tmp") == sorted(expected)
    assert list((tmp_path / "tmp").glob("edgecnn*")) == []


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the private TMPDIR's (libraries keep their own files there)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != "tmp")
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


# --- signals


SIGNALS = {
    "SIGINT after the first stage": (signal.SIGINT, FIRST_STAGE, 130, "edgecnn: "),  # main() words it
    "SIGTERM after the first stage": (signal.SIGTERM, FIRST_STAGE, 143, "edgecnn: terminated"),
    "SIGTERM while quantizing": (signal.SIGTERM, "✓ simplify", 143, "edgecnn: terminated"),
    "SIGHUP after the first stage": (signal.SIGHUP, FIRST_STAGE, 129, "edgecnn: hangup"),  # a closed terminal
}


@pytest.mark.parametrize("case", SIGNALS, ids=list(SIGNALS))
def test_signal_leaves_nothing(tmp_path, case):
    signum, after, code, line = SIGNALS[case]
    proc = start(tmp_path, "export", *TINY, "--out", "out")
    wait_for(proc, after)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert_one_line(stderr, "edgecnn: ", line)
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("signum", "code", "line"), [(signal.SIGINT, 130, "edgecnn: aborted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_while_tracing_is_a_stop_not_a_failed_export(tmp_path, signum, code, line):
    """torch.export wraps an interrupt that lands while it traces in its own error: that was 'ONNX export failed',
    exit 2 (a failed check) — a CI job cancelled mid-export was told the model was at fault."""
    proc = start(tmp_path, "export", *TINY, "--out", "out")
    wait_for(proc, "random weights")  # the last line before the export stage: imports, then ~2 s of tracing
    time.sleep(2.0)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert_one_line(stderr, "edgecnn: ", line)
    assert "export failed" not in stderr
    assert_no_leftovers(tmp_path)


# a library that catches the interrupt a SIGTERM raised in it: torch did, importing triton while it traced
SWALLOWED = (
    "import os, signal, sys, time\n"
    "import edgecnn.pipeline.{module} as stage_module\n"
    "real = stage_module.{function}\n"
    "def swallowing(*args, **kwargs):\n"
    "    try:\n"
    "        os.kill(os.getpid(), signal.SIGTERM)\n"
    "        time.sleep(5)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
    "    {after}\n"
    "stage_module.{function} = swallowing\n"
    "sys.argv = ['edgecnn', 'export', *{args!r}, '--out', 'out']\n"
    "from edgecnn.cli import main\n"
    "main()\n"
)


@pytest.mark.parametrize(
    ("module", "function", "after"),
    [
        ("onnx_export", "traced_outputs", "return real(*args, **kwargs)"),
        ("quantize", "_preprocess", "return real(*args, **kwargs)"),
        # what the swallowed stop left broken fails the stage: still a stop, not a failed export (exit 2 or 70)
        ("quantize", "_preprocess", "raise RuntimeError('left half-done by the interrupt')"),
        ("onnx_export", "traced_outputs", "from edgecnn.errors import CheckFailedError; raise CheckFailedError('x')"),
    ],
    ids=["tracing", "quantizing", "then a bug", "then a failed check"],
)
def test_a_sigterm_a_library_swallowed_still_stops_the_export(tmp_path, module, function, after):
    """A SIGTERM that landed while torch imported triton during tracing was swallowed there (the raise never
    reached edgecnn): the export went on, wrote OUT and exited 0. The signal is recorded; the stage loop stops on it."""
    script = SWALLOWED.format(module=module, function=function, args=TINY, after=after)
    done = python(tmp_path, script)
    assert done.returncode == 143, done.stderr
    assert_one_line(done.stderr, "edgecnn: ", "edgecnn: terminated")
    assert "not made" not in done.stderr
    assert_no_leftovers(tmp_path)


def test_a_swallowed_sigterm_puts_no_file_in_place(tmp_path):
    """The last guard: a file (or OUT) written after a stop a library swallowed is not put in place."""
    script = (
        "import os, signal, time\n"
        "from edgecnn.files import atomic_write_text, terminate_as_interrupt\n"
        "with terminate_as_interrupt():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(5)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
        "    atomic_write_text('result.json', '{}')\n"
    )
    done = python(tmp_path, script)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "edgecnn: terminated"
    assert_no_leftovers(tmp_path)


SWEEP_SPEC = "models: [{name: mobilenet_v1, width: 0.25, resolution: 32}]\nprofiles: [x86-avx2]\n"
SWEEP_SPEC += "export: {formats: onnx, calib_size: 8, holdout: 4}\n"


@pytest.mark.parametrize(
    ("after", "wait_s"),
    [
        ("to run", 1.0),  # while Ray starts: was Ray's sys.exit(15), exit 15 and nothing said
        ("to run", 6.0),  # while the cell runs: was exit 130 'edgecnn: aborted' (Ray's wait dropped the Terminated)
    ],
    ids=["starting", "running"],
)
def test_sigterm_to_a_sweep_is_a_termination(tmp_path, after, wait_s):
    (tmp_path / "s.yaml").write_text(SWEEP_SPEC, encoding="utf-8")
    proc = start(tmp_path, "sweep", "s.yaml", "--out", "sw", "--workers", "1")
    wait_for(proc, after)
    time.sleep(wait_s)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert_one_line(stderr, "edgecnn: ", "edgecnn: terminated")
    assert list((tmp_path / "tmp").glob("edgecnn*")) == []
    cells = tmp_path / "sw" / "cells"  # the export cut short: its partial OUT and its lock go with its worker
    assert (sorted(p.name for p in cells.rglob(".*")) if cells.is_dir() else []) == []


def test_a_sigterm_swallowed_while_a_sweep_waits_stops_it_before_the_next_cell(tmp_path):
    """A stop a library swallowed while the driver waited for a cell: the sweep went on through every cell (hours,
    on a real grid) and only its summary was refused. The wait loop now acts on the recorded signal."""
    spec = SWEEP_SPEC.replace("resolution: 32}", "resolution: 32}, {name: mobilenet_v1, width: 0.5, resolution: 32}")
    (tmp_path / "s.yaml").write_text(spec, encoding="utf-8")
    script = (
        "import os, signal, sys, time\n"
        "import ray\n"
        "real = ray.wait\n"
        "def swallowing(*args, **kwargs):\n"
        "    if not swallowing.done:\n"
        "        swallowing.done = True\n"
        "        try:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "            time.sleep(5)\n"
        "        except KeyboardInterrupt:\n"
        "            pass\n"
        "    return real(*args, **kwargs)\n"
        "swallowing.done = False\n"
        "ray.wait = swallowing\n"
        "sys.argv = ['edgecnn', 'sweep', 's.yaml', '--out', 'sw', '--workers', '1']\n"
        "from edgecnn.cli import main\n"
        "main()\n"
    )
    done = python(tmp_path, script)
    assert done.returncode == 143, done.stderr
    assert_one_line(done.stderr, "edgecnn: ", "edgecnn: terminated")
    results = tmp_path / "sw" / "results.jsonl"
    assert not results.is_file() or results.read_text(encoding="utf-8") == ""  # no cell ran to its end
    assert list((tmp_path / "tmp").glob("edgecnn*")) == []


@pytest.mark.parametrize(
    ("signum", "after", "wait_s", "code", "line"),
    [
        (signal.SIGTERM, "to run", 1.0, 143, "edgecnn: terminated"),  # was 31–61 s, then exit 70 or 1 and Ray's log
        (signal.SIGTERM, "to run", 6.0, 143, "edgecnn: terminated"),
        # Ctrl-C, which a terminal sends its whole job: Ray's processes block SIGINT already; a KeyboardInterrupt
        # inside ray.init left its agents running (now deferred until the start is done)
        (signal.SIGINT, "to run", 1.0, 130, "edgecnn: aborted"),
    ],
    ids=["SIGTERM starting", "SIGTERM running", "SIGINT starting"],
)
def test_a_signal_to_a_sweeps_process_group_is_one_stop(tmp_path, signum, after, wait_s, code, line):
    """A CI job cancelled, a supervisor's stop, Ctrl-C: the signal reaches every process of the group. Ray's GCS and
    raylet, started in it, died mid-start and left the driver waiting for them; now they have a group of their own,
    and the driver stops them and every process it started."""
    (tmp_path / "s.yaml").write_text(SWEEP_SPEC, encoding="utf-8")
    proc = start(tmp_path, "sweep", "s.yaml", "--out", "sw", "--workers", "1", group=True)
    wait_for(proc, after)
    time.sleep(wait_s)
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert_one_line(stderr, "edgecnn: ", line)
    assert list((tmp_path / "tmp").glob("edgecnn*")) == []
    deadline = time.monotonic() + 30  # Ray's processes end as they are told to, not all at once
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _in_session(proc.pid), [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in _in_session(proc.pid)]


def test_a_sweep_leaves_the_signal_handlers_working(tmp_path):
    """Ray's shutdown left SIGTERM at the system's default underneath Python's handler: a SIGTERM while the summary
    was written killed the run unsaid, its temporary directory left behind."""
    (tmp_path / "s.yaml").write_text(SWEEP_SPEC, encoding="utf-8")
    script = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n"
        "from edgecnn.commands.sweep import sweep\n"
        "sweep('s.yaml', 'sw', workers=1)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(5)\n"
    )
    done = python(tmp_path, script)
    assert done.returncode == 42, done.stderr


def test_sigkill_leftovers_are_cleaned_by_the_next_run(tmp_path):
    proc = start(tmp_path, "export", *TINY, "--out", "out")
    wait_for(proc, FIRST_STAGE)
    proc.kill()
    proc.communicate(timeout=60)
    assert list(tmp_path.glob(".out.*.partial"))  # what SIGKILL leaves: the partial OUT, the run's temp directory
    assert list((tmp_path / "tmp").glob("edgecnn-run.*"))
    done = edgecnn(tmp_path, "export", *TINY, "--out", "out")
    assert done.returncode == 0, done.stderr
    assert_one_line(done.stderr, "edgecnn: warning:", "stale partial output(s) of dead runs")
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert_no_leftovers(tmp_path, "out")


def test_two_exports_into_one_out(tmp_path):
    first = start(tmp_path, "export", *TINY, "--out", "sub/out")  # a missing parent is created
    wait_for(first, "warning:")  # inside the output directory: holds the lock
    first.send_signal(signal.SIGSTOP)
    try:
        second = edgecnn(tmp_path, "export", *TINY, "--out", "sub/out")
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert_failed(second, f"is being written by another edgecnn (pid {first.pid})")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out"]  # no lock file, no partial
    assert json.loads((tmp_path / "sub/out/manifest.json").read_text())["model"]["name"]


# --- OUT: --force, links, places that are never OUT, unwritable


@pytest.fixture
def victim(tmp_path) -> Path:
    """A directory of someone else's that must survive every case."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    return folder


def test_force_replaces_a_link_at_out_not_its_target(tmp_path, victim):
    (tmp_path / "out").symlink_to(victim)
    assert_failed(edgecnn(tmp_path, "export", *TINY, "--out", "out"), "exists; pass --force")
    done = edgecnn(tmp_path, "export", *TINY, "--out", "out", "--force")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert not out.is_symlink() and (out / "manifest.json").is_file()
    assert snapshot(victim) == {"thesis.tex": b"years of work"}
    assert_no_leftovers(tmp_path, "out", "victim")


def _foreign(tmp_path: Path) -> str:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    return "out"


def _home(tmp_path: Path) -> str:
    (tmp_path / "home").mkdir()
    return str(tmp_path / "home")


def _below_a_file(tmp_path: Path) -> str:
    (tmp_path / "afile").write_text("x")
    return "afile/out"


def _planted_lock(tmp_path: Path) -> str:
    (tmp_path / ".out.lock").symlink_to(tmp_path / "victim" / "thesis.tex")
    return "out"


def _hard_linked_lock(tmp_path: Path) -> str:
    os.link(tmp_path / "victim" / "thesis.tex", tmp_path / ".out.lock")
    return "out"


REFUSED = {  # name: (make OUT, --force, message)
    "existing OUT without --force": (lambda t: (t / "out").mkdir() or "out", False, "exists; pass --force"),
    "--force on a directory edgecnn did not write": (_foreign, True, "has no manifest.json"),
    "--force on the current directory": (lambda t: ".", True, "refusing to write the output directory ."),
    "--force on a parent directory": (lambda t: "..", True, "refusing to write the output directory .."),
    "--force on the home directory": (_home, True, "refusing to write the output directory"),
    "OUT below a file": (_below_a_file, False, "is not a directory"),
    "OUT in a read-only directory": (lambda t: str(UNWRITABLE / "out"), False, "cannot write in /sys"),
    "OUT in /proc": (lambda t: "/proc/edgecnn-out", False, "cannot write in /proc: its file system takes no new"),
    "lock file planted as a link": (_planted_lock, False, "is a symbolic link"),
    "lock file planted as a hard link": (_hard_linked_lock, False, "is not a plain file of its own"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_out(tmp_path, victim, case):
    make, force, message = REFUSED[case]
    out = make(tmp_path)
    before = snapshot(tmp_path)
    result = edgecnn(
        tmp_path, "export", *TINY, "--out", out, *(["--force"] if force else []), HOME=str(tmp_path / "home")
    )
    assert_failed(result, message)
    assert snapshot(tmp_path) == before  # nothing written, nothing lost
    assert not list(tmp_path.glob(".*.partial"))


# --- single files: bench --out, plan --chart, drift --out, calibrate-profile --out


@pytest.fixture
def model(tmp_path) -> Path:
    return conv_relu_onnx(tmp_path / "conv.onnx", size=8)


def _existing(tmp_path: Path, name: str = "taken.json") -> str:
    (tmp_path / name).write_text("precious")
    return name


FILE_REFUSED = {  # name: (argv after `edgecnn`, message); `taken.json`/`.png`/`.onnx` exist, conv.onnx is the input
    "bench --out exists": (["bench", "conv.onnx", "--out", "taken.json"], "output taken.json exists; pass --force"),
    "bench --out is the artifact": (["bench", "conv.onnx", "--out", "conv.onnx", "--force"], "must end in .json"),
    "bench --out unwritable": (["bench", "conv.onnx", "--out", str(UNWRITABLE / "r.json")], "cannot write in /sys"),
    "plan --chart exists": (["plan", "mobilenet", "-p", "raspberrypi4", "--chart", "taken.png"], "pass --force"),
    "plan --chart unwritable": (
        ["plan", "mobilenet", "-p", "raspberrypi4", "--chart", str(UNWRITABLE / "c.png")],
        "cannot write in /sys",
    ),
    "drift --out exists": (
        ["drift", "conv.onnx", "conv.onnx", "--data", "d.npz", "--fix", "--out", "taken.onnx"],
        "output taken.onnx exists; pass --force",
    ),
    "drift --out is the target": (
        ["drift", "conv.onnx", "conv.onnx", "--data", "d.npz", "--fix", "--out", "conv.onnx", "--force"],
        "is also an input",
    ),
    "drift --chart exists": (
        ["drift", "conv.onnx", "conv.onnx", "--data", "d.npz", "--chart", "taken.png"],
        "output taken.png exists; pass --force",
    ),
    "calibrate-profile --out unwritable": (
        ["calibrate-profile", "taken.json", "--base", "raspberrypi4", "--out", str(UNWRITABLE / "p.yaml")],
        "cannot write in /sys",
    ),
    "calibrate-profile --out is RESULTS": (
        ["calibrate-profile", "taken.json", "--base", "raspberrypi4", "--out", "taken.json", "--force"],
        "is also an input",
    ),
}


@pytest.mark.parametrize("case", FILE_REFUSED, ids=list(FILE_REFUSED))
def test_refused_output_file(tmp_path, model, case):
    argv, message = FILE_REFUSED[case]
    _existing(tmp_path)
    _existing(tmp_path, "taken.png")
    _existing(tmp_path, "taken.onnx")
    before = snapshot(tmp_path)
    assert_failed(edgecnn(tmp_path, *argv), message)
    assert snapshot(tmp_path) == before


def test_bench_out_keeps_the_mode_of_the_file_it_replaces(tmp_path, model):
    out = tmp_path / "r.json"
    first = edgecnn(tmp_path, "bench", "conv.onnx", "-n", "2", "--warmup", "0", "--out", "r.json")
    assert first.returncode == 0, first.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # a new file: like any the user makes
    out.chmod(0o640)
    again = edgecnn(tmp_path, "bench", "conv.onnx", "-n", "2", "--warmup", "0", "--out", "r.json", "--force")
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and json.loads(out.read_text())[0]["runs"] == 2
    assert_no_leftovers(tmp_path, "conv.onnx", "r.json")


def test_plan_chart_never_writes_through_a_planted_link(tmp_path, victim):
    for name in (".c.png.tmp.png", ".c.png.tmp"):  # the old predictable temporary name, and its likes
        (tmp_path / name).symlink_to(victim / "thesis.tex")
    done = edgecnn(tmp_path, "plan", "mobilenet", "-p", "raspberrypi4", "--chart", "c.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert snapshot(victim) == {"thesis.tex": b"years of work"}


# --- child processes


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # unreaped: dead
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc: Linux")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_bench_harness_dies_with_edgecnn(tmp_path, model, signum):
    proc = start(tmp_path, "bench", "conv.onnx", "--budget-s", "300", "--warmup", "0", "--timeout", "300")
    deadline = time.monotonic() + 60
    while not _children(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    (harness,) = _children(proc.pid)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    if signum == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        assert_one_line(stderr, "edgecnn: ", "edgecnn: terminated")
    deadline = time.monotonic() + 10
    while not _gone(harness):
        assert time.monotonic() < deadline, f"harness {harness} outlived its parent"
        time.sleep(0.1)
    if signum == signal.SIGKILL:  # nothing cleans up after SIGKILL: the next run removes its temporary directory
        assert list((tmp_path / "tmp").glob("edgecnn-run.*"))
        assert edgecnn(tmp_path, "profiles", "--json").returncode == 0
    assert_no_leftovers(tmp_path, "conv.onnx")


def test_run_temp_dir_holds_the_runs_temporary_files_and_removes_dead_runs(tmp_path, monkeypatch):
    import tempfile

    from edgecnn import files

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"{files.RUN_PREFIX}999999999-1.abc"  # no such process
    dead.mkdir()
    (dead / "quantizer.onnx").write_bytes(b"x")
    live = tmp_path / f"{files.RUN_PREFIX}{os.getpid()}-{files._start_time(os.getpid())}.def"
    live.mkdir()
    with files.run_temp_dir() as path:
        assert path.parent == tmp_path and tempfile.gettempdir() == str(path)
        assert Path(tempfile.mkdtemp(prefix="edgecnn-ort-")).parent == path  # a library's temporary directory
    assert not path.exists() and not dead.exists() and live.is_dir()
    assert tempfile.tempdir == str(tmp_path)


def test_sigterm_before_any_output_is_written(tmp_path):
    proc = start(tmp_path, "export", *TINY, "--out", "out")
    time.sleep(2)  # importing torch, building the model: no output yet
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert_one_line(stderr, "edgecnn: ", "edgecnn: terminated")
    assert_no_leftovers(tmp_path)


def test_export_never_replaces_its_own_inputs(tmp_path):
    import numpy as np

    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # an earlier export: --force may replace it …
    np.savez(out / "c.npz", images=np.zeros((12, 3, 32, 32), np.float32))  # … but not the data the user put in it
    before = snapshot(tmp_path)
    done = edgecnn(tmp_path, "export", *TINY, "--calib", "out/c.npz", "--out", "out", "--force")
    assert_failed(done, "input out/c.npz lies in the output directory out, which the export replaces")
    assert snapshot(tmp_path) == before


def test_plan_chart_is_never_its_profile(tmp_path):
    from edgecnn.config.profiles import profiles_dir

    text = (profiles_dir() / "x86-avx2.yaml").read_text(encoding="utf-8").replace("name: x86-avx2", "name: p")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    done = edgecnn(tmp_path, "plan", "mobilenet", "-p", "p.yaml", "--chart", "p.yaml", "--force")
    assert_failed(done, "output p.yaml must end in .png")  # refused before it could be found an input
    assert (tmp_path / "p.yaml").read_text(encoding="utf-8") == text


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    """Two runs both find OUT.json absent without --force: the second one to finish fails, the first's file stays."""
    from edgecnn.errors import UsageError
    from edgecnn.files import atomic_write_text, check_output_file

    target = tmp_path / "same.json"
    check_output_file(target, force=False)
    target.write_text("the other run's")  # what a concurrent run wrote while this one worked
    with pytest.raises(UsageError, match="appeared while edgecnn worked"):
        atomic_write_text(target, "mine")
    assert target.read_text() == "the other run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json"]  # no temporary file left
    fresh = tmp_path / "fresh.json"
    check_output_file(fresh, force=False)
    atomic_write_text(fresh, "mine")
    assert fresh.read_text() == "mine"
    atomic_write_text(fresh, "again")  # once written, it is this run's own file
    assert fresh.read_text() == "again"


def test_interrupt_behind_finds_an_interrupt_a_library_wrapped():
    from edgecnn.files import Terminated, interrupt_behind

    stop = KeyboardInterrupt()
    try:
        try:
            raise stop
        except KeyboardInterrupt:
            raise RuntimeError("Failed to export the model with torch.export") from None  # context kept, cause not
    except RuntimeError as wrapped:
        assert interrupt_behind(wrapped) is stop
    term = Terminated()
    caused = ValueError("outer")
    caused.__cause__ = RuntimeError("inner")
    caused.__cause__.__cause__ = term
    assert interrupt_behind(caused) is term
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped  # a cycle ends the walk
    assert interrupt_behind(looped) is None and interrupt_behind(ValueError("plain")) is None


def test_export_onnx_raises_the_interrupt_torch_export_wrapped(tmp_path, monkeypatch):
    """Whatever moment the signal lands, an interrupt wrapped by torch.export is raised as itself, not as
    'ONNX export failed' (exit 2)."""
    import torch

    from edgecnn.pipeline import onnx_export

    def wrapping_export(*args, **kwargs):
        raise RuntimeError("Failed to export the model with torch.export") from KeyboardInterrupt()

    monkeypatch.setattr(onnx_export, "_export", wrapping_export)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_onnx(torch.nn.Conv2d(3, 4, 3), (1, 3, 8, 8), tmp_path / "m.onnx")


def test_a_recorded_signal_is_left_to_the_code_that_records_it(tmp_path):
    """Inside stopping_signals_recorded (Ray's start, where a raise in an at-fork hook is swallowed) a SIGTERM is only
    recorded: the check does not raise there; the region's end does."""
    script = (
        "import os, signal, time\n"
        "from edgecnn.files import stop_if_signalled, stopping_signals_recorded, terminate_as_interrupt\n"
        "with terminate_as_interrupt():\n"
        "    with stopping_signals_recorded():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(0.5)\n"
        "        stop_if_signalled()\n"
        "        print('went on', flush=True)\n"
    )
    done = python(tmp_path, script)
    assert done.returncode == 143 and done.stdout == "went on\n", (done.stdout, done.stderr)
    assert done.stderr.strip() == "edgecnn: terminated"
