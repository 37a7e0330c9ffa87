"""Run the benchmarks and regenerate BENCHMARKS.md: ``python benchmarks/run.py [name ...]``.

Every ``benchmarks/*.py`` script with a ``main(argv)`` is a benchmark (``common.py`` and this file
excepted). A benchmark that fails is reported, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402  (needs BENCH_DIR on sys.path)

NOT_BENCHMARKS = {"common", "run"}
MARKDOWN = common.REPO_ROOT / "BENCHMARKS.md"


def benchmark_paths() -> dict[str, Path]:
    """The candidate benchmark scripts by name, sorted."""
    paths = sorted(BENCH_DIR.glob("*.py"))
    return {p.stem: p for p in paths if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_")}


def load(name: str, path: Path) -> ModuleType:
    """Import a benchmark script from its file path under its own name."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_one(name: str, path: Path) -> bool:
    """Import and run one benchmark; True if it succeeded (or is not a benchmark)."""
    start = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        module = load(name, path)
        if not callable(getattr(module, "main", None)):
            print(f"== {name}: no main(), skipped", flush=True)
            return True
        status = module.main([])
    except SystemExit as exit_:
        status = exit_.code
    except Exception:
        traceback.print_exc()
        status = 1
    ok = status in (None, 0)
    outcome = "ok" if ok else f"FAILED (status {status})"
    print(f"== {name}: {outcome} in {time.perf_counter() - start:.1f} s", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default), then rewrite BENCHMARKS.md."""
    names = [n.removesuffix(".py") for n in (sys.argv[1:] if argv is None else argv)]
    available = benchmark_paths()
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    selected = names or list(available)
    failed = [name for name in selected if not run_one(name, available[name])]
    common.atomic_write_text(MARKDOWN, common.render_markdown())
    print(f"wrote {MARKDOWN}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
