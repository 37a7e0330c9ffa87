"""Where ONNX Runtime's x86 int8 kernels without VNNI saturate: their u8s8 pair sums, computed on real inputs.

On x86 with AVX2 and without VNNI, ONNX Runtime (MLAS) multiplies uint8 activations by int8 weights with
``vpmaddubsw``: the products of two neighbouring reduction elements are added in 16 bits and saturate at
±32767 before the 32-bit accumulation (255 × 127 × 2 = 64770). The neighbours are elements 2j and 2j+1 of the
reduction in the order MLAS packs it — for a convolution (per group) kernel row, kernel column, then input
channel fastest; for Gemm/MatMul the input features. Depthwise convolutions have their own kernel, which widens
to 32 bits first and does not saturate. (Measured with ONNX Runtime 1.32 on an emulated AVX2 CPU without VNNI,
``qemu-x86_64 -cpu Haswell``: a pair (2j, 2j+1) of 127 weights under 255 inputs gives 32767, any other pair the
exact sum; ``benchmarks/x86_saturation.py``.)

This computes, for each quantized Conv/Gemm of a QDQ graph, how many of its outputs on the given samples have a
saturating pair: zero in every layer means the int8 graph computes on that target what the exact QDQ arithmetic
does, for those samples — what an export needs to know before it gives such a target full 8-bit weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.lowering.onnx.nodes import attribute

LOW, HIGH = -32768, 32767  # int16, where vpmaddubsw saturates
CHUNK_BYTES = 64 << 20  # pair sums held at once


@dataclass
class _Layer:
    node: str
    source: str  # the uint8 tensor (a QuantizeLinear's output) the layer's input DequantizeLinear reads
    zero_point: int  # that tensor's zero point: the value of a convolution's padding
    weight: np.ndarray  # int8, as stored
    onnx_node: Any


def _layers(model: Any) -> list[_Layer]:
    """The Conv/Gemm/MatMul nodes whose input is a dequantized uint8 tensor and whose weights are an int8
    initializer with zero point 0 (ORT's symmetric weights), depthwise convolutions left out."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    layers = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        feed, weights = producers.get(node.input[0]), producers.get(node.input[1])
        if not all(n is not None and n.op_type == "DequantizeLinear" for n in (feed, weights)):
            continue
        if weights.input[0] not in constants or feed.input[0] in constants:
            continue
        weight = numpy_helper.to_array(constants[weights.input[0]])
        zero = feed.input[2] if len(feed.input) > 2 else ""
        activation_zero = numpy_helper.to_array(constants[zero]) if zero in constants else np.zeros((), np.uint8)
        if weight.dtype != np.int8 or activation_zero.dtype != np.uint8:
            continue
        groups = int(attribute(node, "group", 1))
        if node.op_type == "Conv" and weight.ndim == 4 and groups > 1 and weight.shape[:2] == (groups, 1):
            continue  # depthwise (one input and one output channel a group): a kernel that does not saturate
        layers.append(_Layer(node.name, feed.input[0], int(activation_zero.reshape(-1)[0]), weight, node))
    return layers


def _conv_columns(x: np.ndarray, layer: _Layer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per group: the reduction rows of every output position (N·OH·OW × K, K in kernel row, column, channel
    order) and the weights in the same order (O_g × K)."""
    node, w = layer.onnx_node, layer.weight
    groups = int(attribute(node, "group", 1))
    kh, kw = w.shape[2:]
    top, left, bottom, right = list(attribute(node, "pads", [0, 0, 0, 0]))
    sh, sw = list(attribute(node, "strides", [1, 1]))
    dh, dw = list(attribute(node, "dilations", [1, 1]))
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=layer.zero_point)
    n, c, h, wd = padded.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    taps = [
        padded[:, :, y * dh : y * dh + sh * (oh - 1) + 1 : sh, z * dw : z * dw + sw * (ow - 1) + 1 : sw]
        for y in range(kh)
        for z in range(kw)
    ]  # each N × C × OH × OW
    stacked = np.stack(taps, axis=-1)  # N × C × OH × OW × taps
    per_in, per_out = c // groups, w.shape[0] // groups
    rows, weights = [], []
    for g in range(groups):
        part = stacked[:, g * per_in : (g + 1) * per_in]  # N × C_g × OH × OW × taps
        rows.append(part.transpose(0, 2, 3, 4, 1).reshape(n * oh * ow, kh * kw * per_in))
        weights.append(w[g * per_out : (g + 1) * per_out].transpose(0, 2, 3, 1).reshape(per_out, -1))
    return rows, weights


def _saturating(rows: np.ndarray, weights: np.ndarray) -> int:
    """How many (row, output) dot products have a pair (2j, 2j+1) whose 16-bit sum saturates. Inputs are uint8
    (never negative): a pair's sum is bounded by its largest inputs times its weights' magnitudes, so only the
    (pair, output) combinations whose bound exceeds int16 are computed."""
    if rows.shape[1] % 2:
        rows = np.pad(rows, ((0, 0), (0, 1)))
        weights = np.pad(weights, ((0, 0), (0, 1)))
    a = rows.reshape(rows.shape[0], -1, 2)
    w = weights.astype(np.int32).reshape(weights.shape[0], -1, 2)
    top = a.max(axis=0).astype(np.int32)  # pairs × 2: the largest input each element takes
    risky = top[None, :, 0] * np.abs(w[:, :, 0]) + top[None, :, 1] * np.abs(w[:, :, 1]) > HIGH  # outputs × pairs
    pairs = np.flatnonzero(risky.any(axis=0))
    if not len(pairs):
        return 0
    count, step = 0, max(1, CHUNK_BYTES // (4 * max(w.shape[0], 2 * len(pairs))))
    for start in range(0, a.shape[0], step):
        part = a[start : start + step, pairs].astype(np.int32)  # rows × risky pairs × 2
        hit = np.zeros((part.shape[0], w.shape[0]), bool)
        for index, j in enumerate(pairs):
            outs = np.flatnonzero(risky[:, j])
            sums = part[:, index, 0, None] * w[None, outs, j, 0] + part[:, index, 1, None] * w[None, outs, j, 1]
            hit[:, outs] |= (sums > HIGH) | (sums < LOW)
        count += int(np.count_nonzero(hit))
    return count


def layer_saturation(layer: _Layer, x: np.ndarray) -> tuple[int, int]:
    """(saturating outputs, outputs) of ``layer`` on its uint8 input ``x`` (N × C × H × W, or N × K)."""
    node = layer.onnx_node
    if node.op_type == "Conv":
        pairs = list(zip(*_conv_columns(x, layer), strict=True))
    else:
        w = layer.weight
        if node.op_type == "MatMul" or not attribute(node, "transB", 0):
            w = w.T  # outputs × K
        pairs = [(x.reshape(-1, w.shape[1]), w)]
    saturating = sum(_saturating(rows, weights) for rows, weights in pairs)
    return saturating, sum(rows.shape[0] * weights.shape[0] for rows, weights in pairs)


def u8s8_saturation(int8_path: Path, images: Any) -> dict[str, Any]:
    """Every layer of the QDQ model at ``int8_path`` that saturates on ``images`` (node → saturating outputs,
    their share), how many layers and outputs were computed, and how many layers lack a name of their own."""
    import onnx

    from edgecnn.analysis.layerwise import tensor_batches

    every = _layers(onnx.load(str(int8_path)))
    layers = [layer for layer in every if computable(layer)]
    counts = {layer.node: [0, 0] for layer in layers}
    sources = sorted({layer.source for layer in layers})
    for batch in tensor_batches(int8_path, sources, images) if sources else ():
        for layer in layers:
            saturating, total = layer_saturation(layer, batch[layer.source])
            counts[layer.node][0] += saturating
            counts[layer.node][1] += total
    saturating: dict[str, dict[str, Any]] = {
        name: {"outputs": hit, "share": round(hit / total, 6)} for name, (hit, total) in counts.items() if hit
    }
    for layer in every:  # what is not computed counts as saturating: it keeps the guard
        if not computable(layer):
            saturating[layer.node] = {"outputs": None, "share": None, "not_computed": _why_not(layer)}
    names = [layer.node for layer in every]
    unnamed = len(names) - len({n for n in names if n})  # layers a splice by name could not tell apart
    return {
        "layers": len(every),
        "outputs": sum(t for _, t in counts.values()),
        "saturating": saturating,
        "unnamed": unnamed,
    }


def _why_not(layer: _Layer) -> str:
    node = layer.onnx_node
    if layer.weight.ndim != (4 if node.op_type == "Conv" else 2):
        return f"{layer.weight.ndim}-D weights"
    return "auto_pad" if node.op_type == "Conv" else "transA"


def computable(layer: _Layer) -> bool:
    """Whether the pair sums of ``layer`` are computed here: 2-D convolutions with explicit pads, Gemm without
    transA and MatMul of a weight matrix."""
    node = layer.onnx_node
    if node.op_type == "Conv":
        return layer.weight.ndim == 4 and attribute(node, "auto_pad", "NOTSET") == "NOTSET"
    return layer.weight.ndim == 2 and not attribute(node, "transA", 0)
