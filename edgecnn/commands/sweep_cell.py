"""What a sweep's Ray tasks run: one cell's export (the same ``export()`` as the CLI) and its bench (``bench()``).

Both return plain dicts and never raise for a user error: an EdgecnnError is the record's status, message and exit
code, so one bad cell never ends the sweep. Only a dying worker escapes, and Ray retries it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from edgecnn.errors import EXIT_DRIFT, EXIT_INTERNAL, EXIT_PARTIAL, EdgecnnError
from edgecnn.files import run_temp_dir

STATUS = {0: "ok", EXIT_DRIFT: "drift", EXIT_PARTIAL: "partial", EXIT_INTERNAL: "crashed"}  # else: "error"
INT8_FIRST = ("int8_onnx", "int8_ort", "int8_tflite", "fp32_onnx", "fp32_ort", "fp32_tflite")


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs as one space), at most ``limit`` characters."""
    return " ".join(text.split())[:limit]


def figures(manifest: dict[str, Any], out: Path) -> dict[str, Any]:
    """The manifest's headline figures: shipped artifact and size, predicted latency, int8 agreement, pass/fail."""
    artifacts = manifest.get("artifacts") or {}
    shipped = next((k for k in INT8_FIRST if k in artifacts), None)
    agreement = manifest.get("agreement") or {}
    drift = manifest.get("drift") or {}
    final = drift.get("final") or {}
    found: dict[str, Any] = {
        "artifact": shipped,
        "size_mb": round(artifacts[shipped]["bytes"] / 1e6, 4) if shipped else None,
        "int8_agreement": agreement.get("top1"),
        "cosine": agreement.get("cosine"),
        "task_score": final.get("score"),
        "fp32_accuracy": agreement.get("fp32_accuracy"),
        "int8_accuracy": agreement.get("int8_accuracy"),
        "passed": drift.get("passed"),
        "labels": (manifest.get("calibration") or {}).get("labels"),
        "predicted_ms": None,
    }
    onnx = next((k for k in ("int8_onnx", "fp32_onnx") if k in artifacts), None)
    if onnx:
        from edgecnn.analysis.prediction import predict_model

        try:
            profile = manifest["profile"]["name"]
            found["predicted_ms"] = predict_model(str(out / artifacts[onnx]["path"]), profile, None, {})["predicted_ms"]
        except Exception as error:  # a graph the latency model cannot read: the cell stands, without a prediction
            found["prediction_error"] = one_line(f"{type(error).__name__}: {error}")
    return found


def run_cell(
    model: str,
    profile: str,
    scaling: dict[str, Any],
    options: dict[str, Any],
    out: str,
    search: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Export one cell into ``out`` (export's own atomic output), in a working and temporary directory of its own;
    an import-path MODEL is found on this worker's sys.path, then in the ``search`` folders (the spec's)."""
    from edgecnn.errors import DriftError, PartialExportError
    from edgecnn.pipeline.export import export

    started = time.perf_counter()
    record: dict[str, Any] = {"status": "ok", "exit_code": 0, "message": ""}
    manifest = None
    with run_temp_dir() as work:
        here, path = os.getcwd(), list(sys.path)
        os.chdir(work)
        sys.path.extend(folder for folder in search if folder not in sys.path)  # last: they shadow nothing
        try:
            manifest = export(model, profile=profile, out=out, force=True, **options, **scaling).manifest
        except EdgecnnError as error:
            code = error.exit_code
            record.update(status=STATUS.get(code, "error"), exit_code=code, message=one_line(str(error)))
            if isinstance(error, PartialExportError):
                manifest = error.result.manifest  # type: ignore[attr-defined]
            elif isinstance(error, DriftError) and (Path(out) / "manifest.json").is_file():
                import json

                manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
        except Exception as error:  # a bug of edgecnn's or a library's: this cell's record, not the sweep's end
            message = one_line(f"internal error: {type(error).__name__}: {error}")
            record.update(status="crashed", exit_code=EXIT_INTERNAL, message=message)
        finally:
            os.chdir(here)
            sys.path[:] = path
    if manifest is not None:
        record.update(figures(manifest, Path(out)))
        record["artifacts"] = {k: str(Path(out) / v["path"]) for k, v in manifest.get("artifacts", {}).items()}
    record.update(worker_pid=os.getpid(), node=socket.gethostname(), export_s=round(time.perf_counter() - started, 2))
    return record


def run_bench(paths: list[str], host: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    """Time ``paths`` with ``bench()`` here or on ``host`` (its SSH options); a BenchError is the result's error."""
    from edgecnn.bench.api import bench

    started = time.perf_counter()
    options = {k: v for k, v in settings.items() if k != "artifacts"}
    where = dict(host or {})
    try:
        results = bench(paths, **where, **options)
    except EdgecnnError as error:
        return {"host": where.get("host", "local"), "error": one_line(str(error)), "exit_code": error.exit_code}
    keep = ("artifact", "p50_ms", "p90_ms", "min_ms", "mean_ms", "runs", "peak_rss_mb", "runtime", "delegate")
    return {
        "host": where.get("host", "local"),
        "results": [{k: r.get(k) for k in keep} for r in results],
        "p50_ms": results[0].get("p50_ms"),
        "bench_s": round(time.perf_counter() - started, 2),
    }
