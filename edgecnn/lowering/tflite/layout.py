"""Layouts: which ONNX axis each TFLite axis holds.

A *layout* is a permutation: TFLite axis ``j`` holds ONNX axis ``layout[j]``. The *canonical* layout
is NHWC (``(0, 2, 3, 1)``) for 4-D values and the ONNX order for the others: graph inputs, convolutions
and pools work in it. Other values may be held in any layout (the context records it per value): a
Transpose read once only relabels axes, elementwise ops, normalizations and reductions work in their
input's layout, Reshape and MatMul outputs stay in ONNX order. A lowering that needs a given layout
asks for it (:meth:`LoweringContext.tensor_in`), which adds one TRANSPOSE per value and layout, or a
RESHAPE when only size-1 axes move.
"""

from __future__ import annotations

from collections.abc import Sequence

NHWC = (0, 2, 3, 1)


def canonical_layout(rank: int) -> tuple[int, ...]:
    """NHWC for 4-D values, the ONNX order for any other rank."""
    return NHWC if rank == 4 else tuple(range(rank))


def permute(shape: Sequence[int], layout: Sequence[int]) -> tuple[int, ...]:
    """The TFLite shape of an ONNX ``shape`` held in ``layout``."""
    return tuple(int(shape[a]) for a in layout)


def same_memory_order(shape: Sequence[int], layout: Sequence[int]) -> bool:
    """Whether ``layout`` stores ``shape`` in the same element order as ONNX (only size-1 axes move)."""
    axes = [a for a in layout if shape[a] != 1]
    return axes == sorted(axes)


def layout_tag(layout: Sequence[int]) -> str:
    """A short name for a layout: nhwc, nchw or its digits."""
    return {NHWC: "nhwc", (0, 1, 2, 3): "nchw"}.get(tuple(layout), "".join(map(str, layout)))
