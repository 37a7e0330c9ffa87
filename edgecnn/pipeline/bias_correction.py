"""Empirical bias correction of a QDQ int8 model (Nagel et al., "Data-Free Quantization", ICCV 2019, §4.2, measured
on the calibration samples rather than derived from BatchNorm statistics).

Int8 weights and activations shift the mean of every Conv/Gemm output; the next layers see a biased input. For
each layer this measures the shift that layer itself adds — the mean of (int8 output − fp32 output) per output
channel, minus what the difference of its inputs before their quantization carries through its int8 weights
(that part belongs to the layers upstream, corrected there) — and subtracts it from the fp32 bias, so that
quantizing again centres every layer. One pass over the samples measures every layer at once; the linear part
is exact, padding included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.lowering.linear_mean import conv_mean_response, correction_record, dequantize
from edgecnn.lowering.onnx.nodes import attribute
from edgecnn.runtime.outputs import Inputs, batch_size


@dataclass
class Layer:
    """A quantized Conv or Gemm of the int8 graph: its fp32 input (before that input's quantization), output,
    int8 weights as floats and geometry."""

    node: str
    op_type: str
    source: str  # the input tensor before QuantizeLinear (the same name in the fp32 graph)
    output: str
    weight: np.ndarray  # dequantized
    onnx_node: Any  # its geometry: group, pads, strides, dilations (Conv); transB, alpha (Gemm)


def quantized_layers(int8: Any) -> list[Layer]:
    """The Conv/Gemm nodes of a QDQ model whose weights are int8 initializers behind a DequantizeLinear."""
    from onnx import numpy_helper

    graph = int8.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    layers = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in constants:
            continue
        weight = _dequantized(dq, constants)
        if node.op_type == "Conv" and (weight.ndim != 4 or attribute(node, "auto_pad", "NOTSET") != "NOTSET"):
            continue  # the mean response is worked out for 2-D convolutions with explicit pads
        source = node.input[0]
        feed = producers.get(source)
        if feed is not None and feed.op_type == "DequantizeLinear":
            q = producers.get(feed.input[0])
            source = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else source
        layers.append(Layer(node.name, node.op_type, source, node.output[0], weight, node))
    return layers


def _dequantized(dq: Any, constants: dict[str, np.ndarray]) -> np.ndarray:
    """The float weights a DequantizeLinear of an initializer gives (per tensor or along its axis)."""
    zero = constants[dq.input[2]] if len(dq.input) > 2 and dq.input[2] else None
    return dequantize(constants[dq.input[0]], constants[dq.input[1]], zero, int(attribute(dq, "axis", 1)))


class _Means:
    """Running means over samples of tensors: per channel (dim 1) for outputs, per position for inputs."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0

    def add(self, name: str, values: np.ndarray) -> None:
        total = values.sum(axis=0).astype(np.float64)  # a batch summed in float32, the running sum in float64
        self.sums[name] = self.sums.get(name, 0) + total

    def mean(self, name: str) -> np.ndarray:
        return self.sums[name] / self.count


def _run(
    path: Path, tensors: dict[str, str], images: Inputs, means: _Means, sign: float, activations: dict | None = None
) -> None:
    """Add ``sign`` × each tensor of ``tensors`` (key → its name in this model) over ``images`` to ``means`` under
    its key (graph optimizations off), through ``activations[key]`` (low, high) clipping where given."""
    from edgecnn.analysis.layerwise import tensor_batches

    for batch in tensor_batches(path, list(tensors.values()), images):
        for key, name in tensors.items():
            bounds = (activations or {}).get(key)
            value = batch[name] if bounds is None else np.clip(batch[name], *bounds)
            means.add(key, sign * value)
    means.count = batch_size(images)


def _carried(layer: Layer, difference: np.ndarray) -> np.ndarray:
    """The mean per output channel of ``layer``'s int8 weights applied to an input ``difference`` (mean map over
    samples, C × H × W or C), bias left out: exact for Conv with pads, strides, dilations and groups."""
    w, node = layer.weight, layer.onnx_node
    if layer.op_type == "Gemm":
        matrix = w.T if attribute(node, "transB", 0) else w  # y = x @ matrix
        return difference.reshape(-1) @ matrix * attribute(node, "alpha", 1.0)
    return conv_mean_response(
        w,
        difference,
        int(attribute(node, "group", 1)),
        list(attribute(node, "pads", [0, 0, 0, 0])),
        list(attribute(node, "strides", [1, 1])),
        list(attribute(node, "dilations", [1, 1])),
    )


def layer_shifts(fp32: Path, int8: Path, images: Inputs) -> dict[str, np.ndarray]:
    """Each quantized Conv/Gemm of ``int8`` (by output tensor) → the mean shift per output channel it adds itself,
    measured against ``fp32`` on ``images``."""
    import onnx
    from onnx import numpy_helper

    fp32_model = onnx.load(str(fp32))
    producers = {out: node for node in fp32_model.graph.node for out in node.output}
    constants = {i.name: numpy_helper.to_array(i) for i in fp32_model.graph.initializer}
    fp32_inputs = {i.name for i in fp32_model.graph.input}

    def fp32_name(name: str) -> str | None:  # ORT renames a graph output's producer '<name>_QuantizeLinear_Input'
        for candidate in (name, name.removesuffix("_QuantizeLinear_Input")):
            if candidate in producers or candidate in fp32_inputs:
                return candidate
        return None

    def folded(name: str) -> tuple[float, float] | None:
        """The (low, high) of the ReLU/Clip the QDQ graph folded into its output quantization when ``name`` is
        such an activation's output in fp32 (the int8 graph has its producer's raw output under that name)."""
        node = producers.get(name)
        if node is None or node.op_type not in ("Relu", "Clip"):
            return None
        if node.op_type == "Relu":
            return 0.0, np.inf
        bounds = [float(constants[n]) if n in constants else None for n in list(node.input[1:3]) + [""] * 2][:2]
        return (-np.inf if bounds[0] is None else bounds[0]), (np.inf if bounds[1] is None else bounds[1])

    layers = [
        layer
        for layer in quantized_layers(onnx.load(str(int8)))
        if fp32_name(layer.output) is not None and fp32_name(layer.source) is not None
    ]
    if not layers:
        return {}
    outputs, sources = {}, {}
    for layer in layers:
        name = fp32_name(layer.output)
        # a folded activation: compare the conv's own output, the activation's input in fp32
        outputs[layer.output] = producers[name].input[0] if folded(name) and producers[name].input[0] else name
        sources[layer.source] = fp32_name(layer.source)
    int8_tensors = {**{key: t for t, key in outputs.items()}, **{key: t for t, key in sources.items()}}
    int8_tensors = {key: t for key, t in int8_tensors.items() if key not in fp32_inputs}
    clips = {key: folded(key) for key in int8_tensors if key in sources.values() and folded(key)}
    difference = _Means()
    _run(int8, int8_tensors, images, difference, 1.0, clips)
    _run(fp32, {key: key for key in int8_tensors}, images, difference, -1.0)
    shifts = {}
    for layer in layers:
        out = difference.mean(outputs[layer.output])
        total = out.reshape(out.shape[0], -1).mean(axis=1) if out.ndim > 1 else out
        source = sources[layer.source]
        carried = 0.0 if source in fp32_inputs else _carried(layer, difference.mean(source))
        shifts[outputs[layer.output]] = total - carried
    return shifts


def correct_biases(fp32: Path, shifts: dict[str, np.ndarray], dst: Path, samples: int) -> dict[str, Any]:
    """Write ``fp32`` to ``dst`` with each layer's bias minus its shift (a zero bias added where there was none,
    the shifts measured on ``samples`` calibration samples); what changed (:func:`correction_record`)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    initializers = {i.name: i for i in model.graph.initializer}
    corrected = []
    for node in model.graph.node:
        shift = shifts.get(node.output[0]) if node.op_type in ("Conv", "Gemm") else None
        if shift is None:
            continue
        if len(node.input) > 2 and node.input[2] in initializers:
            bias = numpy_helper.to_array(initializers[node.input[2]])
            initializers[node.input[2]].CopyFrom(
                numpy_helper.from_array((bias - shift).astype(bias.dtype), node.input[2])
            )
        elif len(node.input) <= 2:
            name = f"{node.output[0]}_bias_corrected"
            model.graph.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), name))
            node.input.append(name)
        else:
            continue
        corrected.append(shift)
    onnx.save_model(model, str(dst))
    return correction_record(corrected, samples)
