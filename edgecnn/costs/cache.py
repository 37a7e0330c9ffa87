"""A deterministic cache of zoo op costs: a candidate's costs depend only on its architecture and input size.

:func:`zoo_costs` answers ``(model, dtype, scaling)`` from memory, then from one JSON file per entry under
``<user cache dir>/op_costs/<version>/`` (:func:`edgecnn.files.cache_dir`), and only then reads the network on
the meta device (:func:`edgecnn.costs.torch_op_costs.zoo_op_costs`) and stores the answer. The version is a
digest of everything the costs are computed from — edgecnn's version, torch's and torchvision's, and the source
of the zoo, the ops and the cost rules — so an edit to any of them starts a fresh directory. Entries are written
through an exclusively created temporary file renamed into place; an entry that does not parse, or whose key is
not the one asked for, is ignored (and rewritten); a cache that cannot be written is no error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edgecnn.costs.op_costs import DTYPES, OpCost

FORMAT = 1  # bump when an entry's layout changes
_PACKAGE = Path(__file__).resolve().parents[1]
# The sources the costs are computed from: the zoo's architectures, custom ops, and the costing rules.
_SOURCES = ("models/*.py", "ops/*.py", "costs/op_costs.py", "costs/torch_op_costs.py", "costs/cache.py")

Entry = tuple[tuple[OpCost, ...], tuple[int, ...]]  # the op costs and the network's input size (C, H, W)
_memory: dict[str, Entry] = {}
_version: str | None = None


def cache_version() -> str:
    """A digest of everything a cached entry depends on (computed once per process)."""
    global _version
    if _version is None:
        from edgecnn import __version__

        digest = hashlib.sha256(f"format {FORMAT}; edgecnn {__version__}".encode())
        for package in ("torch", "torchvision"):
            try:
                digest.update(f"; {package} {version(package)}".encode())
            except PackageNotFoundError:
                digest.update(f"; no {package}".encode())
        for path in sorted(p for pattern in _SOURCES for p in _PACKAGE.glob(pattern)):
            digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes())
        _version = digest.hexdigest()[:16]
    return _version


def entry_key(model: str, dtype: str, scaling: dict[str, Any]) -> str:
    """The canonical key of one entry (JSON: model, dtype, scaling sorted by name)."""
    return json.dumps({"model": model, "dtype": dtype, "scaling": dict(sorted(scaling.items()))}, sort_keys=True)


def entry_path(key: str, root: Path) -> Path:
    """Where the entry ``key`` lives under the cache root ``root``."""
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    return root / "op_costs" / cache_version() / f"{name}.json"


def encode(key: str, entry: Entry) -> str:
    """An entry as JSON text: its key, the input size and one row per op (its name first)."""
    costs, input_size = entry
    rows = [[cost.name, *cost.to_row()] for cost in costs]
    return json.dumps({"key": key, "input_size": list(input_size), "costs": rows})


def decode(text: str, key: str) -> Entry:
    """The inverse of :func:`encode`; ValueError when the text is not a well-formed entry for ``key``."""
    try:
        data = json.loads(text)
        if data["key"] != key:
            raise ValueError("an entry of another key")
        input_size = tuple(data["input_size"])
        if not input_size or not all(isinstance(d, int) and d > 0 for d in input_size):
            raise ValueError(f"bad input size {input_size!r}")
        costs = tuple(OpCost.from_row(row[1:], str(row[0])) for row in data["costs"])
    except (KeyError, TypeError, IndexError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"not an op-cost cache entry: {error}") from None
    if not costs:
        raise ValueError("an entry without op costs")
    return costs, input_size


def _read(path: Path, key: str) -> Entry | None:
    try:
        return decode(path.read_text(encoding="utf-8"), key)
    except (OSError, ValueError, UnicodeDecodeError):  # absent, unreadable or corrupt: computed afresh
        return None


def _write(path: Path, key: str, entry: Entry) -> None:
    from edgecnn.errors import UsageError
    from edgecnn.files import atomic_write_text

    with contextlib.suppress(OSError, UsageError):  # a read-only or full disk: the cache is no error
        atomic_write_text(path, encode(key, entry))


def compute(model: str, dtype: str, scaling: dict[str, Any]) -> Entry:
    """The entry read afresh on the meta device (no cache)."""
    from edgecnn.costs.torch_op_costs import zoo_op_costs

    costs, network = zoo_op_costs(model, dtype, **scaling)
    return tuple(costs), tuple(int(d) for d in network.input_size)


def zoo_costs(model: str, dtype: str = "fp32", **scaling: Any) -> tuple[list[OpCost], tuple[int, ...]]:
    """The op costs of zoo ``model`` at ``scaling`` (every op at ``dtype``) and its input size (C, H, W):
    from memory, the disk cache, or computed once and stored."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    from edgecnn.files import cache_dir

    key = entry_key(model, dtype, scaling)
    entry = _memory.get(key)
    if entry is None:
        root = cache_dir()
        path = entry_path(key, root) if root is not None else None
        entry = _read(path, key) if path is not None else None
        if entry is None:
            entry = compute(model, dtype, scaling)
            if path is not None:
                _write(path, key, entry)
        _memory[key] = entry
    return list(entry[0]), entry[1]


def clear_memory() -> None:
    """Forget the in-memory entries (the disk cache stays)."""
    _memory.clear()
