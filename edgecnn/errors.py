"""The error hierarchy of edgecnn and the exit codes the CLI maps them to.

Every mistake a user can make (an unknown model name, a missing file, a bad
option value) raises an :class:`EdgecnnError`; the CLI prints its message as
one line and exits with its ``exit_code``. Anything else is a bug: one line
and exit code 70 (the traceback with ``--debug`` or ``EDGECNN_DEBUG=1``).
:func:`reading` turns what a dependency raises on a bad user file into a
:class:`UsageError` naming the file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 1  # bad input or usage
EXIT_FAILED_CHECK = 2  # a numerical check of the pipeline failed
EXIT_DRIFT = 3  # accuracy drift over the threshold
EXIT_PARTIAL = 4  # some requested formats could not be made (the others are written)
EXIT_INTERNAL = 70  # a bug in edgecnn (EX_SOFTWARE)

# Packages whose exceptions, raised while a user's file is read, mean the file is bad (not a bug of edgecnn).
READER_PACKAGES = frozenset(["PIL", "onnx", "onnxruntime", "google", "yaml", "numpy", "json", "zipfile", "pickle"])


class EdgecnnError(Exception):
    """A user-facing error: its message is printed as one line, no traceback."""

    exit_code = EXIT_USAGE


class UsageError(EdgecnnError):
    """Bad input: unknown names, bad option values, unreadable files."""


class UnusedOptionError(UsageError):
    """An option given for a path the run does not take (edgecnn/applies.py): never ignored, never a warning."""


class UnknownNameError(UsageError):
    """A name that is not in a registry, with a did-you-mean suggestion."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        hint = did_you_mean(name, known)
        message = f"unknown {kind} '{name}'"
        if hint:
            message += f"; did you mean {hint}?"
        elif known:
            message += f"; known: {', '.join(known[:12])}{' …' if len(known) > 12 else ''}"
        else:
            message += f"; there are no {kind}s to choose from"
        super().__init__(message)
        self.name = name


class UserCodeError(UsageError):
    """The user's own code (an import-path MODEL's factory) raised: its traceback is shown under the line."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details


class CheckFailedError(EdgecnnError):
    """A numerical check between two stages failed."""

    exit_code = EXIT_FAILED_CHECK


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """Return up to three close matches of ``name`` among ``known``, quoted and joined."""
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if not matches:
        lowered = name.lower()
        matches = [k for k in known if lowered in k.lower()][:3]
    return " or ".join(f"'{m}'" for m in matches) or None


class DriftError(EdgecnnError):
    """Accuracy drift over the thresholds (the artifacts are written; the exit code says it); ``result``, the
    export's ExportResult when an export raised it."""

    exit_code = EXIT_DRIFT

    def __init__(self, message: str, result: object = None):
        super().__init__(message)
        self.result = result


class PartialExportError(EdgecnnError):
    """Some requested formats could not be made; the others are written and ``result`` (an ExportResult) says
    which failed and why (the manifest's ``format_status``)."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, result: object):
        super().__init__(message)
        self.result = result


class BenchError(EdgecnnError):
    """A benchmark could not run: unreachable device, refused key, no runtime, a model the runtime rejects."""


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """An error's first line (its type's name when it says nothing), cut at ``limit`` characters."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def _reason(error: BaseException) -> str | None:
    """What ``error``, raised while reading a file, says about the file; None when it is not about the file."""
    if isinstance(error, FileNotFoundError):
        return "does not exist"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(error, PermissionError):
        return "is not readable (permission denied)"
    if isinstance(error, UnicodeDecodeError):
        return f"is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"
    if type(error).__name__ == "UnidentifiedImageError":
        return "is not a readable image (PIL cannot identify it)"
    if isinstance(error, RecursionError):
        return "is nested too deeply to read"
    if type(error).__name__ == "DecompressionBombError":
        return f"is too large to decode safely (a decompression bomb?): {error}"
    text = " ".join(str(error).split())[:200] or type(error).__name__
    if isinstance(error, OSError):
        return f"cannot be read: {error.strerror or text}"
    if isinstance(error, (ValueError, EOFError)) or type(error).__module__.split(".")[0] in READER_PACKAGES:
        return f"is not valid: {text}"
    return None


@contextmanager
def reading(path: str | Path, what: str, fix: str = "") -> Iterator[None]:
    """Read a user's file: OSError, UnicodeDecodeError and the errors of PIL, onnx, ONNX Runtime, numpy and
    yaml become one :class:`UsageError` "``what`` ``path`` <problem>; ``fix``"; anything else propagates."""
    try:
        yield
    except EdgecnnError:
        raise
    except Exception as error:
        reason = _reason(error)
        if reason is None:
            raise
        raise UsageError(f"{what} {path} {reason}{'; ' + fix if fix else ''}") from None


def check_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path when it is a regular file; otherwise a UsageError saying what it is instead."""
    if not str(path).strip():  # Path('') is the current directory
        raise UsageError(f"the {what} is an empty name: give a file")
    path = Path(path)  # os.path's tests, unlike Path's, answer False for names the system refuses (too long)
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a directory, not a file")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise UsageError(
                f"{what} {path} is a broken symbolic link (to {os.readlink(path)}, missing or a loop): give the file "
                "itself"
            )
        where = "" if os.path.isabs(path) else f" (it is relative to {os.getcwd()})"
        raise UsageError(f"{what} {path} does not exist; check the path{where}")
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path} is not a regular file (a FIFO, socket or device): give a file")
    return path
