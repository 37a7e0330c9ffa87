"""Error-compensating weight rounding in the ORT quantizer: ONNX Runtime's own rounding lands on the integers it
chose, on the nearest rounding's grid, and the int8 model is closer to fp32 for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load
from tests.pipeline.test_equalize import _sqnr_db


@pytest.fixture
def tinynet_onnx(tmp_path, tinynet_checkpoint, digits_npz) -> tuple[Path, np.ndarray, np.ndarray]:
    """The digits-trained TinyNet as fp32 ONNX, 128 calibration digits and 200 others."""
    import torch

    from edgecnn.pipeline.onnx_export import export_onnx
    from tests.fixtures.tinynet import build_net

    net = build_net()
    net.load_state_dict(torch.load(tinynet_checkpoint["path"], weights_only=True)["state_dict"])
    path = tmp_path / "tinynet.onnx"
    export_onnx(net.eval(), (1, 1, 32, 32), path)
    images = np.load(digits_npz["path"])["images"]
    return path, images[:128], images[128:328]


def int8_weights(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each Conv/Gemm of a QDQ model (by name) → its int8 weights and their scales."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    out = {}
    for node in model.graph.node:
        dq = producers.get(node.input[1]) if node.op_type in ("Conv", "Gemm") else None
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in constants:
            out[node.name] = constants[dq.input[0]], constants[dq.input[1]]
    return out


@pytest.mark.parametrize("per_channel", [True, False])
def test_ort_keeps_the_chosen_integers_on_the_same_grid_and_per_tensor_the_int8_gets_closer(tinynet_onnx, per_channel):
    source, calib, unseen = tinynet_onnx
    reference = next(iter(load(source).run_all(unseen).values()))
    made, sqnr = {}, {}
    with Quantizer(source, calib, per_channel=per_channel, equalize=not per_channel) as quantizer:
        for rounded in (False, True):
            path = quantizer.work.parent / f"{quantizer.work.name}-{rounded}.onnx"
            info = quantizer.quantize(path, "minmax", round_weights=rounded)
            made[rounded] = int8_weights(path)
            out = next(iter(load(path, optimization="disable").run_all(unseen).values()))
            sqnr[rounded] = _sqnr_db(reference, out)
            path.unlink()
        record = info["weight_rounding"]
        rounding = quantizer._rounded[(per_channel, False, ())]
    assert record["layers"] == len(made[True]) == 4 and record["samples"] == 128, record
    moved = 0
    for name, (q, scale) in made[True].items():
        nearest, nearest_scale = made[False][name]
        np.testing.assert_array_equal(scale, nearest_scale)  # the same grid
        moved += int((q != nearest).sum())
    total = sum(q.size for q, _ in made[True].values())
    assert 0.02 < moved / total == pytest.approx(record["weights_moved"], abs=1e-4), (moved / total, record)
    assert sum(rounding.changed.values()) == moved  # ORT rounded the rounded weights to the integers chosen
    if not per_channel:  # per tensor the rounded int8 is nearer fp32 end to end; per channel it need not be: on
        # the AMD host's TinyNet the rounding took the output SQNR from 38.3 to 36.6 dB (calibration digits: 38.9 to
        # 37.4), its layer-wise objective not carrying to the output — why the export leaves it off by default
        assert sqnr[True] > sqnr[False], sqnr


def test_a_layer_kept_float_keeps_its_fp32_weights(tinynet_onnx):
    import onnx
    from onnx import numpy_helper

    source, calib, _ = tinynet_onnx
    with Quantizer(source, calib, round_weights=True) as quantizer:
        model = onnx.load(str(quantizer.preprocessed))
        first = next(n for n in model.graph.node if n.op_type == "Conv")
        fp32 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == first.input[1]))
        dst = quantizer.work / "kept.onnx"
        info = quantizer.quantize(dst, "minmax", keep_float_nodes=(first.name,))
        quantized = onnx.load(str(dst))
        kept = next(n for n in quantized.graph.node if n.name == first.name)
        weight = next(i for i in quantized.graph.initializer if i.name == kept.input[1])
        np.testing.assert_array_equal(numpy_helper.to_array(weight), fp32)
        assert info["weight_rounding"]["layers"] == 3, info["weight_rounding"]


def test_a_gemm_of_transposed_inputs_keeps_the_nearest_rounding_and_the_convs_are_still_rounded(tmp_path):
    """Gemm with transA reads its input columns as samples: not a layout the moments are measured in. It is left to
    the nearest rounding; it must not turn the rounding off for the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = {
        "w1": rng.normal(size=(8, 4, 3, 3)).astype(np.float32),
        "shape": np.array([8 * 36, 1], np.int64),
        "w2": rng.normal(size=(10, 288)).astype(np.float32),
        "b2": np.zeros(10, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Reshape", ["r1", "shape"], ["column"], name="to_column"),  # K × 1 (batch 1)
        helper.make_node("Gemm", ["column", "w2", "b2"], ["y"], transA=1, transB=1, name="gemm"),
    ]
    graph = helper.make_graph(
        nodes,
        "transposed_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    path = tmp_path / "transposed_gemm.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with Quantizer(path, rng.normal(size=(16, 4, 8, 8)).astype(np.float32), round_weights=True) as quantizer:
        record = quantizer.quantize(quantizer.work / "int8.onnx", "minmax")["weight_rounding"]
    assert record["layers"] == 1 and record["weights_moved"] > 0 and "skipped" not in record, record
