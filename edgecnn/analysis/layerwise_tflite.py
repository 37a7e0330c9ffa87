"""Where an int8 ``.tflite`` goes wrong: SQNR of every quantized op output against its fp32 twin, and the noise
each op adds — the ranking of :mod:`edgecnn.analysis.layerwise`, for the LiteRT interpreter's own int8 kernels.

Both models run in LiteRT without XNNPACK, every tensor kept (ai-edge-quantizer's interpreter helpers, which
dequantize int8 tensors); a quantized tensor keeps its float twin's name. An op is named by its output tensors,
``;``-joined, as ``TfliteQuantizer.ops`` names it, so a ranked op can be kept float by the repair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgecnn.analysis.layerwise import SQNR_CAP_DB, LayerError


def tensor_sqnr(fp32: bytes, int8: bytes, samples: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]):
    """SQNR (dB, capped) and mean cosine of each tensor of ``names`` present in both models, pooled over the
    ``samples`` (the signature's feeds, float32)."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as utils

    from edgecnn.lowering.tflite.flatbuffer import SIGNATURE, kept_interpreter

    (ref, ref_graph, ref_details), (got, got_graph, got_details) = kept_interpreter(fp32), kept_interpreter(int8)
    names = [n for n in names if n in ref_details and n in got_details and np.all(ref_details[n]["shape"])]
    signal, noise, cosine = (dict.fromkeys(names, 0.0) for _ in range(3))
    for sample in samples:
        utils.invoke_interpreter_signature(ref, dict(sample), SIGNATURE)
        utils.invoke_interpreter_signature(got, dict(sample), SIGNATURE)
        for name in names:
            a = utils.get_tensor_data(ref, ref_details[name], ref_graph).astype(np.float64).ravel()
            b = utils.get_tensor_data(got, got_details[name], got_graph).astype(np.float64).ravel()
            signal[name] += float(a @ a)
            noise[name] += float((a - b) @ (a - b))
            norms = float(np.linalg.norm(a) * np.linalg.norm(b))
            cosine[name] += float(a @ b) / norms if norms > 0 else float(np.array_equal(a, b))
    sqnr = {
        n: SQNR_CAP_DB if noise[n] == 0 else min(SQNR_CAP_DB, 10 * np.log10(max(signal[n], 1e-300) / noise[n]))
        for n in names
    }
    return sqnr, {n: cosine[n] / max(len(samples), 1) for n in names}


def tflite_layer_errors(
    fp32: bytes, int8: bytes, samples: Sequence[Mapping[str, np.ndarray]], ops: Mapping[str, str]
) -> list[LayerError]:
    """Every op of ``ops`` (output tensors ``;``-joined → op type, the float model's) whose output is quantized in
    ``int8``, against ``fp32`` on ``samples``: its SQNR and the noise it adds (the worst SQNR of its inputs minus
    its own), worst SQNR first."""
    from edgecnn.lowering.tflite.flatbuffer import parse
    from edgecnn.lowering.tflite.quantize import quantized_tensors

    float_model = parse(fp32)
    tensors = float_model.subgraphs[0].tensors
    inputs_of = {
        ";".join(tensors[i].name.decode() for i in op.outputs): [tensors[i].name.decode() for i in op.inputs if i >= 0]
        for op in float_model.subgraphs[0].operators
    }
    quantized = quantized_tensors(parse(int8))
    activations = {t for op in ops for t in op.split(";")} | {
        tensors[i].name.decode() for i in float_model.subgraphs[0].inputs
    }
    sqnr, cosine = tensor_sqnr(fp32, int8, samples, sorted(activations))
    errors = []
    for op, op_type in ops.items():
        output = op.split(";")[0]
        if output not in sqnr or output not in quantized:
            continue
        upstream = [sqnr[name] for name in inputs_of.get(op, ()) if name in sqnr]
        added = (min(upstream) if upstream else SQNR_CAP_DB) - sqnr[output]
        errors.append(LayerError(output, op, op_type, float(sqnr[output]), cosine[output], float(added), (op,)))
    return sorted(errors, key=lambda e: e.sqnr_db)


def rank_tflite(fp32: bytes, int8: bytes, images: Any, input_layout: str) -> list[LayerError]:
    """:func:`tflite_layer_errors` of every op of ``fp32``, on NCHW float32 ``images`` (an array, or one per input
    name) fed in the model's ``input_layout``."""
    from edgecnn.lowering.tflite.flatbuffer import parse
    from edgecnn.lowering.tflite.quantize import op_names, signature_feeds

    model = parse(fp32)
    return tflite_layer_errors(fp32, int8, signature_feeds(model, images, input_layout), op_names(model))
