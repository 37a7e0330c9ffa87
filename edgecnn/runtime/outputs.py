"""A model's outputs by name: what a PyTorch ``forward`` returns (a tensor, tuple, list, dict, nested) flattened to the
named tensors of the ONNX graph, in the exporter's order (sequences by position, dicts by insertion order); and its
inputs: one array, or one array per input name for a model with several."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.errors import CheckFailedError, UsageError

SINGLE_OUTPUT = "logits"  # the name of a model's one output when forward returns a bare tensor
Outputs = dict[str, np.ndarray]  # output name → array, in the model's output order
Inputs = np.ndarray | dict[str, np.ndarray]  # one input, or input name → array in the model's input order
PER_IMAGE = "edgecnn compares outputs per image; return one value (or one row) per image, with the batch axis first"


def as_float(x: Inputs) -> Inputs:
    """Contiguous float32 arrays."""
    if isinstance(x, Mapping):
        return {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in x.items()}
    return np.ascontiguousarray(x, dtype=np.float32)


def batch_size(x: Inputs) -> int:
    """How many samples ``x`` holds (every input holds as many)."""
    return len(next(iter(x.values()))) if isinstance(x, Mapping) else len(x)


def take(x: Inputs, index: slice | np.ndarray) -> Inputs:
    """The samples of ``x`` at ``index``, from every input."""
    return {name: v[index] for name, v in x.items()} if isinstance(x, Mapping) else x[index]


def padded(x: Inputs, size: int) -> Inputs:
    """A short batch ``x`` filled up to a model's static batch ``size`` with copies of its last sample."""
    short = size - batch_size(x)
    if short <= 0:
        return x

    def fill(array: np.ndarray) -> np.ndarray:
        return np.concatenate([array, np.repeat(array[-1:], short, axis=0)])

    return {name: fill(v) for name, v in x.items()} if isinstance(x, Mapping) else fill(x)


def _leaves(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, str(key)))]
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its field names
        return [leaf for key, item in zip(value._fields, value, strict=True) for leaf in _leaves(item, (*path, key))]
    if isinstance(value, (tuple, list)):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, str(i)))]
    return [(path, value)]


def output_names(value: Any) -> list[str]:
    """The names of the tensors in ``value`` (what ``forward`` returned), in the exporter's flattening order.

    A bare tensor is ``logits``; dict keys and namedtuple fields are kept (``{"out", "aux"}`` → ``out``, ``aux``);
    positions are numbered (``(a, b)`` → ``output_0``, ``output_1``); nested parts join with ``_``.
    """
    return [name for name, _ in flatten_outputs(value)]


def flatten_outputs(value: Any) -> list[tuple[str, Any]]:
    """``(name, tensor)`` for every tensor in ``value``; one-line errors for what is not a tensor."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(SINGLE_OUTPUT, value)]
    leaves = _leaves(value, ())
    if not leaves:
        raise UsageError(f"the model's forward returns an empty {type(value).__name__}: there is no output to export")
    named = []
    for path, leaf in leaves:
        name = "_".join(path)
        if not name or name[0].isdigit():
            name = f"output_{name}" if name else "output"
        if not isinstance(leaf, torch.Tensor):
            raise UsageError(
                f"the model's forward returns {type(leaf).__name__} at output '{name}'; edgecnn exports tensor "
                "outputs only (return tensors in a tuple, list or dict)"
            )
        named.append((name, leaf))
    names = [n for n, _ in named]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"the model's outputs flatten to clashing names: {', '.join(duplicates)}")
    return named


def single(outputs: Outputs, what: str) -> np.ndarray:
    """The one output of a single-output model; a one-line error naming the outputs of any other."""
    if len(outputs) != 1:
        raise UsageError(f"{what} has {len(outputs)} outputs ({', '.join(outputs)}); this needs a single-output model")
    return next(iter(outputs.values()))


def as_outputs(value: Outputs | np.ndarray) -> Outputs:
    """``value`` as outputs by name: a bare array is the single output ``logits``."""
    return dict(value) if isinstance(value, Mapping) else {SINGLE_OUTPUT: np.asarray(value)}


def matched(reference: Outputs, other: Outputs, what: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, reference, other)`` per output of ``reference``; the two must have the same names and shapes, and
    the reference's values must be finite."""
    if set(reference) != set(other):
        raise CheckFailedError(f"{what}: outputs differ: {', '.join(reference)} against {', '.join(other)}")
    pairs = []
    for name, ref in reference.items():
        if np.shape(ref) != np.shape(other[name]):
            raise CheckFailedError(f"{what}: output '{name}' is {np.shape(ref)} against {np.shape(other[name])}")
        if not np.isfinite(ref).all():  # the reference model's own fault, not the conversion's: bad input
            raise UsageError(
                f"{what}: the reference model's output '{name}' is NaN or infinite, so nothing can be compared with "
                "it; fix that model (its weights, or a log, sqrt or division by zero in it)"
            )
        pairs.append((name, ref, other[name]))
    return pairs
