"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", ICCV 2019) of an fp32 ONNX graph.

A Conv whose output channels feed, through a ReLU, a ReLU6 (Clip 0…6) or nothing, the input channels of the next
Conv (dense or depthwise) can move a positive factor per channel between the two: ``W1[i] /= s_i``, ``b1[i] /= s_i``,
``W2[:, i] *= s_i`` leaves the outputs unchanged. ``s_i = sqrt(r1_i / r2_i)`` (``r`` the channel's largest
absolute weight) makes both layers' channel ranges equal, so per-tensor int8 weights no longer zero the channels
that a few large ones dwarf. A ReLU6 is scale-invariant only where it does not clip: a channel that reaches 6 on
the calibration samples keeps ``s_i = 1``, and the others keep ``max / s_i`` under ``6 / MARGIN``. Pairs are
visited in graph order and the sweep repeated, as the paper does.

With channels held at 1 the paper's scaling no longer equalizes: the moved channels can outgrow the held ones and
widen the per-tensor ranges it meant to narrow (the digits MobileNetV1, ReLU6 throughout, most of its channels
held: channel-range spread 6.8 → 8.5, int8 output SQNR 24.7 → 18.6 dB). So each pair takes, of its channels left
as they are and the paper's scaling times a common factor (:data:`FACTORS`, for a ReLU6 pair; without its bounds
a factor only moves magnitude from one layer to the other), the scaling whose two layers' per-tensor int8 weights
keep their output channels best (mean SQNR per channel, :func:`channel_fidelity`; a dense second Conv's weights
weighed by the RMS of what each reads on the calibration samples): a channel rounded to zero counts as lost, an
exact one as exact. Which ReLU6 channels are held is decided once, on the calibration samples.

Even so a pair's gain can be the graph's loss. The equalized graph is kept only when, with every weight rounded
to per-tensor int8, its outputs on the calibration samples are closer to fp32 than the graph's as it was
(``per_tensor_weights_sqnr_db`` in the record).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.lowering.onnx.nodes import attribute

SWEEPS = 4
PARITY = 1e-4  # the largest relative change of any output the equalized fp32 graph may show
# headroom kept under a ReLU6's 6 for samples beyond the calibration set's largest (at 1.25, 5% of held-out digits
# moved the fp32 outputs by up to 1.8%; at 2 none by more than 3e-6)
MARGIN = 2.0
RELU6 = 6.0
FACTORS = tuple(2.0 ** (k / 2) for k in range(-8, 9))  # common factors tried on the paper's scaling of a ReLU6 pair
CHANNEL_SQNR_CAP_DB = 60.0  # a channel's weights this exact count as exact (int8 cannot do much better)


@dataclass
class Pair:
    """Two Convs joined channel by channel: ``first``'s outputs through ``activation`` into ``second``."""

    first: Any
    second: Any
    activation: str  # "Relu", "Relu6" or "" (nothing in between)
    tensor: str  # ``first``'s output (before the activation)


