"""Error-compensating rounding of an int8 ``.tflite``'s weights (:mod:`edgecnn.lowering.weight_rounding` on the
``.tflite``'s layouts).

For every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED that a first quantization made int8, the input moments
are measured on the fp32 model over the calibration samples, the weights are rounded on that quantization's own
grid (its scales), and the grid values are written over the fp32 weights: ai-edge-quantizer, quantizing the model
again on the same ranges, derives the same scales (each row keeps its largest weight on the grid's end) and rounds
to the integers chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgecnn.lowering.tflite.bias_correction import conv_geometry, linear_ops
from edgecnn.lowering.weight_rounding import chunked, input_moments, patches, round_layer

QMAX = 127  # ai-edge-quantizer's int8 weights are symmetric in [-127, 127]


def _rows(layer: Any, float_weight: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, Any]:
    """The layer's fp32 weights as groups × rows × D, and how to unfold its input (an H × W × C sample shape) into
    the matching columns."""
    weight = float_weight.reshape(layer.weight.shape).astype(np.float64)
    if layer.op_type == "FULLY_CONNECTED":  # weights [out, in]
        return weight[None], lambda x: x.reshape(-1, weight.shape[1])[None]
    oihw, groups, pads, strides, dilations = conv_geometry(layer.op_type, weight, layer.options, shape)
    rows = oihw.reshape(groups, oihw.shape[0] // groups, -1)
    return rows, lambda x: patches(x.transpose(0, 3, 1, 2), oihw.shape[2:], groups, pads, strides, dilations)


def _layout(layer: Any, values: np.ndarray) -> np.ndarray:
    """Rows (groups × rows × D) back in the layer's .tflite weight layout."""
    if layer.op_type == "FULLY_CONNECTED":
        return values[0]
    kh, kw = layer.weight.shape[1:3]  # O × kh × kw × C/groups, or 1 × kh × kw × C·multiplier
    oihw = values.reshape(-1, values.shape[2] // (kh * kw), kh, kw)
    if layer.op_type == "CONV_2D":
        return oihw.transpose(0, 2, 3, 1)
    return oihw[:, 0].transpose(1, 2, 0)[None]


def rounded_weights(
    fp32: bytes, int8: bytes, samples: Sequence[Mapping[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Each int8 linear op's fp32 weight tensor (by name) → its weights rounded with error compensation on
    ``int8``'s grid, as float32 in the fp32 model's layout; and per tensor the weights whose integer differs from
    the nearest rounding's. The moments are measured on ``samples`` (the signature's float32 feeds)."""
    from edgecnn.lowering.tflite.flatbuffer import float_constants, parse, tensor_values

    floats = float_constants(parse(fp32))
    layers = [layer for layer in linear_ops(int8) if layer.weight_name in floats]
    moments: dict[str, np.ndarray] = {}
    unfold: dict[str, Any] = {}
    rows: dict[str, np.ndarray] = {}
    for inputs in chunked(tensor_values(fp32, sorted({layer.input for layer in layers}), samples)):
        for layer in layers:
            x, weight = inputs.get(layer.input), layer.weight_name
            if x is None:
                continue
            if weight not in rows:
                rows[weight], unfold[weight] = _rows(layer, floats[weight], x.shape[1:])
            found = input_moments(unfold[weight](x))
            if weight in moments:
                moments[weight] += found
            else:
                moments[weight] = found
    out, changed = {}, {}
    for layer in layers:
        name = layer.weight_name
        if name not in moments:
            continue
        groups, count, _ = rows[name].shape
        scales = np.broadcast_to(layer.scale, (groups * count,)).astype(np.float64).reshape(groups, count)
        grid, changed[name] = round_layer(rows[name], moments[name], scales, QMAX, layer.scale.size > 1)
        out[name] = _layout(layer, grid).astype(np.float32)
    return out, changed
