"""Layouts: which ONNX axis each TFLite axis holds.

A *layout* is a permutation: TFLite axis ``j`` holds ONNX axis ``layout[j]``. The *canonical* layout
is NHWC (``(0, 2, 3, 1)``) for 4-D values and the ONNX order for the others: graph inputs, convolutions
and pools work in it. Other values may be held in any layout (the context records it per value): a
Transpose only relabels axes, a Reshape that splits or merges runs of axes carries the layout over,
elementwise ops, normalizations and reductions work in their input's layout, MatMul outputs stay in
ONNX order, Split and Slice cut where their parts' readers need them. A lowering that needs a given
layout asks for it (:meth:`LoweringContext.tensor_in`), which adds one TRANSPOSE per value and layout,
or a RESHAPE when only size-1 axes move.
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


def non_unit_order(shape: Sequence[int], layout: Sequence[int]) -> list[int]:
    """The axes of ``shape`` longer than 1, in the order ``layout`` stores them."""
    return [a for a in layout if shape[a] != 1]


def reshape_groups(in_shape: Sequence[int], out_shape: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Runs of consecutive input axes and output axes (size-1 axes left out) that hold the same elements.

    [1, 6, 4, 5] → [1, 2, 3, 4, 5] gives ([1], [1, 2]), ([2], [3]), ([3], [4]).
    """
    ins = [a for a, d in enumerate(in_shape) if d != 1]
    outs = [a for a, d in enumerate(out_shape) if d != 1]
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(ins) and j < len(outs):
        group_in, group_out = [ins[i]], [outs[j]]
        count_in, count_out = int(in_shape[ins[i]]), int(out_shape[outs[j]])
        i, j = i + 1, j + 1
        while count_in != count_out:
            if count_in < count_out:
                group_in.append(ins[i])
                count_in *= int(in_shape[ins[i]])
                i += 1
            else:
                group_out.append(outs[j])
                count_out *= int(out_shape[outs[j]])
                j += 1
        groups.append((group_in, group_out))
    return groups


def _carry(order: list[int], groups: list[tuple[list[int], list[int]]]) -> list[int] | None:
    """The other side's axis order when ``order`` keeps every group's axes together and ascending, else None."""
    result: list[int] = []
    position = 0
    while position < len(order):
        group = next((g for g in groups if g[0][0] == order[position]), None)
        if group is None or order[position : position + len(group[0])] != group[0]:
            return None
        result += group[1]
        position += len(group[0])
    return result


def _fill(order: list[int], shape: Sequence[int], preferred: Sequence[int]) -> tuple[int, ...]:
    """A layout of ``shape`` that stores its non-1 axes in ``order``, size-1 axes where ``preferred`` has them."""
    ordered = iter(order)
    return tuple(a if shape[a] == 1 else next(ordered) for a in preferred)


def reshaped_layout(
    in_shape: Sequence[int], in_layout: Sequence[int], out_shape: Sequence[int]
) -> tuple[int, ...] | None:
    """The layout in which a plain RESHAPE of a tensor held in ``in_layout`` is the ONNX Reshape, or None.

    That is when the layout keeps every run of merged or split axes together and in order (an NHWC
    [1, C, H, W] split to [1, g, C/g, H, W] is RESHAPEd to [1, H, W, g, C/g], held in (0, 3, 4, 1, 2)).
    The output's canonical layout is used when it stores the same order.
    """
    groups = reshape_groups(in_shape, out_shape)
    order = _carry(non_unit_order(in_shape, in_layout), groups)
    return None if order is None else _fill(order, out_shape, canonical_layout(len(out_shape)))


def reshape_source_layout(
    in_shape: Sequence[int], out_shape: Sequence[int], out_layout: Sequence[int]
) -> tuple[int, ...] | None:
    """The layout to move the input to so that a RESHAPE gives the output in ``out_layout``, or None."""
    flipped = [(o, i) for i, o in reshape_groups(in_shape, out_shape)]
    order = _carry(non_unit_order(out_shape, out_layout), flipped)
    return None if order is None else _fill(order, in_shape, canonical_layout(len(in_shape)))