def _clip_bounds(node: Any, constants: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """(min, max) of a Clip whose bounds are constants, else None."""
    bounds = []
    for index in (1, 2):
        name = node.input[index] if len(node.input) > index else ""
        if not name:
            bounds.append(None)
        elif name in constants and constants[name].size == 1:
            bounds.append(float(constants[name].reshape(())))
        else:
            return None
    return bounds[0], bounds[1]


def _activation(node: Any, constants: dict[str, np.ndarray]) -> str | None:
    """ "Relu" or "Relu6" for an activation CLE can pass through, else None."""
    if node.op_type == "Relu":
        return "Relu"
    if node.op_type == "Clip" and _clip_bounds(node, constants) == (0.0, RELU6):
        return "Relu6"
    return None


def _channels_in(conv: Any, weight: np.ndarray) -> int:
    """How many input channels a Conv reads (its weight's dim 1 × groups)."""
    return weight.shape[1] * int(attribute(conv, "group", 1))


def find_pairs(model: Any) -> list[Pair]:
    """Every Conv → (ReLU | ReLU6 | nothing) → Conv chain CLE can equalize: single consumers, no graph output in
    between, and the second Conv reading exactly the first's output channels (dense, or depthwise)."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only(tensor: str) -> Any:
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in outputs else None

    pairs = []
    for first in graph.node:
        if first.op_type != "Conv" or first.input[1] not in constants:
            continue
        tensor = first.output[0]
        after, activation = only(tensor), ""
        if after is not None and after.op_type != "Conv":
            activation = _activation(after, constants) or ""
            after = only(after.output[0]) if activation else None
        if after is None or after.op_type != "Conv" or after.input[1] not in constants:
            continue
        w1, w2 = constants[first.input[1]], constants[after.input[1]]
        groups = int(attribute(after, "group", 1))
        depthwise = groups == w1.shape[0] == w2.shape[0] and w2.shape[1] == 1  # no channel multiplier
        if (groups == 1 or depthwise) and _channels_in(after, w2) == w1.shape[0]:
            pairs.append(Pair(first, after, activation, tensor))
    return pairs


def channel_ranges(weight: np.ndarray, axis: int) -> np.ndarray:
    """The largest absolute weight per channel along ``axis``."""
    other = tuple(d for d in range(weight.ndim) if d != axis)
    return np.abs(weight).max(axis=other)


@dataclass
class Activity:
    """A pair's middle tensor on the calibration samples, per channel: its largest value before the activation
    (``peak``) and the root-mean-square of what the second Conv reads (``rms``, after the activation)."""

    peak: np.ndarray
    rms: np.ndarray


def equalize(model: Any, activity: dict[str, Activity]) -> dict[str, Any]:
    """Equalize ``model`` (an fp32 onnx ModelProto, changed in place) pair by pair; ``activity`` holds each pair's
    middle tensor's figures on the calibration samples (ReLU6 headroom, and how much each channel the second
    Conv reads weighs in its outputs). Returns what it did: pairs, ReLU6 channels held, the pair visits left
    alone, and the mean ratio of channel ranges before and after."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    pairs = find_pairs(model)
    spread_before = _spread(pairs, initializers)
    peak = {p.tensor: activity[p.tensor].peak.copy() for p in pairs}  # in the current scaling of each channel
    rms = {p.tensor: activity[p.tensor].rms.copy() for p in pairs}
    held = {p.tensor: peak[p.tensor] * MARGIN >= RELU6 if p.activation == "Relu6" else None for p in pairs}
    left = 0
    for _ in range(SWEEPS):
        for pair in pairs:
            w1 = numpy_helper.to_array(initializers[pair.first.input[1]]).astype(np.float64)
            w2 = numpy_helper.to_array(initializers[pair.second.input[1]]).astype(np.float64)
            depthwise = int(attribute(pair.second, "group", 1)) > 1
            r1, r2 = channel_ranges(w1, 0), channel_ranges(w2, 0 if depthwise else 1)
            paper = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1)), 1.0)
            shape1 = (-1,) + (1,) * (w1.ndim - 1)
            shape2 = (-1,) + (1,) * (w2.ndim - 1) if depthwise else (1, -1) + (1,) * (w2.ndim - 2)
            tries = [np.ones_like(paper)]
            if held[pair.tensor] is None:  # without bounds a common factor only moves magnitude between the layers
                tries.append(paper)
            else:
                lowest = peak[pair.tensor] * MARGIN / RELU6  # max / s stays under 6 / MARGIN
                for factor in FACTORS:
                    scale = np.where(held[pair.tensor], 1.0, np.maximum(paper * factor, lowest))
                    if not any(np.array_equal(scale, t) for t in tries):
                        tries.append(scale)
            if len(tries) == 1:
                left += 1
                continue
            reads = None if depthwise else rms[pair.tensor]  # a depthwise output channel reads one channel only
            scores = [
                channel_fidelity(w1 / t.reshape(shape1))
                + channel_fidelity(w2 * t.reshape(shape2), None if reads is None else reads / t)
                for t in tries
            ]
            scores = [score if np.isfinite(score) else -np.inf for score in scores]
            best = int(np.argmax(scores))  # the first of equals: as they were, unless a scaling keeps channels better
            if best == 0:
                left += 1
                continue
            scale = tries[best]
            peak[pair.tensor], rms[pair.tensor] = peak[pair.tensor] / scale, rms[pair.tensor] / scale
            _store(initializers[pair.first.input[1]], w1 / scale.reshape(shape1))
            if len(pair.first.input) > 2 and pair.first.input[2]:
                bias = numpy_helper.to_array(initializers[pair.first.input[2]]).astype(np.float64)
                _store(initializers[pair.first.input[2]], bias / scale)
            _store(initializers[pair.second.input[1]], w2 * scale.reshape(shape2))
    return {
        "pairs": len(pairs),
        "relu6_channels_held": int(sum(h.sum() for h in held.values() if h is not None)),
        "pair_sweeps_left_alone": left,
        "channel_range_spread_before": round(spread_before, 2),
        "channel_range_spread_after": round(_spread(pairs, initializers), 2),
    }


def per_tensor_int8(values: np.ndarray) -> np.ndarray:
    """``values`` (not all zero) rounded to per-tensor symmetric int8 and back to float."""
    step = float(np.abs(values).max()) / 127
    return np.clip(np.round(values / step), -127, 127) * step


def channel_fidelity(weight: np.ndarray, reads: np.ndarray | None = None) -> float:
    """How well per-tensor symmetric int8 keeps ``weight``'s output channels: the mean over its non-zero channels
    of each one's SQNR in dB (capped at :data:`CHANNEL_SQNR_CAP_DB`; a channel rounded to zero scores 0). With
    ``reads`` (the RMS of each input channel a dense Conv reads) an output channel's signal and rounding noise
    are weighed by what each weight multiplies, as in its outputs."""
    if np.abs(weight).max() == 0:  # (NaN weights go on, to a NaN score)
        return 0.0
    error = per_tensor_int8(weight) - weight
    if reads is not None:
        weighing = reads.reshape((1, -1) + (1,) * (weight.ndim - 2))
        weight, error = weight * weighing, error * weighing
    axes = tuple(range(1, weight.ndim))
    signal, noise = (weight**2).sum(axis=axes), (error**2).sum(axis=axes)
    kept = signal > 0
    ratio = signal[kept] / np.maximum(noise[kept], signal[kept] * 10 ** (-CHANNEL_SQNR_CAP_DB / 10))
    return float(np.mean(10 * np.log10(ratio))) if kept.any() else 0.0


