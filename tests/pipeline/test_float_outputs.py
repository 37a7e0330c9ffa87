"""Graph outputs made by a Gemm or MatMul leave the int8 graph unrounded: ONNX Runtime still runs the product in
int8 (QGemm, MatMulIntegerToFloat) and writes float; a Conv's output, or an output something else reads, keeps its
QuantizeLinear → DequantizeLinear pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load


def _model(tmp_path: Path, head: str) -> Path:
    """Conv → Relu → pool → flatten → ``head``: ``gemm`` or ``matmul`` (logits ``y``), ``gemm+softmax`` (``y`` and
    its softmax ``p``), or ``conv`` (a 1×1 conv head ``y`` beside the pooled Gemm logits ``z``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = {
        "w1": rng.normal(0, 0.3, (16, 4, 3, 3)).astype(np.float32),
        "w2": rng.normal(0, 0.3, (10, 16)).astype(np.float32),
        "b2": rng.normal(0, 0.1, 10).astype(np.float32),
        "w3": rng.normal(0, 0.3, (16, 10)).astype(np.float32),
        "wh": rng.normal(0, 0.3, (3, 16, 1, 1)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r1"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["features"], name="flatten"),
    ]
    outputs = ["y"]
    if head == "matmul":
        nodes.append(helper.make_node("MatMul", ["features", "w3"], ["y"], name="fc"))
    else:
        out = "z" if head == "conv" else "y"
        nodes.append(helper.make_node("Gemm", ["features", "w2", "b2"], [out], transB=1, name="fc"))
    if head == "gemm+softmax":
        nodes.append(helper.make_node("Softmax", ["y"], ["p"], axis=1, name="softmax"))
        outputs = ["y", "p"]
    if head == "conv":
        nodes.append(helper.make_node("Conv", ["r1", "wh"], ["y"], name="head"))
        outputs = ["y", "z"]
    graph = helper.make_graph(
        nodes,
        head,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    path = tmp_path / f"{head}.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _int8(tmp_path: Path, head: str) -> tuple[Path, dict, np.ndarray]:
    images = np.random.default_rng(1).normal(size=(32, 4, 8, 8)).astype(np.float32)
    dst = tmp_path / f"{head}.int8.onnx"
    with Quantizer(_model(tmp_path, head), images[:16]) as quantizer:
        record = quantizer.quantize(dst, "minmax")
    return dst, record, images[16:]


def _optimized_ops(path: Path, tmp_path: Path) -> list[str]:
    """The op types of ONNX Runtime's optimized graph (every optimization on, this host's kernels)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def _producer(path: Path, output: str) -> str:
    import onnx

    graph = onnx.load(str(path)).graph
    return next(n.op_type for n in graph.node if output in n.output)


@pytest.mark.parametrize(("head", "fused"), [("gemm", "QGemm"), ("matmul", "MatMulIntegerToFloat")])
def test_logits_of_a_gemm_or_matmul_are_its_int8_product_in_float(tmp_path, head, fused):
    dst, record, unseen = _int8(tmp_path, head)
    assert record["float_outputs"] == ["y"]
    assert _producer(dst, "y") == {"gemm": "Gemm", "matmul": "MatMul"}[head]
    ops = _optimized_ops(dst, tmp_path)
    assert fused in ops and "Gemm" not in ops and "MatMul" not in ops, ops  # still int8, one kernel, float out
    assert ops[-1] == fused, ops  # no DequantizeLinear after it
    exact = next(iter(load(dst, optimization="disable").run_all(unseen).values()))
    host = next(iter(load(dst, optimization="all").run_all(unseen).values()))
    np.testing.assert_allclose(host, exact, rtol=1e-4, atol=1e-4)
    assert len(np.unique(exact)) == exact.size  # off any 8-bit grid: no two of the 160 logits tie


def test_an_output_something_else_reads_keeps_its_rounding(tmp_path):
    dst, record, _ = _int8(tmp_path, "gemm+softmax")
    assert record["float_outputs"] == []
    assert _producer(dst, "y") == "DequantizeLinear"


def test_a_conv_output_keeps_its_rounding_and_the_gemm_beside_it_does_not(tmp_path):
    dst, record, _ = _int8(tmp_path, "conv")
    assert record["float_outputs"] == ["z"]
    assert _producer(dst, "y") == "DequantizeLinear" and _producer(dst, "z") == "Gemm"
    ops = _optimized_ops(dst, tmp_path)
    assert ops.count("QLinearConv") == 2 and "Conv" not in ops, ops  # both convolutions stay int8


def test_the_trained_tinynet_logits_get_closer_to_fp32(tmp_path, tinynet_checkpoint, digits_npz, monkeypatch):
    """On the digits TinyNet the unrounded logits are nearer fp32 than the 8-bit ones ORT's pair made (the same
    quantization with this step turned off)."""
    import torch

    import edgecnn.pipeline.quantize as quantize_module
    from edgecnn.pipeline.onnx_export import export_onnx
    from tests.fixtures.tinynet import build_net
    from tests.pipeline.test_equalize import _sqnr_db

    net = build_net()
    net.load_state_dict(torch.load(tinynet_checkpoint["path"], weights_only=True)["state_dict"])
    source = tmp_path / "tinynet.onnx"
    export_onnx(net.eval(), (1, 1, 32, 32), source)
    images = np.load(digits_npz["path"])["images"]
    calib, unseen = images[:128], images[128:528]
    floated, rounded = tmp_path / "floated.onnx", tmp_path / "rounded.onnx"
    with Quantizer(source, calib) as quantizer:
        assert len(quantizer.quantize(floated, "minmax")["float_outputs"]) == 1
        monkeypatch.setattr(quantize_module, "float_outputs", lambda model: [])
        assert quantizer.quantize(rounded, "minmax")["float_outputs"] == []
    fp32 = next(iter(load(source).run_all(unseen).values()))
    unrounded = next(iter(load(floated, optimization="disable").run_all(unseen).values()))
    eight_bit = next(iter(load(rounded, optimization="disable").run_all(unseen).values()))
    assert _sqnr_db(fp32, unrounded) > _sqnr_db(fp32, eight_bit) + 0.5, (
        _sqnr_db(fp32, unrounded),
        _sqnr_db(fp32, eight_bit),
    )
