"""One copy of a constant per node that reads it, before int8 quantization.

The simplifiers merge equal constants (a zero bias, a BatchNormalization's ones and zeros) into one initializer read
by many nodes. ONNX Runtime's quantizer then quantizes it once, for the first node that wants it in int8, and every
other reader — a BatchNormalization or a DeformConv that stays float — reads it through a DequantizeLinear that runs
on every inference and rounds the value to that first node's scale. Giving each reader its own copy keeps float
readers on float constants. Only small initializers are copied (a layer's shared weights stay shared).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

MAX_ELEMENTS = 65536  # larger shared initializers (tied weights) stay shared: copying them would grow the model


def unshare_initializers(model: object) -> int:
    """Give each top-level node that reads a small initializer also read by another node its own copy, in place;
    how many copies were made. Outputs are unchanged: only names differ."""
    import numpy as np

    graph = model.graph  # type: ignore[attr-defined]
    small = {i.name: i for i in graph.initializer if int(np.prod(i.dims, dtype=np.int64)) <= MAX_ELEMENTS}
    readers = Counter(name for node in graph.node for name in node.input if name in small)
    taken = {i.name for i in graph.initializer} | {o for node in graph.node for o in node.output}
    seen: Counter[str] = Counter()
    copies = 0
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in small or readers[name] < 2:
                continue
            seen[name] += 1
            if seen[name] == 1:  # the first reader keeps the original
                continue
            fresh = f"{name}__{seen[name]}"
            while fresh in taken:
                fresh += "_"
            copy = graph.initializer.add()
            copy.CopyFrom(small[name])
            copy.name = fresh
            taken.add(fresh)
            node.input[slot] = fresh
            copies += 1
    return copies


def unshare_file(path: Path) -> int:
    """:func:`unshare_initializers` on the ONNX file at ``path``, rewritten only when a copy was made."""
    import onnx

    model = onnx.load(str(path))
    copies = unshare_initializers(model)
    if copies:
        onnx.save_model(model, str(path))
    return copies
