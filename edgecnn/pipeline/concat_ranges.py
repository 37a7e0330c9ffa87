"""One calibrated range for the tensors a Concat joins, when their ranges are alike.

A QDQ Concat whose inputs and output have different scales is requantized input by input; with one scale it is a
copy. Measured on the digits DenseNets (`benchmarks/quant_peers.py` models, per channel and per tensor): one range
per Concat group made the int8 graph 3–4% faster in ONNX Runtime here and its outputs closer to fp32 (cosine
0.9979 → 0.9989, 0.9991 → 0.9995): a requantization rounds a second time. Some targets require it: NNAPI's
CONCATENATION on TENSOR_QUANT8_ASYMM before feature level 3 (Android API 29) takes inputs and an output of one
scale and zero point — ONNX Runtime's NNAPI execution provider leaves any other QDQ Concat to the CPU (its
``ConcatOpSupportChecker``) — and TFLite's int8 spec asks the same of CONCATENATION. A tensor read by several
Concats (DenseNet's features) links their groups: the shared range is that of the whole linked component, the
union of its tensors' ranges. A group whose widest range is more than :data:`MAX_WIDTH_RATIO` times its narrowest
keeps its own ranges (a detection head's boxes and scores would lose the scores' resolution).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# ONNX Runtime's QDQ quantizer gives these ops' outputs their (first) input's scale and zero point (its
# QDQDirect8BitOp and subclasses, QDQSplit, QDQGather): their tensors are tied already.
SAME_AS_INPUT = (
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "MaxPool", "AveragePool", "Slice", "Resize", "TopK",
    "Split", "Gather", "GatherElements",
)  # fmt: skip
MAX_WIDTH_RATIO = 16.0  # sharing costs the narrowest member at most 4 bits; boxes beside scores are hundreds apart


def concat_groups(nodes: Iterable[Any], tensors: set[str]) -> list[list[str]]:
    """The tensors (of ``tensors``: those with a calibrated range) that must share one range for every Concat to
    have one scale, as groups, largest first: connected components of "is an input or the output of the same
    Concat", also across the ops ONNX Runtime quantizes with their input's parameters (:data:`SAME_AS_INPUT`: a
    MaxPool before a Concat carries its input's scale into it)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    joins = []
    for node in nodes:
        if node.op_type == "Concat":
            joined = [t for t in (*node.input, *node.output) if t in tensors]
            joins.append(node.output[0])
        elif node.op_type in SAME_AS_INPUT and node.input and node.input[0] in tensors:
            joined = [node.input[0], *(t for t in node.output if t in tensors)]
        else:
            continue
        for name in joined[1:]:
            parent[root(name)] = root(joined[0])
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(root(name), []).append(name)
    with_concat = {root(name) for name in joins if name in parent}
    return sorted((sorted(g) for r, g in groups.items() if r in with_concat and len(g) > 1), key=len, reverse=True)


def share_concat_ranges(model_path: Path, cache: Path, dst: Path) -> dict[str, Any]:
    """Write to ``dst`` the calibration cache ``cache`` (ORT's format) with every Concat group of the model at
    ``model_path`` whose ranges are alike given their union; what was shared and what was kept apart."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data, save_tensors_data

    ranges = load_tensors_data(cache)
    data = dict(ranges.items())
    groups = concat_groups(onnx.load(str(model_path), load_external_data=False).graph.node, set(data))
    shared, apart = [], []
    for group in groups:
        lows = [float(np.min(data[t].range_value[0])) for t in group]
        highs = [float(np.max(data[t].range_value[1])) for t in group]
        widths = [h - lo for lo, h in zip(lows, highs, strict=True)]
        ratio = max(widths) / min(widths) if min(widths) > 0 else float("inf")
        if ratio > MAX_WIDTH_RATIO:
            apart.append({"tensors": len(group), "width_ratio": round(ratio, 1)})
            continue
        shared.append(group)
        low, high = min(lows), max(highs)
        for name in group:  # shapes, dtypes and the other fields (a histogram's) as they were
            fields = {key: getattr(data[name], key) for key in data[name]._attrs}
            fields.update(lowest=np.full_like(fields["lowest"], low), highest=np.full_like(fields["highest"], high))
            data[name] = TensorData(**fields)
    save_tensors_data(TensorsData(ranges.calibration_method, data), dst)
    return {
        "groups": len(shared),
        "tensors": sum(len(g) for g in shared),
        "largest": max((len(g) for g in shared), default=0),
        "kept_apart": apart,
    }
