"""Which op types an int8 graph keeps float for speed: measured where the target's kernels are this host's.

A profile lists the op types its device runs slower in int8 than in float (``int8.slower_op_types``, measured op
by op: ``benchmarks/int8_op_latency.py``). Slower by itself is not slower in the graph: keeping an op float puts
a DequantizeLinear before it and a QuantizeLinear after it, and can stop its neighbours' fusion — EfficientNet-B0's
squeeze-excitation Mul/Sigmoid/ReduceMean kept float made its 32² int8 graph 18% slower here, while DenseNet-121's
Concat and AveragePool kept float made its graph 4% faster (``benchmarks/quant_peers.py``). So when the target's
kernels are this host's, the export quantizes the graph with none of them float, with each alone and with all,
times the variants (interleaved rounds, min) and keeps the fastest — the one with fewer float ops unless another
is faster by more than :data:`MARGIN`. For another device nothing can be timed here: its declared list is kept.

The int8 `.tflite` is chosen the same way, in LiteRT with XNNPACK, among the TFLite ops the profile lists
(``int8.slower_tflite_ops``) and, where the target runs XNNPACK (``tflite_delegate``), every op the delegate leaves
to LiteRT's own kernels in the all-int8 graph: such an op (HARD_SWISH; an ADD of a constant) splits the delegated
graph — MobileNetV3-small's int8 `.tflite` ran in 20 XNNPACK partitions and 2.9× slower than its fp32 `.tflite`
here; with HARD_SWISH float, in one at 0.35× the all-int8 time (`benchmarks/tflite_float_ops.py`). Which ops the
delegate takes is its code's decision, not the CPU's (:mod:`edgecnn.runtime.xnnpack`), so for a device that cannot
be timed here the variant XNNPACK runs in the fewest partitions is kept (a tie keeps the fewer float ops).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.errors import first_line
from edgecnn.runtime.host_timing import LOADS, MIN_SPAN_S
from edgecnn.runtime.xnnpack import Delegation, delegation

MARGIN = 0.02  # a variant with float op types must beat the all-int8 graph by more than this: identical graphs time
# up to 1.3% apart here (32² graphs; DenseNet-121 up to 3.7%: `benchmarks/timing_protocol.py`); 1% flipped choices
ROUNDS, RUNS = 5, 20
BUDGET_S = 10.0  # about how long a choice's timing may take: slow graphs get fewer runs a round
PROTOCOL = (
    f"1 thread, min over {LOADS} loads (the order reversed) of at least {ROUNDS} interleaved rounds of up to {RUNS} "
    f"runs each (more rounds for fast graphs: at least {MIN_SPAN_S:g} s in all; fewer runs for slow ones: about "
    f"{BUDGET_S:g} s), a ballast session loaded last"
)
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")  # float there: no int8 model
PARTITIONS_BASIS = (
    "not timed, the target's kernels not being this host's: the fewest XNNPACK partitions, counted here in LiteRT "
    "(the manifest's tools: ai-edge-litert), whose delegate takes the same ops on every CPU"
)

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
    quantize: Quantize,
    base: tuple[str, ...],
    candidates: tuple[str, ...],
    work: Path,
    measure: bool,
    suffix: str = ".onnx",
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The op types to keep float — ``base`` (the recipe's) and those of ``candidates`` (slower in int8 on the
    target, present in the graph) that make the graph faster — and the record of how they were chosen. ``quantize``
    writes the variants as files of ``suffix`` (``.onnx``: timed in ORT; ``.tflite``: in LiteRT)."""
    if not candidates:
        return base, {"candidates": [], "chosen": []}
    if not measure:
        return (*base, *candidates), {
            "candidates": list(candidates),
            "chosen": list(candidates),
            "basis": "declared by the profile (the target's kernels are not this host's: nothing timed)",
        }
    from edgecnn.runtime.host_timing import runtime_label, timed_over_loads

    variants = _variants(base, candidates)
    paths, failed = _made(quantize, variants, work, suffix)
    times, unloadable = timed_over_loads(paths, ROUNDS, RUNS, BUDGET_S, required=("none",))
    failed.update(unloadable)
    basis = f"measured on this host: {runtime_label(work / f'variant{suffix}')}, {PROTOCOL}"
    return _chosen(variants, base, pick(times), basis, {name: {"min_ms": ms} for name, ms in times.items()}, failed)


def _made(
    quantize: Quantize, variants: dict[str, tuple[str, ...]], work: Path, suffix: str
) -> tuple[dict[str, Path], dict[str, str]]:
    """Each variant ``quantize`` wrote (label → file of ``suffix`` in ``work``) and why the others could not be made;
    the all-int8 one (``none``) must be: what the graph itself cannot be is the export's error."""
    work.mkdir(parents=True, exist_ok=True)
    paths, failed = {}, {}
    for index, (label, kinds) in enumerate(variants.items()):
        path = work / f"variant-{index}{suffix}"
        try:
            quantize(path, kinds)
            paths[label] = path
        except Exception as error:  # a variant that cannot be made or run is no choice: the others are
            if label == "none":
                raise
            failed[label] = first_line(error)
    return paths, failed


