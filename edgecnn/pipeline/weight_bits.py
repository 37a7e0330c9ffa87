"""8-bit weights wherever an x86 target without VNNI does not saturate, 7-bit (reduce_range) only where it does.

``reduce_range`` quantizes every layer's weights to 7 bits because ONNX Runtime's u8s8 kernels on such CPUs add
pairs of products in 16 bits (``analysis.u8s8_saturation``). Measured on an emulated AVX2 CPU without VNNI
(``benchmarks/x86_saturation.py``) the guard is needed — MobileNetV1 with per-channel 8-bit weights: 2 → 103
held-out digits whose top-1 differs from fp32's — but only some layers saturate, and every 7-bit layer gives up
a bit of weight resolution. So the graph is quantized both ways; the 8-bit graph's pair sums are computed on a
few calibration samples, and each layer where one saturates takes the 7-bit graph's weights and bias (the
activations' ranges are the same in both). Changed weights change what the next layers see: the check runs again
on the spliced graph, up to ``ROUNDS`` times; a graph that still saturates stays 7-bit throughout.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.data.calibration import samples_within
from edgecnn.runtime.outputs import Inputs, batch_size, take

ROUNDS = 3
MAX_SAMPLES = 16  # calibration samples whose pair sums are computed...
PIXEL_BUDGET = 1 << 19  # ...fewer for large inputs: about this many input pixels in all


def checked_samples(images: Inputs) -> Inputs:
    """The first calibration samples, as many as the budget allows (at least one)."""
    return take(images, slice(0, samples_within(images, PIXEL_BUDGET, MAX_SAMPLES)))


def splice_weights(eight: Path, seven: Path, nodes: set[str], dst: Path) -> set[str]:
    """Write to ``dst`` the graph at ``eight`` with the weights and bias of ``nodes`` taken from ``seven`` (the same
    graph quantized with 7-bit weights: the same names); the nodes spliced — ``nodes`` and any other node that
    reads one of their weights (its bias must follow the weights' scale)."""
    import onnx

    model, donor = onnx.load(str(eight)), onnx.load(str(seven))
    producers = {out: node for node in model.graph.node for out in node.output}

    def constants(node: Any) -> set[str]:  # the initializers behind a layer's weight and bias DequantizeLinear
        found = (producers.get(name) for name in node.input[1:3])
        return {n for dq in found if dq is not None and dq.op_type == "DequantizeLinear" for n in dq.input}

    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1]
    chosen = set(nodes)
    while True:
        wanted = set().union(*(constants(n) for n in layers if n.name in chosen))
        sharing = {n.name for n in layers if n.name not in chosen and constants(n) & wanted}
        if not sharing:
            break
        chosen |= sharing
    replacements = {i.name: i for i in donor.graph.initializer if i.name in wanted}
    if set(replacements) != wanted:  # a layer reported 7-bit must be 7-bit
        raise ValueError(f"the 7-bit graph lacks {len(wanted - set(replacements))} of the weights to splice")
    for initializer in model.graph.initializer:
        if initializer.name in replacements:
            initializer.CopyFrom(replacements[initializer.name])
    onnx.save_model(model, str(dst))
    return chosen


def widen_where_safe(seven: Path, quantize_eight: Callable[[Path], Any], work: Path, images: Inputs) -> dict:
    """Make the 8-bit twin of the 7-bit graph at ``seven`` with ``quantize_eight(path)``, keep 7-bit weights in
    the layers whose u8s8 pair sums saturate on ``images``' first samples, and write the result over ``seven``
    when any layer gained a bit; what was decided."""
    from edgecnn.analysis.u8s8_saturation import u8s8_saturation

    samples = checked_samples(images)
    eight = work / "weights-8bit.onnx"
    quantize_eight(eight)
    candidate, narrow = eight, set()
    for round_ in range(1, ROUNDS + 1):
        found = u8s8_saturation(candidate, samples)
        if found.get("unnamed"):  # the splice goes by node name
            return {"seven_bit": "all", "kept_because": "layers without a name of their own", "samples": 0}
        newly = set(found["saturating"]) - narrow
        if not newly:
            record = {
                "layers": found["layers"],
                "eight_bit": found["layers"] - len(narrow),
                "seven_bit": sorted(narrow),
                "samples": batch_size(samples),
                "rounds": round_,
            }
            if len(narrow) < found["layers"]:
                shutil.copyfile(candidate, seven)  # the work folder may be on another filesystem than seven
            return record
        spliced = work / f"weights-mixed-{round_}.onnx"
        narrow = splice_weights(eight, seven, narrow | newly, spliced)
        candidate = spliced
    kept = f"still saturating after {ROUNDS} rounds"
    return {"seven_bit": "all", "kept_because": kept, "samples": batch_size(samples)}
