"""The error hierarchy of edgecnn and the exit codes the CLI maps them to.

Every mistake a user can make (an unknown model name, a missing file, a bad
option value) raises an :class:`EdgecnnError`; the CLI prints its message as
one line and exits with its ``exit_code``. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_USAGE = 1  # bad input or usage
EXIT_FAILED_CHECK = 2  # a numerical check of the pipeline failed
EXIT_DRIFT = 3  # accuracy drift over the threshold


class EdgecnnError(Exception):
    """A user-facing error: its message is printed as one line, no traceback."""

    exit_code = EXIT_USAGE


class UsageError(EdgecnnError):
    """Bad input: unknown names, bad option values, unreadable files."""


class UnknownNameError(UsageError):
    """A name that is not in a registry, with a did-you-mean suggestion."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        hint = did_you_mean(name, known)
        message = f"unknown {kind} '{name}'"
        if hint:
            message += f"; did you mean {hint}?"
        else:
            message += f"; known: {', '.join(known[:12])}{' …' if len(known) > 12 else ''}"
        super().__init__(message)
        self.name = name


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
    """Accuracy drift over the thresholds (the artifacts are written; the exit code says it)."""

    exit_code = EXIT_DRIFT


class BenchError(EdgecnnError):
    """A benchmark could not run: unreachable device, refused key, no runtime, a model the runtime rejects."""
