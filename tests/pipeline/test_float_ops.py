"""What the ORT int8 graph keeps float, and why: ops without an int8 kernel, shared constants, slower op types."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.pipeline.float_choice import MARGIN, choose_float_op_types, pick
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.pipeline.unshare import MAX_ELEMENTS, unshare_initializers
from edgecnn.runtime.loader import load


def _readers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            readers[name].append(node)
    return readers


def _shared_graph() -> onnx.ModelProto:
    """x → Conv(bias z) → BatchNormalization(mean z, var o, scale o, bias z) → Add(big) → Add(big): the small
    constants z and o merged as a simplifier leaves them, and one large constant read twice."""
    rng = np.random.default_rng(0)
    channels, side = 4, 160  # big: 4×160×160 = 102,400 elements, above MAX_ELEMENTS
    inits = [
        numpy_helper.from_array(rng.standard_normal((channels, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(channels, np.float32), "z"),
        numpy_helper.from_array(np.ones(channels, np.float32), "o"),
        numpy_helper.from_array(rng.standard_normal((1, channels, side, side)).astype(np.float32), "big"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "z"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "o", "z", "z", "o"], ["b"], name="bn"),
        helper.make_node("Add", ["b", "big"], ["a"], name="add1"),
        helper.make_node("Add", ["a", "big"], ["y"], name="add2"),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, side, side])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_small_shared_constants_get_a_copy_per_reader_and_the_outputs_stay(tmp_path: Path):
    model = _shared_graph()
    assert np.prod(model.graph.initializer[3].dims) > MAX_ELEMENTS
    before = tmp_path / "before.onnx"
    onnx.save(model, str(before))
    copies = unshare_initializers(model)
    after = tmp_path / "after.onnx"
    onnx.save(model, str(after))
    onnx.checker.check_model(model)
    # z: conv, bn×2 → 2 copies; o: bn×2 → 1 copy; big stays shared
    assert copies == 3
    readers = _readers(model)
    small = [i.name for i in model.graph.initializer if np.prod(i.dims) <= MAX_ELEMENTS]
    assert all(len(readers[name]) == 1 for name in small), {n: len(readers[n]) for n in small}
    assert len(readers["big"]) == 2
    x = np.random.default_rng(1).standard_normal((1, 1, 160, 160)).astype(np.float32)
    np.testing.assert_array_equal(load(before).run_all(x)["y"], load(after).run_all(x)["y"])
    assert unshare_initializers(model) == 0  # nothing left to copy


def _dense_block(path: Path) -> Path:
    """Two convs concatenated, then BatchNorm → ReLU → conv (DenseNet's pattern: that BatchNorm cannot fold)."""
    import torch
    from torch import nn

    from edgecnn.pipeline.onnx_export import export_onnx

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 3, padding=1)
            self.norm, self.out = nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.norm(torch.cat([self.a(x), self.b(x)], 1))))

    torch.manual_seed(0)
    net = Block()
    with torch.no_grad():
        net.norm.running_mean.uniform_(-1, 1)
        net.norm.running_var.uniform_(0.5, 2)
    export_onnx(net.eval(), (1, 1, 8, 8), path)
    return path


def _initializer_dequantized_into(model: onnx.ModelProto, op_type: str) -> int:
    """How many DequantizeLinear of a constant feed a node of ``op_type``."""
    constants = {i.name for i in model.graph.initializer}
    readers = _readers(model)
    return sum(
        1
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in constants
        for r in readers[n.output[0]]
        if r.op_type == op_type
    )


