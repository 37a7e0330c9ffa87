"""The one owner of output (standard library only): every file and directory edgecnn writes goes through here.

Files are written through a temporary file created exclusively beside the target, fsynced and renamed into
place (a replaced file keeps its mode). An output directory is built in ``.OUT.<pid>-<start>.XXXX.partial``
beside OUT, under an exclusive lock ``.OUT.lock``, and renamed into place; SIGTERM is turned into an interrupt
while output is written, so the cleanups run; the partials of dead processes are removed by the next run.
The ``--force`` rules and the writability checks run before any work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from edgecnn.errors import UsageError

MANIFEST = "manifest.json"  # what makes a directory edgecnn's own (``--force`` replaces only those)


STOPPING = {signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}  # kill, timeout, CI; a closed terminal or SSH


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while output was being written: unwinds like Ctrl-C so every cleanup runs."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


# --- signals


_RECEIVED: list[int] = []  # the stopping signal received, if any (a library may turn its Terminated into a plain
# KeyboardInterrupt: Ray's wait does)
_ARMED: list[int] = []  # len(_RECEIVED) when the terminate_as_interrupt region now open was entered


def _raise_terminated(signum: int, frame: Any) -> None:
    for stopping in STOPPING:  # a second signal must not cut the cleanup short
        if signal.getsignal(stopping) is _raise_terminated:
            signal.signal(stopping, signal.SIG_IGN)
    _RECEIVED.append(signum)
    raise Terminated(signum)


def _record_only(signum: int, frame: Any) -> None:
    _RECEIVED.append(signum)


@contextlib.contextmanager
def stopping_signals_recorded() -> Iterator[None]:
    """While inside, a stopping signal edgecnn handles is only recorded (see ``stopping_signals_received``), not
    raised: for calls that fork, where a raise inside an at-fork hook is swallowed and printed as a traceback."""
    ours = [s for s in STOPPING if signal.getsignal(s) is _raise_terminated]
    for stopping in ours:
        signal.signal(stopping, _record_only)
    try:
        yield
    finally:
        for stopping in ours:
            if signal.getsignal(stopping) is _record_only:
                signal.signal(stopping, _raise_terminated)


def stopping_signals_received() -> tuple[int, ...]:
    """The stopping signals edgecnn's handler has received in this process, in order (raised or not)."""
    return tuple(_RECEIVED)


def as_terminated(interrupt: BaseException) -> Terminated | None:
    """The Terminated behind ``interrupt``: itself, its cause, or the stopping signal received when a library
    replaced it by a KeyboardInterrupt of its own (so SIGTERM still exits 143, not as Ctrl-C's 130)."""
    for error in (interrupt, interrupt.__cause__):
        if isinstance(error, Terminated):
            return error
    return Terminated(_RECEIVED[0]) if _RECEIVED else None


def stop_if_signalled() -> None:
    """Raise the Terminated of a stopping signal received in the open ``terminate_as_interrupt`` region that did
    not unwind it: native code can swallow the raise (measured: a SIGTERM landing while torch imported triton
    during tracing; the export went on and exited 0). Called between stages and before output is put in place."""
    if signal.getsignal(signal.SIGTERM) is _record_only:  # inside stopping_signals_recorded: its caller decides
        return
    signum = _received_since(_ARMED[-1]) if _ARMED else None
    if signum is not None:
        raise Terminated(signum)


def _received_since(armed: int) -> int | None:
    """The first stopping signal received since ``len(_RECEIVED)`` was ``armed``, or None."""
    return _RECEIVED[armed] if len(_RECEIVED) > armed else None


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or stopping signal a library caught and wrapped in ``error`` (along its causes and contexts), or
    None: torch.export reports one that lands while it traces as a failed export."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP unwind like Ctrl-C; one that did prints 'edgecnn: terminated' (or
    'hangup') and exits 128 + its number (143, 129).

    Does nothing outside the main thread; leaves alone a signal the program handles or ignores itself (nohup)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):  # nested (the outer one unwinds) or the program's own handler
        yield
        return
    mine = [s for s in STOPPING if signal.getsignal(s) in (signal.SIG_DFL, None)]
    armed = len(_RECEIVED)
    _ARMED.append(armed)
    try:
        for stopping in mine:
            signal.signal(stopping, _raise_terminated)
        yield
        stop_if_signalled()
    except BaseException as error:  # a Terminated, or what a stop a library swallowed made fail (exit 143 still)
        signum = error.signum if isinstance(error, Terminated) else _received_since(armed)
        if signum is None:
            raise
        sys.stderr.write(f"edgecnn: {STOPPING[signum]}\n")
        raise SystemExit(128 + signum) from None
    finally:
        _ARMED.pop()
        for stopping in mine:
            signal.signal(stopping, signal.SIG_DFL)


