"""Which op types the ORT int8 graph keeps float for speed: measured where the target's kernels are this host's.

A profile lists the op types its device runs slower in int8 than in float (``int8.slower_op_types``, measured op
by op: ``benchmarks/int8_op_latency.py``). Slower by itself is not slower in the graph: keeping an op float puts
a DequantizeLinear before it and a QuantizeLinear after it, and can stop its neighbours' fusion — EfficientNet-B0's
squeeze-excitation Mul/Sigmoid/ReduceMean kept float made its 32² int8 graph 18% slower here, while DenseNet-121's
Concat and AveragePool kept float made its graph 4% faster (``benchmarks/quant_peers.py``). So when the target's
kernels are this host's, the export quantizes the graph with none of them float, with each alone and with all,
times the variants (interleaved rounds, min) and keeps the fastest — the one with fewer float ops unless another
is faster by more than :data:`MARGIN`. For another device nothing can be timed here: its declared list is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

MARGIN = 0.01  # a variant with float op types must beat the all-int8 graph by more than this fraction
ROUNDS, RUNS = 5, 20

Quantize = Callable[[Path, tuple[str, ...]], object]  # (dst, float op types) → writes the int8 graph at dst


def _variants(base: tuple[str, ...], candidates: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """none, each candidate alone, and all of them (when more than one), on top of ``base``."""
    variants = {"none": base, **{kind: (*base, kind) for kind in candidates}}
    if len(candidates) > 1:
        variants["all"] = (*base, *candidates)
    return variants


def pick(times: dict[str, float]) -> str:
    """The fastest variant of ``times`` (ms by label), or ``none`` unless it is faster by more than MARGIN."""
    fastest = min(times, key=times.__getitem__)
    return fastest if times[fastest] < times["none"] * (1 - MARGIN) else "none"


def choose_float_op_types(
    quantize: Quantize, base: tuple[str, ...], candidates: tuple[str, ...], work: Path, measure: bool
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The op types to keep float — ``base`` (the recipe's) and those of ``candidates`` (slower in int8 on the
    target, present in the graph) that make the graph faster — and the record of how they were chosen."""
    if not candidates:
        return base, {"candidates": [], "chosen": []}
    if not measure:
        return (*base, *candidates), {
            "candidates": list(candidates),
            "chosen": list(candidates),
            "basis": "declared by the profile (the target's kernels are not this host's: nothing timed)",
        }
    from edgecnn.runtime.host_timing import interleaved_min_ms

    work.mkdir(parents=True, exist_ok=True)
    variants = _variants(base, candidates)
    paths = {}
    for index, (label, kinds) in enumerate(variants.items()):
        paths[label] = work / f"variant-{index}.onnx"
        quantize(paths[label], kinds)
    times = interleaved_min_ms(paths, ROUNDS, RUNS)
    label = pick(times)
    chosen = [kind for kind in variants[label] if kind not in base]
    return variants[label], {
        "candidates": list(candidates),
        "chosen": chosen,
        "basis": f"measured on this host: ORT, 1 thread, min of {ROUNDS} interleaved rounds of {RUNS} runs",
        "tries": [
            {"float": [k for k in kinds if k not in base], "min_ms": times[name]} for name, kinds in variants.items()
        ],
    }