def test_batchnorm_stays_float_with_float_parameters(tmp_path: Path):
    """ONNX Runtime has no int8 BatchNormalization: ORT's quantizer alone stores its parameters in int8 and
    dequantizes them on every run; edgecnn's keeps them float (and says so)."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    fp32 = _dense_block(tmp_path / "block.onnx")
    images = np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32)
    with Quantizer(fp32, images) as quantizer:
        info = quantizer.quantize(tmp_path / "int8.onnx", "minmax")
        cache = quantizer.ranges("minmax")
        plain = tmp_path / "plain.onnx"  # the same graph and ranges through quantize_static as it comes
        quantize_static(
            str(quantizer.preprocessed),
            str(plain),
            None,
            quant_format=QuantFormat.QDQ,
            calibration_cache_path=str(cache),
        )
    assert _initializer_dequantized_into(onnx.load(str(plain)), "BatchNormalization") >= 2
    ours = onnx.load(str(tmp_path / "int8.onnx"))
    assert _initializer_dequantized_into(ours, "BatchNormalization") == 0
    assert info["float_without_int8_kernel"] == 1
    x = images[:4]
    reference = load(fp32).run_all(x)
    name = next(iter(reference))
    error = np.abs(load(tmp_path / "int8.onnx").run_all(x)[name] - reference[name]).max()
    assert error < 0.1 * np.abs(reference[name]).max(), error


def test_the_fastest_variant_wins_only_by_a_margin():
    assert pick({"none": 1.0, "Concat": 0.95, "all": 0.97}) == "Concat"
    assert pick({"none": 1.0, "Concat": 1 - MARGIN / 2}) == "none"  # within MARGIN: the graph with more int8 stays
    assert pick({"none": 1.0, "Mul": 1.2, "all": 1.3}) == "none"


def test_another_devices_declared_op_types_are_kept_float_untimed(tmp_path: Path):
    made: list[tuple[str, ...]] = []
    kinds, record = choose_float_op_types(lambda _dst, k: made.append(k), ("Gemm",), ("Mul",), tmp_path, False)
    assert kinds == ("Gemm", "Mul") and record["chosen"] == ["Mul"] and "declared" in record["basis"]
    assert made == []  # nothing quantized to be timed


def _picked(choice: dict) -> list[str]:
    """The op types :func:`pick` keeps float from the times a choice recorded."""
    tries = {"+".join(t["float"]) or "none": t["min_ms"] for t in choice["tries"]}
    assert all(ms > 0 for ms in tries.values()), tries
    picked = pick({("all" if "+" in k else k): v for k, v in tries.items()})
    return sorted(choice["candidates"]) if picked == "all" else [] if picked == "none" else [picked]


def test_a_variant_that_cannot_be_made_is_recorded_and_the_others_are_chosen_from(tmp_path: Path):
    """One float variant failing (the quantizer raises, or the runtime refuses it) leaves the all-int8 graph and the
    other variants to choose from, and says why; timed for real in ONNX Runtime."""
    model = tmp_path / "model.onnx"
    onnx.save(_shared_graph(), str(model))

    def quantize(dst: Path, kinds: tuple[str, ...]) -> None:
        if "Refused" in kinds:
            dst.write_bytes(b"not a model")  # written, but no runtime loads it
        elif "Broken" in kinds:
            raise RuntimeError("the quantizer cannot keep Broken float\nsecond line")
        else:
            dst.write_bytes(model.read_bytes())

    kinds, record = choose_float_op_types(quantize, (), ("Broken", "Mul", "Refused"), tmp_path / "work", True)
    assert {tuple(t["float"]) for t in record["tries"]} == {(), ("Mul",)}, record
    failed = {tuple(t["float"]): t["why"] for t in record["failed_tries"]}
    assert set(failed) == {("Broken",), ("Refused",), ("Broken", "Mul", "Refused")}, failed
    assert failed[("Broken",)] == "the quantizer cannot keep Broken float"
    assert record["chosen"] in ([], ["Mul"]) and kinds == tuple(record["chosen"])
    from edgecnn.pipeline.manifest import _float_choice_lines

    (line,) = _float_choice_lines({"slower_in_int8": record}, "ORT int8")
    assert "could not be made: Broken (the quantizer cannot keep Broken float)" in line, line


def test_timed_variants_skip_what_does_not_change_speed_and_the_shipped_graph_has_it(tmp_path: Path):
    """On x86-avx2 (reduce_range) the timed variants are made without bias correction and with 7-bit weights in
    every layer (neither changes a graph's speed, and each costs a quantization more); the graph shipped is made
    again with both: its biases corrected, its weights 8-bit where u8s8 does not saturate."""
    from edgecnn.config.profiles import load_profile
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.pipeline.quantize import quantize_for_target
    from tests.pipeline.test_weight_rounding import int8_weights

    fp32 = _dense_block(tmp_path / "block.onnx")
    images = np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32)
    work, dst = tmp_path / "work", tmp_path / "int8.onnx"
    recipe, profile = recipe_for_family("densenet"), load_profile("x86-avx2")
    with Quantizer(fp32, images, bias_correct=True) as quantizer:
        info, _, _ = quantize_for_target(quantizer, dst, "minmax", recipe, profile, (), work)
    choice = info["keep_float"]["slower_in_int8"]
    assert choice["candidates"] == ["Concat"] and len(choice["tries"]) == 2, choice
    largest = [int(np.abs(q.astype(np.int32)).max()) for p in sorted(work.glob("variant-*.onnx"))
               for q, _ in int8_weights(p).values()]  # fmt: skip
    assert len(largest) == 2 * 3 and max(largest) <= 64  # three convs per variant, all 7-bit
    assert info["bias_correction"]["layers"] > 0 and info["weight_bits"]["eight_bit"] > 0, info
    assert max(int(np.abs(q.astype(np.int32)).max()) for q, _ in int8_weights(dst).values()) > 64


def test_x86_export_times_the_op_types_slower_in_int8_and_keeps_the_faster(shared_export):
    """x86-avx2 measured Concat and AveragePool slower in int8 (benchmarks/int8_op_latency.py): the DenseNet's
    export times its ORT int8 graph with none, each and both of them float, keeps the variant its rule picks from
    the times it recorded (which one is the host's business, not the test's), and the artifact is that variant; its
    int8 `.tflite` runs whole in XNNPACK and is timed against the fp32 one."""
    result = shared_export("densenet")
    quantize = result.manifest["stages"]["quantize"]
    choice = quantize["keep_float"]["slower_in_int8"]
    assert sorted(choice["candidates"]) == ["AveragePool", "Concat"], choice
    assert {"+".join(t["float"]) or "none" for t in choice["tries"]} == {
        "none", "AveragePool", "Concat", "AveragePool+Concat"
    }  # fmt: skip
    assert sorted(choice["chosen"]) == _picked(choice)
    assert quantize["float_without_int8_kernel"] > 0
    int8 = onnx.load(str(result.artifacts["int8_onnx"]))
    readers = _readers(int8)
    for kind in ("Concat", "AveragePool"):
        quantized = [
            r.op_type == "QuantizeLinear" for n in int8.graph.node if n.op_type == kind for r in readers[n.output[0]]
        ]
        assert quantized and any(quantized) == (kind not in choice["chosen"]), (kind, choice["chosen"])
    assert _initializer_dequantized_into(int8, "BatchNormalization") == 0
    assert result.manifest["drift"]["passed"], result.manifest["drift"]["final"]
    int8_tflite = result.manifest["stages"]["tflite"]["int8"]
    choice = int8_tflite["keep_float"]["slower_in_int8"]
    # its BatchNorms and pools are depthwise convolutions in the `.tflite`: no ADD (the declared op) and nothing
    # XNNPACK leaves to LiteRT, so nothing to time (MobileNetV3's timed choice: tests/pipeline/test_xnnpack_choice.py)
    assert choice["candidates"] == [] and choice["chosen"] == [] and int8_tflite["keep_float"]["op_types"] == []
    whole = {"partitions": 1, "undelegated": {}}  # the shipped graph may keep ops float for accuracy (the repair)
    assert {k: choice["all_int8_xnnpack"][k] for k in whole} == whole, choice["all_int8_xnnpack"]
    assert {k: int8_tflite["xnnpack"][k] for k in whole} == whole, int8_tflite["xnnpack"]
    speed = int8_tflite["speed"]
    assert speed["int8_ms"] > 0 and speed["fp32_ms"] > 0 and "LiteRT (XNNPACK)" in speed["basis"]
    assert speed["faster"] == ("int8" if speed["int8_over_fp32"] <= 1 else "fp32")
    slower = [w for w in result.manifest.get("warnings", []) if w.startswith("the int8 .tflite is")]
    assert bool(slower) == (speed["faster"] == "fp32"), slower
    report = (result.out / "report.md").read_text()
    assert "int8 .tflite ops kept float for speed:" not in report and "fp32 .tflite" in report  # nothing to choose