# --- processes: who owns a partial


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '0' where /proc is missing, '' if no process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return ""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""
        except PermissionError:
            pass
        return "0"
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_tag() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid())}"


def _alive(tag: str) -> bool:
    pid, _, start = tag.partition("-")
    current = _start_time(int(pid))
    return current != "" and (current == start or "0" in (current, start))


def _leftovers(out: Path) -> Iterator[tuple[Path, str]]:
    """The partial and old directories beside OUT, with their owner tag."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(\d+-\d+)\.[^/]*\.(partial|old)")
    for entry in out.parent.iterdir() if out.parent.is_dir() else ():
        match = pattern.fullmatch(entry.name)
        if match:
            yield entry, match.group(1)


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove the partials beside OUT left by dead processes (SIGKILL, power loss); a live one's stay. A run
    killed between its two renames left the previous OUT as ``.old``: that one is put back."""
    removed, restored = [], ""
    for entry, tag in _leftovers(out):
        if _alive(tag):
            continue
        if entry.name.endswith(".old") and not os.path.lexists(out):
            entry.rename(out)
            restored = f"; restored {out} from {entry.name}"
        else:
            _remove(entry)
        removed.append(entry)
    if removed:
        names = ", ".join(p.name for p in removed)
        sys.stderr.write(
            f"edgecnn: warning: removed {len(removed)} stale partial output(s) of dead runs: {names}{restored}\n"
        )
    return removed


