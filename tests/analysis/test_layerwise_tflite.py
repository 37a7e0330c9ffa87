"""The int8 `.tflite`'s per-op noise ranking: a conv whose weight scale is broken adds the most noise."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")

from ai_edge_litert import schema_py_generated as schema

from edgecnn.analysis.layerwise_tflite import tflite_layer_errors
from edgecnn.lowering.tflite.quantize import TfliteQuantizer


def _fp32_tflite() -> bytes:
    import torch
    from torch import nn

    from edgecnn.lowering.tflite import convert
    from edgecnn.pipeline.onnx_export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).eval()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, (1, 1, 8, 8), path)
        return convert(path).data


def _broken(int8: bytes, op: str) -> bytes:
    """``int8`` with the weight scales of the op whose outputs are ``op`` multiplied by 3."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(int8), 0)
    graph = model.subgraphs[0]
    (target,) = [o for o in graph.operators if ";".join(graph.tensors[i].name.decode() for i in o.outputs) == op]
    weights = graph.tensors[target.inputs[1]].quantization
    weights.scale = [s * 3 for s in weights.scale]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_broken_weight_scale_ranks_its_op_first():
    fp32 = _fp32_tflite()
    x = np.random.default_rng(0).normal(size=(24, 1, 8, 8)).astype(np.float32)
    quantizer = TfliteQuantizer(fp32, x[:16], "NHWC")
    int8 = quantizer.quantize_bytes().data
    samples = quantizer.samples(x[16:])
    errors = tflite_layer_errors(fp32, int8, samples, quantizer.ops)
    convs = [op for op, kind in quantizer.ops.items() if kind == "CONV_2D"]
    assert {e.node for e in errors} >= set(convs) and all(e.nodes == (e.node,) for e in errors)
    assert all(e.sqnr_db > 20 for e in errors), [(e.node, e.sqnr_db) for e in errors]
    broken = _broken(int8, convs[1])
    ranked = sorted(tflite_layer_errors(fp32, broken, samples, quantizer.ops), key=lambda e: -e.added_noise_db)
    assert ranked[0].node == convs[1] and ranked[0].added_noise_db > 10, [(e.node, e.added_noise_db) for e in ranked]
