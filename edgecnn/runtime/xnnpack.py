"""What LiteRT's XNNPACK delegate takes of a `.tflite`: its partitions and the ops it leaves to LiteRT's kernels.

XNNPACK is LiteRT's default CPU delegate. Which nodes it takes is decided by the delegate's code (the tensor
types each op's visitor accepts — an int8 HARD_SWISH is refused because its visitor checks for float tensors,
``tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc``), not by the CPU: a graph delegates alike on this host
and on an ARM board running the same LiteRT. Each node the delegate refuses runs in LiteRT's own kernel and splits
the delegated graph there (MobileNetV3-small's all-int8 `.tflite`: 19 HARD_SWISH, 20 partitions, 2.9× slower than
its fp32 `.tflite` here: ``benchmarks/tflite_float_ops.py``). The counting is the device harness's
(:func:`edgecnn.bench.harness.xnnpack_delegation`), so ``edgecnn bench`` reports the device's own split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.bench.harness import xnnpack_delegation
from edgecnn.runtime.loader import tflite_interpreter


@dataclass(frozen=True)
class Delegation:
    """How XNNPACK splits a `.tflite`: ``partitions`` delegated, ``nodes`` in the graph, and the op types (with
    their counts) of the nodes it leaves to LiteRT."""

    partitions: int
    nodes: int
    undelegated: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record."""
        return {"partitions": self.partitions, "nodes": self.nodes, "undelegated": dict(self.undelegated)}

    def summary(self) -> str:
        """One line: how many nodes XNNPACK takes, in how many partitions, and what it leaves."""
        left = sum(self.undelegated.values())
        text = f"XNNPACK takes {self.nodes - left} of {self.nodes} nodes in {self.partitions} partition(s)"
        if left:
            text += "; left to LiteRT's kernels: " + ", ".join(f"{op} ×{n}" for op, n in self.undelegated.items())
        return text


def delegation(path: str | Path) -> Delegation | None:
    """The XNNPACK delegation of the `.tflite` at ``path``, loaded in LiteRT with its default delegate; None when
    this LiteRT does not list a graph's nodes."""
    found = xnnpack_delegation(tflite_interpreter(path))
    return None if found is None else Delegation(**found)
