"""``edgecnn sweep plan FAMILY --profile P --measure``: the planner's choice checked by measurement.

The planner's best candidates around the budget become a sweep (the same ``sweep()``: export, then bench here or
on ``host``); the check is whether the choice is still the best expected top-1 among the candidates whose
*measured* latency fits the budget. The result goes to DIR/plan-check.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.commands.sweep import sweep
from edgecnn.errors import UsageError
from edgecnn.files import atomic_write_text, json_text

REACH = 1.5  # candidates predicted up to this × the budget are measured: the check looks past the budget too


def candidates(decision: Any, top: int) -> list[Any]:
    """The ``top`` candidates of best expected top-1 predicted within REACH × the budget, the chosen one always."""
    pool = [c for c in decision.candidates if c.predicted_ms <= decision.budget_ms * REACH]
    picked = sorted(pool, key=lambda c: (-c.expected_top1, c.predicted_ms))[:top]
    if decision.chosen not in picked:
        picked.append(decision.chosen)
    return sorted(picked, key=lambda c: c.predicted_ms)


def plan_check(
    family: str,
    profile: str,
    out: str | Path,
    budget_ms: float | None = None,
    top: int = 3,
    host: dict[str, Any] | None = None,
    calib: str | None = None,
    runs: int = 30,
    **sweep_options: Any,
) -> dict[str, Any]:
    """Plan FAMILY for PROFILE, export and bench the candidates around the budget, and compare with the choice."""
    from edgecnn.analysis.planner import plan

    decision = plan(family, profile, budget_ms, "int8")
    picked = candidates(decision, top)
    export: dict[str, Any] = {"formats": "onnx"}
    if calib:
        export["calib"] = str(Path(calib).resolve())
    spec = {
        "models": [{"name": c.model, **c.config} for c in picked],
        "profiles": [profile],
        "export": export,
        "bench": {"artifacts": ["int8_onnx"], "hosts": [host] if host else [], "runs": runs},
    }
    records = sweep(spec, out, **sweep_options)
    rows = []
    for candidate in picked:
        record = next((r for r in records if r["model"] == candidate.model and r["scaling"] == candidate.config), None)
        if record is None:
            raise UsageError(f"the sweep recorded no cell for candidate {candidate.model} {candidate.config}")
        measured = record.get("bench_p50_ms")
        rows.append(
            {
                **{k: v for k, v in candidate.to_dict().items() if k in ("label", "predicted_ms", "expected_top1")},
                "chosen": candidate == decision.chosen,
                "fits_predicted": candidate.fits,
                "measured_ms": measured,
                "fits_measured": measured is not None and measured <= decision.budget_ms,
                "status": record["status"],
                "message": record["message"],
            }
        )
    fitting = [r for r in rows if r["fits_measured"]]
    best = max(fitting, key=lambda r: r["expected_top1"], default=None)
    report = {
        "family": decision.family,
        "profile": profile,
        "budget_ms": decision.budget_ms,
        "measured_on": host["host"] if host else "this host",
        "chosen": decision.chosen.label,
        "best_measured": best["label"] if best else None,
        "confirmed": best is not None and best["chosen"],
        "candidates": rows,
    }
    atomic_write_text(Path(out) / "plan-check.json", json_text(report, indent=2) + "\n")
    return report
