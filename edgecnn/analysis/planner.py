"""Pick the scaling (α, ρ, φ, depth) of a family that fits a device's latency and memory budgets best.

Every candidate of the family's grid is costed on the meta device (no weights, no export; the costs are cached
by :mod:`edgecnn.costs.cache`), its latency predicted with the profile's latency model and its memory estimated
(weights plus the largest operator's activations); its expected ImageNet top-1 comes from the published tables
(:mod:`edgecnn.models.accuracy`). The choice is the best expected top-1 among the candidates within both budgets,
ties to the faster one; candidates whose accuracy is only extrapolated from published points are chosen only when
nothing published or interpolated fits. A candidate fits the latency budget when its prediction leaves
``headroom`` of it free (5% by default): a prediction is an estimate, and a choice predicted 1% under
the budget measures over it about half the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.config.profiles import MAX_BUDGET_MS
from edgecnn.costs.op_costs import DTYPES, summarize
from edgecnn.errors import UnknownNameError, UsageError
from edgecnn.models.accuracy import Expectation
from edgecnn.models.knobs import RESOLUTION
from edgecnn.models.registry import get_family, plannable_families, unalias

DEFAULT_HEADROOM = 0.05  # x86-avx2's held-out prediction error: MAPE 3–4% (benchmarks/latency_fidelity.py)

# The families with a planner grid (each declares its grid and accuracy where it registers its models).
PLANNABLE = plannable_families()


@dataclass
class Candidate:
    """One configuration: the zoo model and scaling, its prediction, memory and expected accuracy."""

    model: str
    config: dict[str, float]  # the scaling create_model takes
    resolution: int = 0
    predicted_ms: float = 0.0
    memory_mb: float = 0.0
    macs_m: float = 0.0
    expected_top1: float = 0.0
    accuracy: str = ""  # published | interpolated | extrapolated
    fits: bool = False
    source: str = field(default="", repr=False)  # where expected_top1 was published (in Plan.sources)

    @property
    def label(self) -> str:
        """``mobilenet_v1 width=0.5 resolution=160``, ``efficientnet phi=1.5 (259²)``."""
        words = [self.model, *(f"{k}={v:g}" for k, v in self.config.items())]
        return " ".join(words) + ("" if RESOLUTION.name in self.config else f" ({self.resolution}²)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"label": self.label, **{k: v for k, v in asdict(self).items() if k != "source"}}


@dataclass
class Plan:
    """The planner's decision and every candidate it weighed."""

    family: str
    profile: str
    dtype: str
    budget_ms: float
    memory_budget_mb: float | None
    chosen: Candidate
    runner_up: Candidate | None
    candidates: list[Candidate] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    headroom: float = 0.0

    @property
    def limit_ms(self) -> float:
        """The largest prediction that fits: the budget less the headroom."""
        return self.budget_ms * (1 - self.headroom)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``chosen`` has the config, ``predicted_ms`` and ``expected_top1`` at its top level."""
        return {
            "family": self.family,
            "profile": self.profile,
            "dtype": self.dtype,
            "budget_ms": self.budget_ms,
            "headroom": self.headroom,
            "limit_ms": round(self.limit_ms, 3),
            "memory_budget_mb": self.memory_budget_mb,
            "chosen": {**self.chosen.to_dict(), **self.chosen.config},
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "accuracy_sources": self.sources,
        }


def family_of(name: str) -> str | None:
    """The planner family for a model spec: a plannable family, or the model one stands for ('mobilenet_v1' →
    'mobilenet'); None when it plans nothing."""
    if name in PLANNABLE:
        return name
    return next((family for family in PLANNABLE if unalias(family) == name), None)


def evaluate(
    model: str,
    config: dict[str, float],
    profile: Any,
    dtype: str,
    accuracy: Callable[[str, dict[str, float], float], Expectation],
) -> Candidate:
    """Cost one candidate on the meta device (or from the op-cost cache), predict it on ``profile``, expect its
    top-1 with ``accuracy`` (its family's: model, scaling, MACs → Expectation)."""
    from edgecnn.costs.cache import zoo_costs

    costs, input_size = zoo_costs(model, dtype, **config)
    totals = summarize(costs)
    prediction = profile.latency.predict(costs)
    expectation = accuracy(model, config, totals["macs"])
    return Candidate(
        model,
        dict(config),
        input_size[-1],
        round(prediction.total_ms, 3),
        round((totals["weight_bytes"] + totals["peak_activation_bytes"]) / 1e6, 2),
        round(totals["macs"] / 1e6, 1),
        expectation.top1,
        expectation.method,
        source=expectation.source,
    )


def _nothing_fits_fix(candidates: list[Any], headroom: float, memory: float | None) -> str:
    """What would let a candidate fit: the memory budget every candidate exceeds, else a latency budget."""
    smallest = min(c.memory_mb for c in candidates)
    if memory is not None and smallest > memory:
        return f"give --memory-mb {math.ceil(smallest)} or more (the smallest candidate's), or plan a smaller family"
    within = [c for c in candidates if memory is None or c.memory_mb <= memory]
    needed = _rounded_up(min(c.predicted_ms for c in within) / (1 - headroom))
    return (
        f"give --budget-ms {needed:g} or more (the fastest prediction within the memory budget, with the "
        "headroom), or a faster profile"
    )


def _rounded_up(value: float, digits: int = 3) -> float:
    """``value`` rounded up to ``digits`` significant digits, a hair above it so that the budget said fits
    (rounded down, 2.2903 was said as 2.29, which then failed with the same advice)."""
    step = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return round(math.ceil(value * (1 + 1e-9) / step) * step, 12)


def plan(
    family: str,
    profile: str,
    budget_ms: float | None = None,
    dtype: str = "int8",
    memory_budget_mb: float | None = None,
    on_candidate: Callable[[], None] | None = None,
    headroom: float = DEFAULT_HEADROOM,
) -> Plan:
    """Evaluate the family's grid on ``profile`` and choose: a candidate fits when its prediction is within
    ``budget × (1 − headroom)`` and its memory within the memory budget; raises UsageError when nothing fits."""
    from edgecnn.config.profiles import load_profile

    key = family_of(family)
    if key is None:
        raise UnknownNameError("planner family", family, PLANNABLE)
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    if not 0 <= headroom < 1:
        raise UsageError(f"--headroom must be in [0, 1), not {headroom:g}")
    for option, value in (("--budget-ms", budget_ms), ("--memory-mb", memory_budget_mb)):
        if value is not None and not 0 < value < math.inf:  # 0 would read as "no budget", NaN fits nothing
            raise UsageError(f"{option} must be a positive finite number, got {value:g}")
    if budget_ms is not None and budget_ms > MAX_BUDGET_MS:  # beyond it the chart's log axis overflows
        raise UsageError(
            f"--budget-ms must be at most {MAX_BUDGET_MS:g} (an hour per image), got {budget_ms:g}: is it in ms?"
        )
    spec = load_profile(profile)
    budget = budget_ms if budget_ms is not None else spec.latency_budget_ms
    if budget is None or budget <= 0:
        raise UsageError(f"no latency budget: pass --budget-ms or set latency_budget_ms in {spec.path}")
    memory = memory_budget_mb if memory_budget_mb is not None else spec.memory_budget_mb
    declared = get_family(key)
    candidates = []
    for model, config in declared.grid:
        candidate = evaluate(model, config, spec, dtype, declared.accuracy)
        fits_latency = candidate.predicted_ms <= budget * (1 - headroom)
        candidate.fits = fits_latency and (memory is None or candidate.memory_mb <= memory)
        candidates.append(candidate)
        if on_candidate:
            on_candidate()
    fitting = sorted(
        (c for c in candidates if c.fits),
        key=lambda c: (c.accuracy != "extrapolated", c.expected_top1, -c.predicted_ms),
        reverse=True,
    )
    if not fitting:
        fastest = min(candidates, key=lambda c: c.predicted_ms)
        memory_note = f" and {memory:g} MB" if memory is not None else ""
        margin = f" with {headroom * 100:g}% headroom" if headroom else ""
        raise UsageError(
            f"no {key} configuration fits {budget:g} ms{margin}{memory_note} on {spec.name} ({dtype}): the fastest, "
            f"{fastest.label}, is predicted at {fastest.predicted_ms:.1f} ms ({fastest.memory_mb:.0f} MB): "
            + _nothing_fits_fix(candidates, headroom, memory)
        )
    sources = sorted({c.source for c in candidates})
    return Plan(
        key,
        spec.name,
        dtype,
        budget,
        memory,
        fitting[0],
        fitting[1] if len(fitting) > 1 else None,
        candidates,
        sources,
        headroom,
    )


def grid_size(family: str) -> int:
    """How many candidates ``family`` has (for progress bars)."""
    key = family_of(family)
    return len(get_family(key).grid) if key else 0
