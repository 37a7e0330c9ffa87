"""Error-compensating rounding of a graph's int8 weights before ONNX Runtime quantizes it
(``lowering.weight_rounding``): each quantized Conv/Gemm's float weights are replaced by the grid values the
rounding chose, so that the quantizer's own nearest rounding gives exactly those integers.

The input moments are measured on the fp32 graph over the calibration samples (about
``linear_mean.CORRECTION_PIXELS`` input pixels, as the bias correction): one pass computes every layer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.lowering.onnx.nodes import attribute
from edgecnn.lowering.weight_rounding import chunked, grid_scales, input_moments, patches, round_layer, rounding_record
from edgecnn.runtime.outputs import Inputs, batch_size

LARGEST_INPUT = 4608  # a layer whose rows see more inputs (512 × 3 × 3) keeps the nearest rounding: H⁻¹ costs D³


@dataclass
class Layer:
    """A roundable Conv or Gemm: its node, weight initializer, the weight as rows (groups × rows × D) and, once
    measured, its input moments (groups × D × D, float32 sums)."""

    node: Any
    weight: str  # the initializer's name
    value: np.ndarray
    rows: np.ndarray
    moments: np.ndarray | None = None


@dataclass
class Moments:
    """Every roundable layer of a graph with its input moments over the calibration samples — measured once, the
    same for every grid — and how many layers see too many inputs per row to be rounded."""

    layers: list[Layer]
    samples: int
    too_wide: int


def _layers(model: Any) -> tuple[list[Layer], int]:
    """The Conv (2-D, explicit pads) and Gemm (A not transposed) nodes whose float32 weight is an initializer only
    they read, and how many of them see too many inputs per row to be rounded here."""
    from onnx import numpy_helper

    constants = {i.name: i for i in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    layers, too_wide = [], 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in constants:
            continue
        if readers[node.input[1]] != 1:
            continue
        value = numpy_helper.to_array(constants[node.input[1]])
        if value.dtype != np.float32:
            continue
        if node.op_type == "Conv":
            if value.ndim != 4 or attribute(node, "auto_pad", "NOTSET") != "NOTSET":
                continue
            groups = int(attribute(node, "group", 1))
            rows = value.reshape(groups, value.shape[0] // groups, -1)
        else:
            if value.ndim != 2 or attribute(node, "transA", 0):
                continue
            rows = (value if attribute(node, "transB", 0) else value.T)[None]
        if rows.shape[2] <= LARGEST_INPUT:
            layers.append(Layer(node, node.input[1], value, rows))
        else:
            too_wide += 1
    return layers, too_wide


def _plain(node: Any) -> bool:
    """No padding, unit strides and dilations."""
    return (
        not any(attribute(node, "pads", [0, 0, 0, 0]))
        and list(attribute(node, "strides", [1, 1])) == [1, 1]
        and list(attribute(node, "dilations", [1, 1])) == [1, 1]
    )


def _moments(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The input moments of ``layer`` over the samples ``x`` (its input, float32)."""
    node = layer.node
    if node.op_type == "Gemm":
        return input_moments(x.reshape(len(x), -1)[None])
    groups = int(attribute(node, "group", 1))
    if layer.value.shape[2:] == (1, 1) and groups == 1 and _plain(node):
        flat = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], -1)
        return (flat @ flat.T)[None]
    columns = patches(
        x,
        layer.value.shape[2:],
        groups,
        list(attribute(node, "pads", [0, 0, 0, 0])),
        list(attribute(node, "strides", [1, 1])),
        list(attribute(node, "dilations", [1, 1])),
    )
    return input_moments(columns)


def measure_moments(path: Path, images: Inputs) -> Moments:
    """The roundable layers of the fp32 graph at ``path`` with their input moments over ``images`` (one pass, a
    few samples' layer inputs unfolded together: ``CHUNK_VALUES``)."""
    import onnx

    from edgecnn.analysis.layerwise import tensor_batches

    layers, too_wide = _layers(onnx.load(str(path)))
    measured = Moments(layers, batch_size(images), too_wide)
    if not layers:
        return measured
    sources = sorted({layer.node.input[0] for layer in layers})
    for inputs in chunked(tensor_batches(path, sources, images)):
        for layer in layers:
            found = _moments(layer, inputs[layer.node.input[0]].astype(np.float32, copy=False))
            if layer.moments is None:
                layer.moments = found
            else:
                layer.moments += found
    return measured


@dataclass
class Rounding:
    """Rounded weights by initializer name, and what the rounding did."""

    weights: dict[str, np.ndarray]
    changed: dict[str, int]  # per initializer: the weights whose integer differs from the nearest rounding's
    samples: int
    kept_nearest: int  # roundable-looking layers left to the nearest rounding: too wide, or their rounding failed

    def record(self, names: set[str]) -> dict[str, Any]:
        """What it did to the initializers ``names``: the layers, the share of their weights moved off the nearest
        grid point, the calibration samples measured."""
        sizes, moved = (self.weights[n].size for n in names), (self.changed[n] for n in names)
        return {**rounding_record(sizes, moved, self.samples), "kept_nearest": self.kept_nearest}


def round_on_grid(
    moments: Moments, per_channel: bool, qmax: int = 127, per_channel_weights: set[str] | None = None
) -> Rounding:
    """Each measured layer's weight initializer (by name) → its rounded float values on the symmetric int8 grid
    ORT derives for it (``qmax`` 127; 64 with reduce_range; per output channel or per tensor — per channel too for
    the weights ``per_channel_weights`` names). A layer whose rounding fails keeps the nearest rounding (counted in
    ``kept_nearest``)."""
    rounding = Rounding({}, {}, moments.samples, moments.too_wide)
    for layer in moments.layers:
        try:
            values, changed = _rounded(layer, per_channel or layer.weight in (per_channel_weights or ()), qmax)
        except (ValueError, np.linalg.LinAlgError):
            rounding.kept_nearest += 1
            continue
        rounding.weights[layer.weight], rounding.changed[layer.weight] = values, changed
    return rounding


def _rounded(layer: Layer, per_channel: bool, qmax: int) -> tuple[np.ndarray, int]:
    """The layer's weights rounded with error compensation as float32 in its own layout, and how many of them
    differ from the nearest rounding."""
    if layer.moments is None:
        raise ValueError(f"{layer.node.name}: its input was not measured")
    groups, rows, width = layer.rows.shape
    scales = grid_scales(layer.rows.reshape(groups * rows, width).astype(np.float64), qmax, per_channel)
    grid, changed = round_layer(layer.rows, layer.moments, scales.reshape(groups, rows), qmax, per_channel)
    values = grid.astype(np.float32)
    if layer.node.op_type == "Gemm" and not attribute(layer.node, "transB", 0):
        values = values[0].T
    return values.reshape(layer.value.shape), changed


def with_weights(src: Path, weights: dict[str, np.ndarray], dst: Path) -> None:
    """Write the graph at ``src`` to ``dst`` with the initializers ``weights`` (by name) replaced."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    for initializer in model.graph.initializer:
        if initializer.name in weights:
            initializer.CopyFrom(numpy_helper.from_array(weights[initializer.name], initializer.name))
    onnx.save_model(model, str(dst))