def _chosen(
    variants: dict[str, tuple[str, ...]],
    base: tuple[str, ...],
    label: str,
    basis: str,
    figures: dict[str, dict[str, Any]],
    failed: dict[str, str],
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The op types of variant ``label`` and the record of the choice: the candidates, the chosen, its ``basis``,
    each variant's ``figures`` and why the ``failed`` ones could not be made."""

    def floats(name: str) -> list[str]:
        return [kind for kind in variants[name] if kind not in base]

    record = {
        "candidates": [name for name in variants if name not in ("none", "all")],  # each alone is a variant
        "chosen": floats(label),
        "basis": basis,
        "tries": [{"float": floats(name), **figure} for name, figure in figures.items()],
    }
    if failed:
        record["failed_tries"] = [{"float": floats(name), "why": why} for name, why in failed.items()]
    return variants[label], record


def fewest_partitions(
    quantize: Quantize, base: tuple[str, ...], candidates: tuple[str, ...], work: Path
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """:func:`choose_float_op_types` for a `.tflite` that cannot be timed here: the variant XNNPACK runs in the
    fewest partitions (a tie keeps the fewer float ops, so none unless float joins partitions)."""
    variants = _variants(base, candidates)
    paths, failed = _made(quantize, variants, work, ".tflite")
    counts: dict[str, int] = {}
    for label, path in paths.items():
        try:
            found = delegation(path)
            if found is None:
                raise RuntimeError("this LiteRT does not list the graph's nodes")
            counts[label] = found.partitions
        except Exception as error:  # as for timing: a variant that cannot be loaded is no choice
            if label == "none":
                raise
            failed[label] = first_line(error)
    label = min(counts, key=lambda name: (counts[name], len(variants[name])))
    return _chosen(variants, base, label, PARTITIONS_BASIS, {n: {"partitions": c} for n, c in counts.items()}, failed)


def refused_in_int8(int8: Delegation, fp32: Delegation | None, present: set[str]) -> list[str]:
    """The op types of ``present`` (but the compute ops: float there is no int8 model) that XNNPACK leaves to LiteRT
    more often in the ``int8`` graph than in the ``fp32`` one: float can at best delegate them as in fp32 (the
    gather decomposition of a deformable convolution is refused in both: keeping it float joins nothing)."""
    before = fp32.undelegated if fp32 is not None else {}
    return [
        op for op, count in int8.undelegated.items()
        if op in present and op not in COMPUTE_OPS and count > before.get(op, 0)
    ]  # fmt: skip


def choose_tflite_float_ops(
    quantizer: Any, base: tuple[str, ...], declared: tuple[str, ...], work: Path, measure: bool, fp32: Delegation | None
) -> tuple[Any, tuple[str, ...], dict[str, Any]]:
    """:func:`choose_float_op_types` for a ``TfliteQuantizer`` (``base``: the ops it keeps float already): the chosen
    int8 model (``QuantizedTflite``), the TFLite ops kept float, and the record. ``fp32`` is how XNNPACK splits the
    fp32 `.tflite` when XNNPACK runs the target's (None: another delegate, or a LiteRT that cannot count); then the
    candidates are the profile's ``declared`` ops and those :func:`refused_in_int8` in the all-int8 graph, timed here
    or, for another device, chosen by :func:`fewest_partitions`. The quantizer keeps the chosen ones float in every
    later model (the drift repair's)."""
    made: dict[tuple[str, ...], Any] = {}  # the variants made: none is redone

    def variant(path: Path, kinds: tuple[str, ...]) -> None:  # biases and roundings change neither speed nor split
        if kinds not in made:  # the all-int8 one is made as it ships (most graphs keep it), the others plain
            quantizer.float_op_types = tuple(k for k in kinds if k not in base)
            plain = kinds != base
            made[kinds] = quantizer.quantize_bytes(**({"bias_correct": False, "round_weights": False} if plain else {}))
        path.write_bytes(made[kinds].data)

    candidates, all_int8 = declared, None
    if fp32 is not None:
        work.mkdir(parents=True, exist_ok=True)
        variant(work / "all-int8.tflite", base)
        all_int8 = delegation(work / "all-int8.tflite")
        if all_int8 is not None:
            refused = refused_in_int8(all_int8, fp32, set(quantizer.ops.values()))
            candidates = (*declared, *(op for op in refused if op not in (*base, *declared)))
    if all_int8 is not None and not measure and candidates:
        kinds, record = fewest_partitions(variant, base, candidates, work)
    else:
        kinds, record = choose_float_op_types(variant, base, candidates, work, measure, ".tflite")
    if all_int8 is not None:
        record["all_int8_xnnpack"] = all_int8.to_dict()
    quantizer.float_op_types = tuple(k for k in kinds if k not in base)
    as_shipped = kinds == base or not (quantizer.bias_correct or quantizer.round_weights)
    return made[kinds] if as_shipped and kinds in made else quantizer.quantize_bytes(), kinds, record
