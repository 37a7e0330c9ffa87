"""OUT appears whole or not at all, under its lock, replacing only what --force may replace."""

import os
import stat
import subprocess
import sys

import pytest

from edgecnn.errors import UsageError
from edgecnn.files import (
    atomic_output_dir,
    atomic_write_text,
    check_output_dir,
    output_lock,
    remove_stale_partials,
    scratch_beside,
)


def test_success_renames_into_place(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out, force=False) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("error", [RuntimeError("stage failed"), KeyboardInterrupt()])
def test_failure_or_interrupt_leaves_nothing(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(type(error)), atomic_output_dir(out, force=False) as tmp:
        (tmp / "half.onnx").write_bytes(b"12")
        raise error
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # an earlier export: --force may replace it
    with pytest.raises(RuntimeError), atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError
    assert (out / "manifest.json").exists()
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert list(tmp_path.iterdir()) == [out]


def test_force_replaces_a_link_itself(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    (tmp_path / "out").symlink_to(target)
    with atomic_output_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert not (tmp_path / "out").is_symlink() and (tmp_path / "out" / "new.txt").exists()
    assert (target / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"]


@pytest.mark.parametrize(("content", "refused"), [({}, False), ({"manifest.json": "{}"}, False), ({"a": "x"}, True)])
def test_force_replaces_only_an_edgecnn_or_empty_directory(tmp_path, content, refused):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in content.items():
        (out / name).write_text(text)
    if refused:
        with pytest.raises(UsageError, match=r"has no manifest\.json"):
            check_output_dir(out, force=True)
    else:
        check_output_dir(out, force=True)


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_stale_partials_of_dead_processes_go_live_ones_stay(tmp_path, capsys):
    out = tmp_path / "out"
    stale = tmp_path / f".out.{_dead_pid()}-1.abc.partial"
    stale.mkdir()
    with scratch_beside(out) as live:  # this process's: alive
        assert remove_stale_partials(out) == [stale]
        assert live.is_dir() and not stale.exists()
    assert capsys.readouterr().err.count("edgecnn: warning: removed 1 stale partial") == 1


def test_a_second_lock_on_out_fails_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with output_lock(out), pytest.raises(UsageError, match=f"pid {os.getpid()}"), output_lock(out):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", [None, 0o640, 0o600, 0o755])
def test_a_written_file_keeps_the_mode_it_had(tmp_path, existing):
    path = tmp_path / "f.txt"
    umask = os.umask(0o022)
    try:
        if existing is not None:
            path.write_text("old")
            path.chmod(existing)
        atomic_write_text(path, "new")
    finally:
        os.umask(umask)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == (existing or 0o644)
    assert list(tmp_path.iterdir()) == [path]


def test_a_run_killed_between_its_renames_gets_the_old_out_back(tmp_path, capsys):
    dead = _dead_pid()
    old = tmp_path / f".out.{dead}-1.abc.old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    (tmp_path / f".out.{dead}-1.abc.partial").mkdir()
    remove_stale_partials(tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (tmp_path / "out" / "manifest.json").exists()
    assert "restored" in capsys.readouterr().err
