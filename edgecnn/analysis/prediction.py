"""``edgecnn predict``: a network's predicted latency on a profile, per op class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.costs.op_costs import OpCost, onnx_op_costs, summarize
from edgecnn.errors import UsageError, check_file
from edgecnn.formats import format_of


def _costs(model: str, dtype: str | None, scaling: dict[str, Any]) -> list[OpCost]:
    given = {k: v for k, v in scaling.items() if v is not None}
    fmt = format_of(model)
    if fmt is not None and fmt.name != "onnx":
        raise UsageError(f"{model} is a .{fmt.name} file; predict costs ONNX graphs: give the .onnx of the same export")
    if fmt is not None or Path(model).is_file():
        if given:
            raise UsageError(f"scaling options ({', '.join(given)}) apply to zoo models, not to {model}")
        check_file(model, "model file")
        from edgecnn.runtime.loader import trial_run

        try:
            costs = onnx_op_costs(Path(model), dtype)
        except UsageError:
            raise
        except Exception as error:  # onnx's DecodeError and friends
            raise UsageError(
                f"cannot read {model} as ONNX: {str(error).splitlines()[0] if str(error) else error}"
            ) from None
        fix = "check the model in ONNX Runtime: a graph it cannot run has no latency to predict"
        trial_run(model, "ONNX model", fix)
        return costs
    if ":" in model:  # torchvision:NAME, timm:NAME, package.module:factory — not in the zoo's cost tables
        raise UsageError(
            f"predict takes a zoo name or an .onnx file, not {model}: export it first (edgecnn export {model} "
            "--format onnx --no-quantize --out DIR) and predict DIR/model.fp32.onnx"
        )
    from edgecnn.costs.cache import zoo_costs

    return zoo_costs(model, dtype or "fp32", **given)[0]


def predict_model(model: str, profile: str, dtype: str | None = None, scaling: dict[str, Any] | None = None) -> dict:
    """The prediction report of ``model`` (an .onnx path or a zoo name) on ``profile``."""
    from edgecnn.config.profiles import load_profile

    spec = load_profile(profile)
    costs = _costs(model, dtype, scaling or {})
    if not costs:
        raise UsageError(f"{model} has no operators to cost")
    prediction = spec.latency.predict(costs)
    counts: dict[str, int] = {}
    for cost in costs:
        counts[cost.op_class] = counts.get(cost.op_class, 0) + 1
    totals = summarize(costs)
    dtypes = sorted({c.dtype for c in costs})
    return {
        "model": model,
        "profile": spec.name,
        "runtime": spec.latency.runtime,
        "threads": spec.latency.threads,
        "dtype": "+".join(dtypes),
        "predicted_ms": round(prediction.total_ms, 3),
        "by_class": {k: {"ops": counts[k], "ms": round(v, 3)} for k, v in prediction.by_class_ms.items()},
        "compute_bound_ops": prediction.compute_bound,
        "memory_bound_ops": prediction.memory_bound,
        "macs_m": round(totals["macs"] / 1e6, 2),
        "memory_mb": round((totals["weight_bytes"] + totals["peak_activation_bytes"]) / 1e6, 2),
    }
