"""Bias correction of an int8 ``.tflite`` (Nagel et al., "Data-Free Quantization", ICCV 2019, §4.2, with the
input means measured on the calibration samples rather than derived from BatchNorm statistics).

Rounding a layer's weights to int8 shifts the mean of each output channel by ``E[(W_int8 − W) · x]`` — large
where one weight scale is shared by channels of very different ranges (per-tensor weights, depthwise layers). For
every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int8 weights, one pass of the int8 model over the
samples measures the mean of the input it really reads (every tensor kept, dequantized), and the shift is that
mean map through the weights' rounding error, padding included (:func:`conv_mean_response`). Subtracted from the
fp32 model's bias, quantizing again centres every layer.

Only the weights' part is corrected: an int8 kernel's input is already rounded, so the shift a layer's input
rounding or its upstream layers carry cannot be told apart from its own in a ``.tflite`` (the ORT graph keeps the
value before each QuantizeLinear, and :mod:`edgecnn.pipeline.bias_correction` corrects that part too). Rounding to
nearest is close to mean-free; clipping by the activation ranges (percentile, entropy) is not corrected, and the
corrected model is quantized on the ranges calibrated before the correction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.lowering.linear_mean import conv_mean_response, correction_record, dequantize
from edgecnn.lowering.tflite.padding import tf_same_pads

LINEAR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class _Linear:
    """A linear op of the int8 model with int8 weights and a bias, named by its tensors (shared with the fp32
    model)."""

    op_type: str
    input: str
    weight_name: str
    weight: np.ndarray  # dequantized int8 weights, in the .tflite's layout
    bias: str
    options: Any
    scale: np.ndarray  # the weights' scale: one, or one per index of their quantized dimension


def linear_ops(data: bytes) -> list[_Linear]:
    """The CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops of the int8 model ``data`` whose weights are int8 with
    a scale and which have a bias tensor."""
    from edgecnn.lowering.tflite.builder import OPERATOR_NAMES
    from edgecnn.lowering.tflite.flatbuffer import buffer_bytes, litert_schema, parse

    schema, int8 = litert_schema(), parse(data)
    graph = int8.subgraphs[0]
    codes = [code.builtinCode for code in int8.operatorCodes]
    found = []
    for op in graph.operators:
        op_type = OPERATOR_NAMES[codes[op.opcodeIndex]]
        if op_type not in LINEAR_OPS or len(op.inputs) < 3 or min(op.inputs[:3]) < 0:
            continue
        source, weight, bias = (graph.tensors[i] for i in op.inputs[:3])
        quantization = weight.quantization
        if weight.type != schema.TensorType.INT8 or quantization is None or quantization.scale is None:
            continue
        q = np.frombuffer(buffer_bytes(int8, data, weight.buffer), np.int8).reshape(weight.shape)
        weights = dequantize(q, quantization.scale, quantization.zeroPoint, quantization.quantizedDimension)
        names = source.name.decode(), weight.name.decode()
        scale = np.asarray(quantization.scale, np.float64)
        found.append(_Linear(op_type, *names, weights, bias.name.decode(), op.builtinOptions, scale))
    return found


def _input_means(int8: bytes, names: Sequence[str], samples: Sequence[Mapping[str, np.ndarray]]) -> dict:
    """The mean over ``samples`` and the first axis of each tensor of ``names`` (its batch, or a FULLY_CONNECTED
    input's rows) as the int8 model computes it, dequantized (LiteRT's reference kernels, every tensor kept)."""
    from edgecnn.lowering.tflite.flatbuffer import tensor_values

    sums: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}
    for values in tensor_values(int8, names, samples):
        for name, value in values.items():
            sums[name] = sums.get(name, 0) + value.astype(np.float64).sum(axis=0)
            rows[name] = rows.get(name, 0) + value.shape[0]
    return {name: total / rows[name] for name, total in sums.items()}


def conv_geometry(
    op_type: str, weight: np.ndarray, options: Any, input_shape: Sequence[int]
) -> tuple[np.ndarray, int, tuple, tuple, tuple]:
    """A CONV_2D or DEPTHWISE_CONV_2D's ``weight`` (its .tflite layout) as O × C/groups × kh × kw, its groups,
    and its ONNX-order pads (over an input of ``input_shape`` H × W × C), strides and dilations."""
    from edgecnn.lowering.tflite.flatbuffer import litert_schema

    if op_type == "CONV_2D":  # weights O × kh × kw × C/groups
        oihw = weight.transpose(0, 3, 1, 2)
        groups = input_shape[2] // oihw.shape[1]
    else:  # DEPTHWISE_CONV_2D: 1 × kh × kw × C·multiplier; output channel o reads input channel o // multiplier
        oihw, groups = weight[0].transpose(2, 0, 1)[:, None], input_shape[2]
    strides = (options.strideH, options.strideW)
    dilations = (options.dilationHFactor or 1, options.dilationWFactor or 1)
    pads = (0, 0, 0, 0)
    if options.padding == litert_schema().Padding.SAME:
        extents = [(k - 1) * d + 1 for k, d in zip(oihw.shape[2:], dilations, strict=True)]
        pads = tf_same_pads(input_shape[:2], extents, strides)
    return oihw, groups, tuple(pads), strides, dilations


def _shift(layer: _Linear, float_weight: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The mean shift per output channel that rounding ``float_weight`` to ``layer.weight`` adds over the mean
    input ``mean`` (H × W × C for convolutions, features last for FULLY_CONNECTED)."""
    error = layer.weight - float_weight.reshape(layer.weight.shape)
    if layer.op_type == "FULLY_CONNECTED":  # weights [out, in]; the mean over every position of the features
        return error @ mean.reshape(-1, error.shape[1]).mean(axis=0)
    oihw, groups, pads, strides, dilations = conv_geometry(layer.op_type, error, layer.options, mean.shape)
    return conv_mean_response(oihw, mean.transpose(2, 0, 1), groups, pads, strides, dilations)


