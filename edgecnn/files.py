"""Writing files so that a crash or Ctrl-C never leaves a half-written one (standard library only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _atomic_write(path: Path, mode: str, write: Callable[[IO[Any]], None]) -> Path:
    """Write through a temporary file created exclusively beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that no reader ever sees half of it."""
    return _atomic_write(path, "w", lambda handle: handle.write(text))


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy ``src``'s bytes to ``dst`` so that no reader ever sees half of them."""

    def copy(handle: IO[bytes]) -> None:
        with Path(src).open("rb") as source:
            shutil.copyfileobj(source, handle)

    return _atomic_write(dst, "wb", copy)
