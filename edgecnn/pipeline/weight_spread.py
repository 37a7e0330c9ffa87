"""The layers whose output channels' weight ranges spread so far that one int8 scale per tensor ruins them.

With one scale per tensor, an output channel whose weights span ``a_c`` (max |w|) is rounded on a grid ``max_c a_c``
wide: its rounding noise, relative to its own weights, grows by ``(max_c a_c / a_c)²``. A layer's *spread* is that
growth averaged over its channels, in dB. Cross-layer equalization evens most layers out (spreads of 4–8 dB on the
digits MobileNets); a few — typically the last depthwise convolutions, whose outputs no following layer can absorb —
keep spreads of 17–22 dB, and per-tensor weights there cost a graph most of the output SQNR it loses. Those layers,
above :data:`SPREAD_DB`, keep one scale per channel in the weights choice's mixed twin
(``granularity_choice``); the others take one per tensor, which ONNX Runtime's x86 kernels run faster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.lowering.onnx.nodes import attribute
from edgecnn.pipeline.equalize import channel_ranges

SPREAD_DB = 12.0  # average noise growth ×16: the outliers; equalized layers sit at 4–8 dB (digits MobileNets)


def channel_axis(node: Any) -> int | None:
    """The output-channel axis of ``node``'s weight (its second input), as ONNX Runtime's per-channel quantizers
    take it, or None for an op type they do not quantize per channel."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if attribute(node, "transB", 0) else 1
    if node.op_type == "MatMul":
        return 1
    return None


def spread_db(weight: np.ndarray, axis: int) -> float:
    """How much one scale per tensor multiplies the average channel's relative rounding noise, in dB (0: every
    channel spans the same range)."""
    spans = channel_ranges(weight, axis)
    spans = spans[spans > 0]
    if spans.size == 0:
        return 0.0
    return float(10 * np.log10(np.mean((spans.max() / spans) ** 2)))


def wide_spread_weights(model_path: Path, threshold_db: float = SPREAD_DB) -> dict[str, float]:
    """The weight initializers of ``model_path`` (2-D or more, read by a Conv, Gemm or MatMul) whose spread is above
    ``threshold_db``, with their spreads (dB)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    weights = {i.name: i for i in model.graph.initializer}
    wide: dict[str, float] = {}
    for node in model.graph.node:
        axis = channel_axis(node)
        if axis is None or len(node.input) < 2 or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        if weight.ndim < 2:
            continue
        spread = spread_db(weight, axis)
        if spread > threshold_db:
            wide[node.input[1]] = round(spread, 1)
    return wide