def _lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def remove_dead_outputs(out: Path, wait_s: float = 5.0) -> None:
    """Remove the partial outputs beside OUT and its lock file, once their owners are dead (waiting up to ``wait_s``
    for processes being killed): what a run stopped from outside — a worker of a shut-down Ray — leaves."""
    deadline = time.monotonic() + wait_s
    for entry, tag in list(_leftovers(out)):
        while _alive(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(tag) and not entry.name.endswith(".old"):  # an .old is the previous OUT: the next run's
            _remove(entry)
    lock = _lock_path(out)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it: its owner is dead
        if os.path.samestat(os.fstat(fd), os.lstat(lock)):
            lock.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- the run's own temporary directory


RUN_PREFIX = "edgecnn-run."


@contextlib.contextmanager
def run_temp_dir() -> Iterator[Path]:
    """One temporary directory for everything this run puts in the temp directory: ``tempfile.tempdir`` points
    into it, so the libraries' temporary files (ONNX Runtime's, the quantizers') land there too. It is removed at
    the end; the ones of dead runs (SIGKILL, power loss) are removed when the next run starts."""
    base = Path(tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(RUN_PREFIX)}(\d+-\d+)\..+")
    for entry in base.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and not _alive(match.group(1)) and entry.lstat().st_uid == os.getuid():
            _remove(entry)
    path = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{_owner_tag()}.", dir=base))
    # TMPDIR too: native libraries (ONNX Runtime's and LiteRT's session file ``.ses``) and children read it.
    previous, tempfile.tempdir = tempfile.tempdir, str(path)
    previous_env, os.environ["TMPDIR"] = os.environ.get("TMPDIR"), str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = previous
        if previous_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous_env
        shutil.rmtree(path, ignore_errors=True)


def current_run_temp_dir() -> Path | None:
    """The run's temporary directory when inside :func:`run_temp_dir` (the CLI always is), else None."""
    here = Path(tempfile.gettempdir())
    return here if here.name.startswith(RUN_PREFIX) else None


# --- checks before any work


def _absolute(path: Path) -> Path:
    """``path`` made absolute with its directory resolved, its last component not followed (a link stays one)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name if path.name else path


def ensure_writable_dir(directory: Path) -> None:
    """Fail with one line unless a file can be created in ``directory`` or, if missing, its nearest ancestor."""
    directory = Path(os.path.abspath(directory))
    existing = directory
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write in {directory}: {existing} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".edgecnn-probe.")
    except OSError as error:
        if error.errno == errno.ENOENT:  # the directory is there: its file system takes no new files (procfs)
            fix = "give a path on a disk"
            raise UsageError(f"cannot write in {existing}: its file system takes no new files; {fix}") from None
        raise UsageError(f"cannot write in {existing}: {error.strerror.lower()}") from None
    os.close(fd)
    os.unlink(probe)


PARTIAL_ROOM = 48  # bytes a partial's name adds to OUT's: ".", ".<pid>-<start>.XXXXXXXX.partial"


def check_name_length(path: Path) -> None:
    """Fail when ``path``'s last component leaves no room, under the file system's name limit, for its partial."""
    parent = Path(os.path.abspath(path)).parent
    while not os.path.isdir(parent) and parent != parent.parent:  # os.path.isdir: False, not an error, on any name
        parent = parent.parent
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in Path(os.path.abspath(path)).parent.parts:
        if len(os.fsencode(part)) > limit:
            raise UsageError(f"a folder name in {str(path)[:60]}… is longer than the file system's {limit} bytes")
    size = len(os.fsencode(path.name))
    if size > limit - PARTIAL_ROOM:
        raise UsageError(
            f"output name {path.name[:40]}{'…' if len(path.name) > 40 else ''} is {size} bytes long; "
            f"edgecnn needs it under {limit - PARTIAL_ROOM} "
            f"(the file system allows {limit}, and the partial written beside it is longer): give a shorter name"
        )


def check_suffix(path: Path | None, suffix: str, content: str) -> None:
    """Fail when an output ``path`` the user named does not end in ``suffix`` (any case): edgecnn writes
    ``content`` there whatever its name, and a PNG named .svg or an ONNX model named .txt misleads every reader."""
    if path is not None and Path(path).name in ("", ".", ".."):  # '' reaches here as Path('.')
        raise UsageError(f"output '{path}' names no file: give a file name, e.g. out{suffix}")
    if path is not None and Path(path).name.lower() == suffix:  # '.png' is a hidden file's name, of no suffix
        raise UsageError(f"output {path} is only a suffix: give it a name, e.g. {Path(path).with_name('out' + suffix)}")
    if path is not None and Path(path).suffix.lower() != suffix:
        raise UsageError(
            f"output {path} must end in {suffix}, as edgecnn writes {content}: name it {Path(path).stem}{suffix}"
        )


def check_replaceable(path: Path) -> None:
    """Fail when ``path`` is a device, FIFO or socket: writing an output replaces what is there (a symbolic link
    is replaced itself), and a special file such as /dev/null must never become a plain file."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
        raise UsageError(f"output {path} is a device, FIFO or socket, which edgecnn would replace; give a file path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


_NO_CLOBBER: set[Path] = set()  # outputs checked absent without --force: their write must not replace a file


def check_output_file(path: Path, force: bool, inputs: Iterable[str | Path | None] = ()) -> None:
    """Fail before any work when ``path`` is an input, exists (unless ``force``), is a directory, or is unwritable."""
    path = Path(path)
    check_name_length(path)
    for source in inputs:
        if source is not None and os.path.lexists(path) and _same_file(path, Path(source)):
            raise UsageError(f"output {path} is also an input of this command; write it elsewhere")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory")
    check_replaceable(path)
    if os.path.lexists(path) and not force:
        raise UsageError(f"output {path} exists; pass --force to replace it")
    ensure_writable_dir(path.parent)
    if not force:  # written later without replacing what another run may have put there meanwhile
        _NO_CLOBBER.add(_absolute(path))


def check_output_dir(out: Path, force: bool, inputs: Iterable[str | Path | None] = ()) -> None:
    """Fail before any work when OUT is '.', '/', home or above the current directory, holds an input of the
    command, exists (unless ``force``), is a directory edgecnn did not write (no manifest.json, not empty), is not
    a directory, or is unwritable."""
    check_name_length(out)
    target, cwd = _absolute(out), Path.cwd().resolve()
    if target == cwd or target in cwd.parents or target == Path.home().resolve():
        raise UsageError(f"refusing to write the output directory {out}: it is the current, home or a parent directory")
    for source in inputs:
        if source is not None and os.path.lexists(source):
            resolved = Path(source).resolve()
            if resolved == target.resolve() or target.resolve() in resolved.parents:
                raise UsageError(
                    f"input {source} lies in the output directory {out}, which the export replaces; move it"
                )
    if out.exists() and not out.is_dir() and not out.is_symlink():  # --force would not help: said first
        raise UsageError(f"output path {out} exists and is not a directory; give --out a new directory's path")
    if os.path.lexists(out) and not force:
        raise UsageError(f"output directory {out} exists; pass --force to replace it")
    if out.is_dir() and not out.is_symlink() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise UsageError(f"--force replaces only an edgecnn output directory; {out} has no {MANIFEST}")
    ensure_writable_dir(out.parent)


# --- a full disk


FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # no space, over quota, over the file-size limit


@contextlib.contextmanager
def room_to_write(where: Path) -> Iterator[None]:
    """A full disk, a quota or a file-size limit met while writing ``where`` is one line (exit 1), not a bug."""
    try:
        yield
    except OSError as error:
        if error.errno not in FULL:
            raise
        raise UsageError(
            f"cannot write {error.filename or where}: {error.strerror.lower()}; free some space (or raise the "
            "limit), or write elsewhere"
        ) from None


# --- the OUT lock


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT (``.OUT.lock`` beside it, never followed if a link) for the whole run."""
    lock = _lock_path(out)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UsageError(f"lock file {lock} is a symbolic link; remove it") from None
            raise UsageError(f"cannot create the lock file {lock}: {error.strerror.lower()}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a planted FIFO or hard link: never write it
            os.close(fd)
            raise UsageError(f"lock file {lock} is not a plain file of its own; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(f"output directory {out} is being written by another edgecnn (pid {holder})") from None
        try:  # the holder before us may have removed the file after we opened it: lock the one that is there
            same = os.path.samestat(os.fstat(fd), os.lstat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


# --- the output directory


def _private_to_public(path: Path) -> None:
    """mkdtemp makes a private directory; OUT should look like any directory the user makes."""
    path.chmod(0o777 & ~_umask())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _partial(out: Path) -> Path:
    """A new private directory beside OUT, named for this process so that a later run knows when it is stale."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{_owner_tag()}.", suffix=".partial", dir=out.parent))


