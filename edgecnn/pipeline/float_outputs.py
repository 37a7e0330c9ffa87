"""Graph outputs made by a Gemm or MatMul leave the int8 graph unrounded, in float.

ONNX Runtime's QDQ quantizer ends every graph output with a QuantizeLinear → DequantizeLinear pair, so a
classifier's logits are rounded to 256 levels before the host reads them. On the digits EfficientNet-B0 of
``benchmarks/quant_draws.py`` that rounding tied the two largest logits on 2–9 of 1,000 held-out digits per
calibration draw, and top-1 then falls to whichever class comes first. Without the pair ONNX Runtime still runs
the product in int8 — QGemm, or MatMulIntegerToFloat, writing float — and scales the int32 sums once: one kernel
fewer, no 8-bit rounding of the result (a 1280 → 1000 Gemm on this host: 0.068 → 0.062 ms).

A Conv keeps its pair: without a QuantizeLinear after it ONNX Runtime runs the convolution in float.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# The producers ONNX Runtime still runs in int8 with a float output (QGemm, MatMulIntegerToFloat).
INT8_TO_FLOAT = ("Gemm", "MatMul")


def float_outputs(model: Any) -> list[str]:
    """Remove, in place, the QuantizeLinear → DequantizeLinear pair between each graph output of the QDQ
    ``model`` and the Gemm or MatMul that makes it (when nothing else reads the pair); the outputs made float."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    readers = Counter(name for node in graph.node for name in node.input)
    outputs = [o.name for o in graph.output]
    floated, params, dropped = [], set(), set()
    for name in outputs:
        dq = producers.get(name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        made_by = producers.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if made_by is None or made_by.op_type not in INT8_TO_FLOAT or readers[name]:
            continue
        raw = q.input[0]
        if readers[raw] != 1 or readers[q.output[0]] != 1 or raw in outputs:
            continue
        made_by.output[list(made_by.output).index(raw)] = name
        graph.node.remove(q)
        graph.node.remove(dq)
        params.update(list(q.input[1:]) + list(dq.input[1:]))
        dropped.update((raw, q.output[0]))
        floated.append(name)
    kept = [v for v in graph.value_info if v.name not in dropped]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    read = {name for node in graph.node for name in node.input}
    unread = [i for i in graph.initializer if i.name in params and i.name not in read]
    for initializer in unread:  # the pairs' scales and zero points
        graph.initializer.remove(initializer)
    return floated