def weight_shifts(fp32: bytes, int8: bytes, samples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each corrected layer's fp32 bias tensor (by name) → the mean shift per output channel its int8 weights add,
    measured on ``samples`` (the signature's float32 feeds, :func:`signature_feeds`)."""
    from edgecnn.lowering.tflite.flatbuffer import float_constants, parse

    floats = float_constants(parse(fp32))
    layers = [layer for layer in linear_ops(int8) if layer.bias in floats and layer.weight_name in floats]
    means = _input_means(int8, sorted({layer.input for layer in layers}), samples)
    return {
        layer.bias: _shift(layer, floats[layer.weight_name], means[layer.input])
        for layer in layers
        if layer.input in means
    }


def with_biases(fp32: bytes, shifts: Mapping[str, np.ndarray], samples: int) -> tuple[bytes, dict[str, Any]]:
    """``fp32`` with each named bias minus its shift (measured on ``samples`` calibration samples)
    (:func:`with_constants`); what changed (:func:`correction_record`)."""
    from edgecnn.lowering.tflite.flatbuffer import float_constants, parse

    biases = float_constants(parse(fp32))
    new = {
        name: (biases[name].astype(np.float64) - shift).astype(np.float32)
        for name, shift in shifts.items()
        if name in biases and biases[name].size == np.size(shift)
    }
    data, written = with_constants(fp32, new)
    return data, correction_record([shifts[name] for name in written], samples)


def with_constants(fp32: bytes, values: Mapping[str, np.ndarray]) -> tuple[bytes, list[str]]:
    """``fp32`` with the named float32 constant tensors' values replaced, in place in a copy of the flatbuffer (same
    size), and the names written. A tensor whose buffer other tensors share is left as it is (none in edgecnn's
    lowering)."""
    from edgecnn.lowering.tflite.flatbuffer import litert_schema

    schema, data = litert_schema(), bytearray(fp32)
    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    readers = Counter(t.Buffer() for t in tensors)
    written = []
    for tensor in tensors:
        name = tensor.Name().decode()
        value = values.get(name)
        if value is None or readers[tensor.Buffer()] != 1 or tensor.Type() != schema.TensorType.FLOAT32:
            continue
        raw = model.Buffers(tensor.Buffer()).DataAsNumpy()  # a view into ``data``
        if not isinstance(raw, np.ndarray) or raw.size != 4 * value.size:
            continue
        raw.view(np.float32)[:] = np.asarray(value, np.float32).ravel()
        written.append(name)
    return bytes(data), written