@contextlib.contextmanager
def scratch_beside(out: Path) -> Iterator[Path]:
    """A scratch directory beside OUT, removed on exit (by the next run if this one is killed)."""
    scratch = _partial(out)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def parents_made(path: Path) -> Iterator[None]:
    """Create the missing directories above ``path``; when the block fails, remove those of them still empty (a
    failed run leaves no empty ``exports/`` behind)."""
    missing = [parent for parent in Path(path).parents if not os.path.lexists(parent)]  # the deepest first
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {Path(path).parent}: {error.strerror.lower()}") from None
    try:
        yield
    except BaseException:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:  # something else is in it now (another run's output): it stays
                break
        raise


@contextlib.contextmanager
def atomic_output_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on any failure it vanishes.

    Holds OUT's lock, removes the partials of dead runs, and turns SIGTERM into an interrupt meanwhile. A
    symbolic link at OUT is replaced itself, never followed."""
    out = Path(out)
    check_output_dir(out, force)
    with parents_made(out), terminate_as_interrupt(), output_lock(out):
        remove_stale_partials(out)
        check_output_dir(out, force)  # OUT may have appeared between the first check and the lock
        tag = _owner_tag()
        tmp = _partial(out)
        _private_to_public(tmp)
        try:
            with room_to_write(out):
                yield tmp
            stop_if_signalled()  # a stop a library swallowed: nothing is put in place
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if os.path.lexists(out):
            old = out.with_name(f".{out.name}.{tag}.{tmp.name.split('.')[-2]}.old")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            _remove(old)


# --- files


def _atomic_write(path: Path, mode: str, write: Callable[[IO[Any]], None]) -> Path:
    """Write through a temporary file created exclusively beside ``path``, fsync, then ``os.replace``.

    A replaced file keeps its permission bits; a new one gets 0666 less the umask."""
    path = Path(path)
    with parents_made(path), terminate_as_interrupt(), room_to_write(path):
        check_replaceable(path)
        try:
            keep = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            keep = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, keep)
            with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            stop_if_signalled()
            if _absolute(path) in _NO_CLOBBER:
                _place_new(Path(tmp), path)
            else:
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def _place_new(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` only if ``path`` does not exist (a hard link fails on an existing name, so two
    runs cannot both write it); on file systems without hard links, a check just before the rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(
            f"output {path} appeared while edgecnn worked (another run?): it is left as it is; pass --force to "
            "replace it"
        ) from None
    except OSError:
        if os.path.lexists(path):
            raise UsageError(f"output {path} appeared while edgecnn worked; pass --force to replace it") from None
        os.replace(tmp, path)
        return
    _NO_CLOBBER.discard(_absolute(path))
    tmp.unlink()


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that no reader ever sees half of it."""
    return _atomic_write(path, "w", lambda handle: handle.write(text))


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` with ``write(handle)`` (a binary file handle) so that no reader ever sees half of it."""
    return _atomic_write(path, "wb", write)


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy ``src``'s bytes to ``dst`` so that no reader ever sees half of them."""

    def copy(handle: IO[bytes]) -> None:
        with Path(src).open("rb") as source:
            shutil.copyfileobj(source, handle)

    return _atomic_write(dst, "wb", copy)


# --- the user cache


def cache_dir() -> Path | None:
    """edgecnn's cache root: ``$EDGECNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``;
    None (no disk cache) when ``EDGECNN_CACHE_DIR`` is set but empty, or no home directory is known."""
    given = os.environ.get("EDGECNN_CACHE_DIR")
    if given is not None:
        return Path(given).expanduser() if given else None
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG spec: a relative path is invalid, ignore it
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory
            return None
    return Path(base) / "edgecnn"


# --- JSON


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (a NumPy scalar's too) as None, in dicts, lists and tuples."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if not isinstance(value, (str, bytes, int)) and hasattr(value, "item") and hasattr(value, "dtype"):
        value = value.item() if getattr(value, "ndim", 0) == 0 else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(data: Any, default: Callable[[Any], Any] | None = None, **options: Any) -> str:
    """``data`` as standard JSON (``jq``, JavaScript and every strict parser read it): a NaN or infinite figure —
    the SQNR of identical outputs is +inf dB — is null, never Python's bare ``Infinity``."""
    return json.dumps(_finite(data), allow_nan=False, default=default, **options)


# --- append-only records


def append_line(path: Path, line: str) -> None:
    """Append ``line`` (one line, no newline in it) to ``path`` with one ``write`` on an ``O_APPEND`` descriptor,
    fsynced: a reader sees whole lines only, except a last one cut by a crash, which :func:`read_lines` skips. A
    file whose last line was cut gets a newline first, so the cut line never swallows the next record."""
    if "\n" in line or "\r" in line:
        raise ValueError("append_line writes one line: no newline in it")
    path = Path(path)
    check_replaceable(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    with terminate_as_interrupt(), room_to_write(path):
        fd = os.open(path, flags, 0o666)
        try:
            size = os.fstat(fd).st_size
            head = b""
            if size:
                with open(path, "rb") as reader:
                    reader.seek(size - 1)
                    head = b"" if reader.read(1) == b"\n" else b"\n"
            os.write(fd, head + line.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


def read_lines(path: Path) -> list[str]:
    """The whole lines of an append-only file written by :func:`append_line` (none when it is missing); a last
    line without its newline (a crash cut it) is left out."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]
