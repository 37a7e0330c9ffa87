"""A roofline latency model per device profile, and its fit to measured latencies.

For every operator (:class:`~edgecnn.costs.op_costs.OpCost`) the model takes the larger of its compute
time, ``work / throughput[op class, dtype]``, and its memory time, ``bytes / bandwidth[dtype]``, and adds a
per-operator overhead (kernel dispatch, threading). A network's latency is the sum over its operators.

SIMD kernels compute a MAC operator's output channels a vector register at a time, so a partial register
costs a full one: the work is counted with the channels rounded up to the profile's ``vector_bytes`` /
element size (AVX2: 8 fp32 or 32 int8 channels; NEON: 4 or 16; :func:`effective_work`). On this host that
is what makes int8 MobileNetV1 α=0.25 (8–32 channels in its early layers) predictable.

:func:`fit` finds the coefficients from measured networks by non-negative least squares on relative error:
which term of the max applies to each operator is decided by the current coefficients, and the fit is
repeated until that assignment settles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgecnn.costs.op_costs import DTYPES, ELEMENT_BYTES, MAC_CLASSES, OP_CLASSES, OpCost

_UNFITTED = 1e6  # Gop/s given to an op class the fit found free; it keeps YAML finite


def channel_block(vector_bytes: int, dtype: str) -> int:
    """Channels one SIMD register holds at ``dtype`` (1: no rounding)."""
    return max(1, vector_bytes // ELEMENT_BYTES[dtype])


def effective_work(cost: OpCost, block: int = 1) -> float:
    """The work a SIMD kernel does: a MAC operator's output channels rounded up to a multiple of ``block``."""
    if block <= 1 or cost.op_class not in MAC_CLASSES or cost.channels <= 0:
        return cost.work
    return cost.work * (-(-cost.channels // block) * block) / cost.channels


@dataclass(frozen=True)
class Coefficients:
    """The latency coefficients of one dtype: throughput per op class (G MAC or elements per second),
    memory bandwidth (GB/s), per-operator overhead (µs), and what they were fitted to."""

    throughput_gops: dict[str, float]
    bandwidth_gbps: float
    overhead_us: float
    fitted_to: tuple[dict[str, Any], ...] = ()  # the measurements ({source, model, config, ms}) behind them

    def op_ms(self, cost: OpCost, block: int = 1) -> tuple[float, bool]:
        """Milliseconds of one operator (channels tiled by ``block``), and whether its compute (not memory)
        time bounds it."""
        compute = effective_work(cost, block) / self.throughput_gops[cost.op_class] * 1e-6
        memory = cost.bytes / self.bandwidth_gbps * 1e-6
        return max(compute, memory) + self.overhead_us * 1e-3, compute >= memory

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (``latency.<dtype>`` of a profile)."""
        return {
            "throughput_gops": {c: _round(self.throughput_gops[c]) for c in OP_CLASSES},
            "bandwidth_gbps": _round(self.bandwidth_gbps),
            "overhead_us": _round(self.overhead_us),
            "fitted_to": [dict(m) for m in self.fitted_to],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Coefficients:
        """From the (validated) YAML form."""
        return cls(
            {c: float(v) for c, v in data["throughput_gops"].items()},
            float(data["bandwidth_gbps"]),
            float(data["overhead_us"]),
            tuple(data.get("fitted_to") or ()),
        )


@dataclass(frozen=True)
class Prediction:
    """A predicted latency: total, per op class (overheads included), operators by bound."""

    total_ms: float
    by_class_ms: dict[str, float]
    compute_bound: int
    memory_bound: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "predicted_ms": round(self.total_ms, 3),
            "by_class_ms": {k: round(v, 3) for k, v in self.by_class_ms.items()},
            "compute_bound_ops": self.compute_bound,
            "memory_bound_ops": self.memory_bound,
        }


@dataclass(frozen=True)
class LatencyModel:
    """Coefficients per dtype for one runtime at one thread count, on a CPU whose SIMD registers hold
    ``vector_bytes`` (1: no channel tiling)."""

    runtime: str
    threads: int
    coefficients: dict[str, Coefficients] = field(default_factory=dict)
    vector_bytes: int = 1

    def predict(self, costs: Iterable[OpCost]) -> Prediction:
        """The predicted latency of a network's operators (each at its own dtype)."""
        by_class: dict[str, float] = {}
        bound = [0, 0]
        for cost in costs:
            if cost.dtype not in self.coefficients:
                from edgecnn.errors import UsageError

                raise UsageError(f"the latency model has no {cost.dtype} coefficients")
            ms, compute = self.coefficients[cost.dtype].op_ms(cost, channel_block(self.vector_bytes, cost.dtype))
            by_class[cost.op_class] = by_class.get(cost.op_class, 0.0) + ms
            bound[0 if compute else 1] += 1
        ordered = dict(sorted(by_class.items(), key=lambda kv: -kv[1]))
        return Prediction(sum(by_class.values()), ordered, bound[0], bound[1])

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (``latency:`` of a profile)."""
        return {
            "runtime": self.runtime,
            "threads": self.threads,
            "vector_bytes": self.vector_bytes,
            **{dtype: self.coefficients[dtype].to_dict() for dtype in DTYPES if dtype in self.coefficients},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyModel:
        """From the (validated) YAML form."""
        coefficients = {d: Coefficients.from_dict(data[d]) for d in DTYPES if data.get(d)}
        return cls(data["runtime"], int(data["threads"]), coefficients, int(data["vector_bytes"]))


def _round(value: float) -> float:
    return float(f"{value:.4g}")


# --- fitting
def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ‖a·x − b‖ subject to x ≥ 0 (Lawson and Hanson's active-set method)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    a = a / scale
    n = a.shape[1]
    passive = np.zeros(n, bool)
    x = np.zeros(n)
    tolerance = 10 * np.finfo(float).eps * max(a.shape) * max(1.0, float(np.abs(a).sum(axis=0).max()))
    gradient = a.T @ (b - a @ x)
    for _ in range(3 * n + 10):
        if passive.all() or gradient[~passive].max() <= tolerance:
            break
        passive[np.argmax(np.where(passive, -np.inf, gradient))] = True
        while True:
            trial = np.zeros(n)
            trial[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if trial[passive].min() > tolerance:
                break
            blocking = passive & (trial <= tolerance)
            step = np.min(x[blocking] / (x[blocking] - trial[blocking]))
            x = x + step * (trial - x)
            passive &= x > tolerance
        x = trial
        gradient = a.T @ (b - a @ x)
    return x / scale


@dataclass(frozen=True)
class Sample:
    """One measured network: its operators (one dtype) and its measured latency."""

    costs: Sequence[OpCost]
    measured_ms: float
    name: str = ""


def _design(samples: Sequence[Sample], classes: list[str], compute: list[np.ndarray], block: int) -> np.ndarray:
    """Columns: per class, the work of its compute-bound operators (G); the bytes of the memory-bound
    ones (GB); the number of operators. Coefficients are then ms per G, ms per GB and ms per operator."""
    rows = np.zeros((len(samples), len(classes) + 2))
    index = {c: i for i, c in enumerate(classes)}
    for r, (sample, bound) in enumerate(zip(samples, compute, strict=True)):
        for cost, is_compute in zip(sample.costs, bound, strict=True):
            if is_compute:
                rows[r, index[cost.op_class]] += effective_work(cost, block) * 1e-9
            else:
                rows[r, -2] += cost.bytes * 1e-9
        rows[r, -1] = len(sample.costs)
    return rows


def _coefficients(
    theta: np.ndarray, classes: list[str], base: Coefficients | None, sources: tuple[dict[str, Any], ...]
) -> Coefficients:
    throughput = dict(base.throughput_gops) if base else dict.fromkeys(OP_CLASSES, _UNFITTED)
    for c, value in zip(classes, theta[:-2], strict=True):
        throughput[c] = 1e3 / value if value > 0 else _UNFITTED
    bandwidth = 1e3 / theta[-2] if theta[-2] > 0 else _UNFITTED
    return Coefficients(throughput, bandwidth, theta[-1] * 1e3, sources)


def fit(
    samples: Sequence[Sample],
    base: Coefficients | None = None,
    sources: Sequence[dict[str, Any]] = (),
    iterations: int = 30,
    block: int = 1,
) -> Coefficients:
    """Coefficients of one dtype fitted to measured ``samples`` (non-negative least squares on relative
    error), channels tiled by ``block``. Op classes no sample exercises keep ``base``'s throughput."""
    from edgecnn.errors import UsageError

    if len(samples) < 3:
        raise UsageError(f"fitting needs at least 3 measured networks, got {len(samples)}")
    classes = [c for c in OP_CLASSES if any(x.op_class == c and x.work > 0 for s in samples for x in s.costs)]
    measured = np.array([s.measured_ms for s in samples], float)
    if (measured <= 0).any():
        raise UsageError("every measured latency must be > 0")
    compute = [np.array([c.op_class in MAC_CLASSES for c in s.costs]) for s in samples]
    best: tuple[float, Coefficients] | None = None
    for _ in range(iterations):
        design = _design(samples, classes, compute, block)
        theta = nnls(design / measured[:, None], np.ones(len(samples)))
        coefficients = _coefficients(theta, classes, base, tuple(sources))
        # judged by the model itself (max of the two terms), not by the linear design of this assignment
        per_op = [[coefficients.op_ms(c, block) for c in s.costs] for s in samples]
        predicted = np.array([sum(ms for ms, _ in ops) for ops in per_op])
        error = float(np.mean(np.abs(predicted / measured - 1.0)))
        if best is None or error < best[0] - 1e-12:
            best = (error, coefficients)
        new = [np.array([bound for _, bound in ops]) for ops in per_op]
        if all((n == o).all() for n, o in zip(new, compute, strict=True)):
            break
        compute = new
    assert best is not None
    return best[1]


def scale(coefficients: Coefficients, compute: float, memory: float, sources: Sequence[dict[str, Any]]) -> Coefficients:
    """``coefficients`` on a device ``compute`` times slower in arithmetic and ``memory`` times slower in
    bandwidth and overhead (how a shape fitted on one machine is carried to a device with few published points)."""
    throughput = {c: v / compute for c, v in coefficients.throughput_gops.items()}
    return replace(
        coefficients,
        throughput_gops=throughput,
        bandwidth_gbps=coefficients.bandwidth_gbps / memory,
        overhead_us=coefficients.overhead_us * memory,
        fitted_to=tuple(sources),
    )


def fit_scale(base: Coefficients, samples: Sequence[Sample], block: int = 1) -> tuple[float, float]:
    """The (compute, memory) slow-down factors of ``base`` that best fit ``samples`` (relative error,
    log-spaced grid search; channels tiled by the device's ``block``): how a device with a few published
    figures borrows the shape of a full fit. With fewer than three samples both factors are equal: two
    figures cannot tell arithmetic from memory apart (the grid then finds a degenerate corner)."""
    from edgecnn.errors import UsageError

    if not samples:
        raise UsageError("fitting a scale needs at least one measurement")
    factors = np.geomspace(1e-2, 1e3, 301)
    measured = np.array([s.measured_ms for s in samples])
    # per sample, per operator: compute and memory seconds at factor 1, and the overhead
    parts = []
    for sample in samples:
        compute = np.array([effective_work(c, block) / base.throughput_gops[c.op_class] * 1e-6 for c in sample.costs])
        memory = np.array([c.bytes / base.bandwidth_gbps * 1e-6 for c in sample.costs])
        parts.append((compute, memory, len(sample.costs) * base.overhead_us * 1e-3))

    def error(pair: tuple[float, float]) -> float:
        c, m = pair
        predicted = np.array([np.maximum(cp * c, mp * m).sum() + o * m for cp, mp, o in parts])
        return float(np.mean((predicted / measured - 1.0) ** 2))

    fine = np.geomspace(0.8, 1.25, 41)  # refine around the coarse optimum until it stays put
    if len(samples) < 3:
        best = min(((float(f), float(f)) for f in factors), key=error)
        return min([best, *((best[0] * float(a),) * 2 for a in np.geomspace(0.95, 1.05, 41))], key=error)
    best = min(((float(c), float(m)) for c in factors[::3] for m in factors[::3]), key=error)
    for _ in range(10):
        c, m = best
        best = min([best, *((c * float(a), m * float(b)) for a in fine for b in fine)], key=error)
        if best == (c, m):
            break
    return best
