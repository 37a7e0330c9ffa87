"""Op costs: exact on a hand-built graph, QDQ-aware, and the torch reading equals the exported ONNX graph's."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.costs.op_costs import MAC_CLASSES, OpCost, onnx_op_costs, summarize


def _small_net() -> onnx.ModelProto:
    """x[1,3,8,8] → Conv 3×3 (4 out, pad 1) → Relu → depthwise 3×3 → GlobalAveragePool → Flatten → Gemm(10)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="dw", pads=[1, 1, 1, 1], group=4),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def test_hand_built_graph_exact():
    costs = {c.name: c for c in onnx_op_costs(_small_net())}
    assert set(costs) == {"conv", "dw", "pool", "fc"}  # Relu fused into the conv, Flatten free
    conv, dw, pool, fc = costs["conv"], costs["dw"], costs["pool"], costs["fc"]
    assert (conv.op_class, conv.work) == ("conv", 4 * 8 * 8 * 27)
    assert conv.bytes == (3 * 64 + 4 * 64 + 4 * 27) * 4 and conv.weight_bytes == 4 * 27 * 4
    assert (dw.op_class, dw.work) == ("depthwise", 4 * 8 * 8 * 9)
    assert (pool.op_class, pool.work, pool.bytes) == ("pool", 4 * 64, (4 * 64 + 4) * 4)
    assert (fc.op_class, fc.work, fc.weight_bytes) == ("fc", 10 * 4, 40 * 4)
    # output channels and MACs per output element: what SIMD kernels tile
    assert [(c.channels, c.depth) for c in (conv, dw, pool, fc)] == [(4, 27), (4, 9), (0, 0), (10, 4)]
    int8 = {c.name: c for c in onnx_op_costs(_small_net(), dtype="int8")}
    assert int8["conv"].bytes == conv.bytes / 4 and int8["conv"].dtype == "int8"
    assert OpCost.from_row(conv.to_row(), "conv") == conv
    older = OpCost.from_row(conv.to_row()[:5], "conv")  # a RESULTS.json row from before channels and depth
    assert (older.work, older.channels, older.depth) == (conv.work, 0, 0)
    with pytest.raises(ValueError, match="not an op-cost row"):
        OpCost.from_row(conv.to_row()[:6])


def test_qdq_graph_is_read_as_int8(tmp_path):
    from edgecnn.pipeline.quantize import quantize

    fp32 = tmp_path / "small.onnx"
    onnx.save_model(_small_net(), str(fp32))
    quantize(fp32, tmp_path / "small.int8.onnx", np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype("f"))
    costs = {c.name: c for c in onnx_op_costs(tmp_path / "small.int8.onnx")}
    reference = {c.name: c for c in onnx_op_costs(fp32)}
    # inner Q/DQ nodes cost nothing, the fused Relu stays fused; the boundary's conversions cost
    assert set(costs) == set(reference) | {"quantize_input", "dequantize_output"}
    assert costs["conv"].dtype == "int8" and costs["conv"].work == reference["conv"].work
    assert costs["conv"].weight_bytes == reference["conv"].weight_bytes / 4
    assert (
        (costs["conv"].channels, costs["conv"].depth)
        == (reference["conv"].channels, reference["conv"].depth)
        == (4, 27)
    )
    quantize_input = costs["quantize_input"]
    assert (quantize_input.op_class, quantize_input.dtype, quantize_input.work) == ("elementwise", "int8", 3 * 8 * 8)
    assert quantize_input.bytes == 3 * 8 * 8 * 5  # reads fp32, writes int8
    forced = {c.name for c in onnx_op_costs(fp32, dtype="int8")}
    assert forced == set(costs)  # an int8 export predicted from its fp32 graph has the same operators


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "scaling"),
    [
        ("mobilenet_v1", {"width": 0.5, "resolution": 96}),
        ("mobilenet_v3_small", {"resolution": 96}),
        ("efficientnet_b0", {"resolution": 96}),
        ("resnet18", {"resolution": 64}),
        ("densenet121", {"resolution": 64}),
    ],
)
def test_torch_reading_matches_the_exported_graph(tmp_path, name, scaling):
    """The planner's meta-device reading and the exported, simplified ONNX agree per op class."""
    import torch

    from edgecnn.costs.torch_op_costs import torch_op_costs
    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    torch.manual_seed(0)
    model = create_model(name, **scaling).eval()
    export_onnx(model, (1, *model.input_size), tmp_path / "exported.onnx")
    simplify(tmp_path / "exported.onnx", tmp_path / "model.onnx")

    def per_class(costs):
        totals = defaultdict(lambda: [0, 0.0, 0.0])
        for c in costs:
            totals[c.op_class][0] += 1
            totals[c.op_class][1] += c.work
            totals[c.op_class][2] += c.bytes
        return totals

    for dtype in ("fp32", "int8"):
        torch_costs = torch_op_costs(model, model.input_size, dtype)
        onnx_costs = onnx_op_costs(tmp_path / "model.onnx", dtype=dtype)
        from_torch, from_onnx = per_class(torch_costs), per_class(onnx_costs)
        assert set(from_torch) == set(from_onnx)
        for op_class, (count, work, moved) in from_onnx.items():
            t_count, t_work, t_moved = from_torch[op_class]
            assert t_count == count, (dtype, op_class, t_count, count)
            assert t_work == pytest.approx(work, rel=1e-6), (dtype, op_class)
            assert t_moved == pytest.approx(moved, rel=0.01), (dtype, op_class)

        def shapes(costs):
            return sorted((c.op_class, c.channels, c.depth) for c in costs if c.op_class in MAC_CLASSES)

        assert shapes(torch_costs) == shapes(onnx_costs)
        assert all(channels > 0 and depth > 0 for _, channels, depth in shapes(onnx_costs))
    assert any(p.device.type == "cpu" for p in model.parameters())  # the caller's module was not moved
    assert summarize(torch_op_costs(model, model.input_size))["macs"] > 0
