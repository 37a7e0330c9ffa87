"""Per-tensor int8 weights for a per-channel target, when they are faster there and as good: measured where the
target's kernels are this host's and drift is judged.

ONNX Runtime's x86 int8 graphs run slower with one weight scale per output channel than one per tensor: 4–12% at 32²
on MobileNetV1 and V2, ResNet-18 and EfficientNet-B0 here (same ranges; interleaved rounds) — a per-call cost of each
convolution, 0–1.4% of the same graphs at 224² (``benchmarks/weight_granularity_latency.py``). After cross-layer
equalization per-tensor weights are often as good as per-channel ones — and sometimes not: on the digits MobileNetV1s
they still cost 3–10 dB of output SQNR, nearly all of it in the few layers equalization cannot even out
(``weight_spread``). So for a per-channel target whose kernels are this host's, the export also quantizes an
equalized per-tensor twin with the same float op types and, when some layers' spread is wide, a mixed twin (those
layers per channel, the rest per tensor), times them all, and ships the fastest twin that is faster than the
per-channel graph by more than :data:`MARGIN`, whose task score on the drift samples (top-1 agreement, mIoU, …) is
not lower, whose SQNR is at most :data:`SQNR_SLACK_DB` below and — when the export has the moved images' judge
(``range_choice.FlipJudge``: a classifier whose drift is judged, its ranges chosen or pinned by ``--method``) — which
changes no more of fp32's top-1 decisions on the moved calibration images than the per-channel graph (the drift
samples alone are few and mostly far from a tie); else the per-channel graph. All are made with the export's method
(the recipes' min-max, or what ``--method`` pins): the range choice comes after, on the graph this choice ships, and
a twin it moves off min-max must then be as good at its new ranges as the per-channel graph is at them
(``quantize.quantize_for_target``).
The choice is the ORT artifacts' (`.onnx`, `.ort`); every other target keeps its profile's granularity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.analysis.metrics import sign_p
from edgecnn.pipeline.weight_spread import SPREAD_DB

if TYPE_CHECKING:
    from edgecnn.pipeline.range_choice import FlipJudge

MARGIN = 0.03  # the twin must be faster by more than this fraction: identical graphs time ≤ 1.3% apart here at
# 32² (DenseNet-121: up to 3.7%, more than 3% once in 16; `benchmarks/timing_protocol.py`)
SQNR_SLACK_DB = 1.0  # the twin's output SQNR may be this much below the per-channel graph's (noise ×1.26)

Judge = Callable[[Path], dict[str, Any]]  # int8 model → its drift verdict (``score``, ``sqnr_db``, ``passed``)


def accept(channel: dict[str, Any], tensor: dict[str, Any]) -> str | None:
    """Why a twin (``tensor``: its ``min_ms`` and verdict figures) may not replace the per-channel graph
    (``channel``), or None when it may."""
    if not tensor["min_ms"] < channel["min_ms"] * (1 - MARGIN):
        return f"not faster by more than {MARGIN:.0%}"
    if tensor["score"] < channel["score"]:
        return "a lower task score"
    if not tensor["sqnr_db"] >= channel["sqnr_db"] - SQNR_SLACK_DB:  # NaN too
        return f"more than {SQNR_SLACK_DB:g} dB less output SQNR"
    if channel["passed"] and not tensor["passed"]:
        return "a drift threshold missed"
    if tensor.get("moved_wrong", 0) > channel.get("moved_wrong", 0):
        return "more top-1 decisions changed on the moved calibration images"
    return None


def pick(tries: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The graph the rule ships of ``tries`` (``per_channel`` and its twins' figures): the fastest twin
    :func:`accept` lets replace the per-channel graph, else ``per_channel``; and why each other twin was refused."""
    refused = {label: accept(tries["per_channel"], t) for label, t in tries.items() if label != "per_channel"}
    accepted = sorted((tries[label]["min_ms"], label) for label, why in refused.items() if why is None)
    chosen = accepted[0][1] if accepted else "per_channel"
    return chosen, {label: why for label, why in refused.items() if why is not None}


def _figures(verdict: dict[str, Any], min_ms: float) -> dict[str, Any]:
    return {
        "min_ms": min_ms,
        "score": round(float(verdict["score"]), 4),
        "sqnr_db": round(float(verdict["sqnr_db"]), 2),
        "passed": bool(verdict["passed"]),
    }


def _moved_images(flips: FlipJudge, paths: dict[str, Path], tries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Count each graph's moved images whose top-1 changes into its ``tries`` figures (``moved_wrong``); per twin,
    its discordant split with the per-channel graph and the sign-test p."""
    wrong = {label: flips(path) for label, path in paths.items()}
    for label, figures in tries.items():
        figures["moved_wrong"] = len(wrong[label])
    splits: dict[str, Any] = {"images": len(flips.images)}
    for label in paths:
        if label != "per_channel":
            only_channel = len(wrong["per_channel"] - wrong[label])
            only_twin = len(wrong[label] - wrong["per_channel"])
            splits[label] = {"only_per_channel_wrong": only_channel, "only_twin_wrong": only_twin}
            splits[label]["p"] = sign_p(only_channel, only_twin)
    return splits


def choose_weight_granularity(
    channel: Path, twins: dict[str, Path], judge: Judge, flips: FlipJudge | None = None
) -> tuple[str, dict[str, Any]]:
    """Which graph ships: the per-channel one at ``channel`` or the fastest of ``twins`` (``per_tensor``, and the
    ``mixed`` one when made) that :func:`accept` lets replace it; and the record of the choice (every graph's time
    and figures — with ``flips``, the moved images each gets wrong —, the rule, and why twins were refused)."""
    from edgecnn.pipeline.float_choice import BUDGET_S, PROTOCOL, ROUNDS, RUNS  # one protocol for the choices
    from edgecnn.runtime.host_timing import interleaved_min_ms

    paths = {"per_channel": channel, **twins}
    times = interleaved_min_ms(paths, ROUNDS, RUNS, BUDGET_S)
    tries = {label: _figures(judge(path), times[label]) for label, path in paths.items()}
    moved = {"moved_images": _moved_images(flips, paths, tries)} if flips is not None else {}
    chosen, refused = pick(tries)
    record: dict[str, Any] = {
        "chosen": chosen,
        "basis": f"measured on this host: ORT, {PROTOCOL}; figures on the drift samples"
        + (" and the moved calibration images (exact QDQ)" if moved else ""),
        "rule": f"the fastest twin (per tensor, equalized; mixed: per channel where a layer's spread is above "
        f"{SPREAD_DB:g} dB) faster by > {MARGIN:.0%}, task score not lower, SQNR within {SQNR_SLACK_DB:g} dB"
        + (", no more moved images' top-1 changed (the split's p is for reading, not a margin)" if moved else "")
        + "; else per channel",
        **moved,
        "applies_to": "the ORT artifacts (.onnx, .ort)",
        "tries": tries,
    }
    if chosen == "per_channel":
        record["kept_per_channel_because"] = "; ".join(
            f"{label.replace('_', ' ')}: {why}" for label, why in refused.items()
        )
    return chosen, record