def _spread(pairs: list[Pair], initializers: dict[str, Any]) -> float:
    """Mean over the pairs' convs of (largest channel range / smallest non-zero one): how unevenly a per-tensor
    scale is shared."""
    from onnx import numpy_helper

    ratios = []
    for conv in {id(c): c for pair in pairs for c in (pair.first, pair.second)}.values():
        ranges = channel_ranges(numpy_helper.to_array(initializers[conv.input[1]]), 0)
        if (ranges > 0).any():
            ratios.append(float(ranges.max()) / float(ranges[ranges > 0].min()))
    return float(np.mean(ratios)) if ratios else 1.0


def _store(initializer: Any, values: np.ndarray) -> None:
    from onnx import numpy_helper

    dtype = numpy_helper.to_array(initializer).dtype
    initializer.CopyFrom(numpy_helper.from_array(values.astype(dtype), initializer.name))


def equalize_file(path: Any, images: Any) -> dict[str, Any]:
    """Equalize the fp32 ONNX model at ``path`` in place, the ReLU6 maxima and the parity measured on ``images``;
    left as it was (and said why) when its outputs would move by more than :data:`PARITY` of their range."""
    import onnx

    from edgecnn.runtime.loader import load

    model = onnx.load(str(path))
    pairs = find_pairs(model)
    if not pairs:
        return {"pairs": 0, "applied": False, "why": "no Conv → ReLU/ReLU6 → Conv chain"}
    before = load(path).run_all(images)
    info = equalize(model, _activity(path, pairs, images))
    candidate = path.with_name(f"{path.stem}.equalized.onnx")
    onnx.save_model(model, str(candidate))
    after = load(candidate).run_all(images)
    error = max(float(np.abs(after[k] - v).max() / max(float(np.abs(v).max()), 1e-12)) for k, v in before.items())
    info["parity_relative_error"] = error
    if not error <= PARITY:  # NaN too
        candidate.unlink()
        return {**info, "applied": False, "why": f"fp32 outputs moved by {error:.2g} of their range > {PARITY:g}"}
    plain, equalized = (round(_rounded_weights_sqnr_db(p, before, images), 2) for p in (path, candidate))
    info["per_tensor_weights_sqnr_db"] = {"as_it_was": plain, "equalized": equalized}
    if not equalized > plain:
        candidate.unlink()
        why = f"per-tensor int8 weights keep the outputs no better equalized ({equalized:g} dB against {plain:g})"
        return {**info, "applied": False, "why": why}
    candidate.replace(path)
    return {**info, "applied": True}


def _rounded_weights_sqnr_db(path: Any, reference: dict[str, np.ndarray], images: Any) -> float:
    """The output SQNR (against ``reference``) of the fp32 graph at ``path`` with every Conv/Gemm/MatMul weight
    rounded to per-tensor symmetric int8: what equalization is for, measured through the whole graph."""
    import os
    import tempfile

    import onnx
    from onnx import numpy_helper

    from edgecnn.analysis.metrics import sqnr_db
    from edgecnn.runtime.loader import load

    model = onnx.load(str(path))
    weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1}
    for initializer in model.graph.initializer:
        values = numpy_helper.to_array(initializer)
        if initializer.name in weights and values.dtype.kind == "f" and np.abs(values).max() > 0:
            _store(initializer, per_tensor_int8(values))
    handle, name = tempfile.mkstemp(suffix=".onnx", dir=os.path.dirname(os.path.abspath(str(path))))
    os.close(handle)
    try:
        onnx.save_model(model, name)
        outputs = load(name).run_all(images)
    finally:
        os.unlink(name)
    return float(np.mean([sqnr_db(reference[k], outputs[k]) for k in reference]))


def _activity(path: Any, pairs: list[Pair], images: Any) -> dict[str, Activity]:
    """Each pair's middle tensor's :class:`Activity` on ``images``."""
    from edgecnn.analysis.layerwise import tensor_batches

    kinds = {p.tensor: p.activation for p in pairs}
    peaks: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in tensor_batches(path, sorted(kinds), images):
        for name, values in batch.items():
            values = values.astype(np.float64)
            axes = tuple(d for d in range(values.ndim) if d != 1)
            read = {"Relu": np.maximum(values, 0.0), "Relu6": np.clip(values, 0.0, RELU6)}.get(kinds[name], values)
            peak, square = values.max(axis=axes), (read**2).sum(axis=axes)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
            squares[name] = squares[name] + square if name in squares else square
            counts[name] = counts.get(name, 0) + values.size // values.shape[1]
    return {name: Activity(peaks[name], np.sqrt(squares[name] / counts[name])) for name in kinds}
