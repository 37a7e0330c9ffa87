"""For a device that cannot be timed here, the int8 `.tflite` keeps float the ops XNNPACK leaves to LiteRT's kernels,
chosen by the delegate's partitions, counted here (the delegate's decision is its code's, not the CPU's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgecnn.config.profiles import load_profile
from edgecnn.lowering.tflite.flatbuffer import parse
from edgecnn.runtime.xnnpack import delegation


def _arm_profile(tmp_path: Path, **changes: object) -> Path:
    """raspberrypi4 (not this host's kernels: nothing is timed) with ``changes`` to its int8 section."""
    data = yaml.safe_load(Path(load_profile("raspberrypi4").path).read_text())
    data["int8"].update(changes)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def arm_export(tmp_path_factory):
    """MobileNetV3-small at 64² (random weights, synthetic calibration) for an ARM profile that declares MUL slower
    in int8: a delegated op, beside the HARD_SWISH the delegate refuses."""
    from edgecnn.pipeline.export import export

    tmp = tmp_path_factory.mktemp("xnnpack")
    profile = _arm_profile(tmp, slower_tflite_ops=["MUL"])
    return export("mobilenet_v3_small", profile=str(profile), out=tmp / "out", formats="onnx,tflite", resolution=64)


def _types(path: Path, op: str) -> set[str]:
    from ai_edge_litert import schema_py_generated as schema

    model = parse(path.read_bytes())
    graph, codes = model.subgraphs[0], [c.builtinCode for c in model.operatorCodes]
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    code = getattr(schema.BuiltinOperator, op)
    return {names[graph.tensors[o.outputs[0]].type] for o in graph.operators if codes[o.opcodeIndex] == code}


def test_the_ops_xnnpack_refuses_in_int8_are_kept_float_by_the_fewest_partitions(arm_export):
    tflite = arm_export.manifest["stages"]["tflite"]
    choice = tflite["int8"]["keep_float"]["slower_in_int8"]
    all_int8 = choice["all_int8_xnnpack"]
    hard_swish = all_int8["undelegated"].get("HARD_SWISH", 0)
    assert hard_swish > 0 and all_int8["partitions"] > 1, all_int8  # each refused HARD_SWISH splits the graph
    assert choice["candidates"] == ["MUL", "HARD_SWISH"], choice  # declared, then refused; delegated ADDs are not
    tries = {"+".join(t["float"]) or "none": t["partitions"] for t in choice["tries"]}
    assert set(tries) == {"none", "MUL", "HARD_SWISH", "MUL+HARD_SWISH"} and "min_ms" not in str(choice["tries"])
    assert tries["none"] == all_int8["partitions"] and tries["HARD_SWISH"] < tries["none"], tries
    assert choice["chosen"] == ["HARD_SWISH"], choice  # MUL float joins nothing: the tie keeps fewer float ops
    assert "fewest XNNPACK partitions" in choice["basis"]
    shipped = arm_export.artifacts["int8_tflite"]
    assert tflite["int8"]["xnnpack"] == delegation(shipped).to_dict()
    assert tflite["int8"]["xnnpack"]["partitions"] == tries["HARD_SWISH"] == 1, tflite["int8"]["xnnpack"]
    assert _types(shipped, "HARD_SWISH") == {"FLOAT32"} and _types(shipped, "MUL") == {"INT8"}
    assert tflite["int8"]["bias_correction"]["layers"] > 0  # the chosen variant, made again as the export asks
    assert tflite["xnnpack"] == {"partitions": 1, "nodes": tflite["xnnpack"]["nodes"], "undelegated": {}}
    assert "ai-edge-litert" in arm_export.manifest["tools"]
    assert not [w for w in arm_export.manifest["warnings"] if "XNNPACK takes" in w]  # nothing left split to say
    report = (arm_export.out / "report.md").read_text()
    assert f"none {tries['none']} partition(s); MUL {tries['MUL']} partition(s); HARD_SWISH 1 partition(s)" in report
    assert "int8 .tflite: XNNPACK takes" in report and "in 1 partition(s)" in report


def test_delegation_names_the_refused_nodes_and_an_nnapi_target_counts_none(arm_export, tmp_path: Path):
    """The all-int8 graph, made again: its undelegated nodes are exactly its int8 HARD_SWISHes. NNAPI takes what
    its driver supports, so XNNPACK's partitions say nothing of it: its export counts none and keeps none float."""
    import numpy as np

    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.float_choice import choose_tflite_float_ops

    manifest = arm_export.manifest
    fp32 = arm_export.artifacts["fp32_tflite"]
    images = np.random.default_rng(0).standard_normal((4, *manifest["model"]["input_shape"][1:])).astype(np.float32)
    quantizer = TfliteQuantizer(fp32.read_bytes(), images, manifest["model"]["tflite_input_layout"])
    path = tmp_path / "all-int8.tflite"
    path.write_bytes(quantizer.quantize_bytes().data)
    found = delegation(path)
    hard_swish = sum(kind == "HARD_SWISH" for kind in quantizer.ops.values())
    assert found.undelegated == {"HARD_SWISH": hard_swish} and 1 < found.partitions <= hard_swish + 1, found
    assert delegation(fp32).undelegated == {} and delegation(fp32).partitions == 1
    assert "left to LiteRT's kernels: HARD_SWISH ×" in found.summary()
    from types import SimpleNamespace

    from edgecnn.pipeline.stages import _delegation

    said: list[str] = []
    for delegate in ("xnnpack", "nnapi"):  # a split .tflite is said where XNNPACK runs it; NNAPI's is not counted
        ctx = SimpleNamespace(profile=SimpleNamespace(tflite_delegate=delegate), warn=said.append)
        record = _delegation(ctx, path, "int8 .tflite")
        assert record == (found.to_dict() if delegate == "xnnpack" else None)
    assert said == [f"int8 .tflite: {found.summary()} (between XNNPACK's partitions; slower than delegated)"]

    assert load_profile("android-nnapi-api28").tflite_delegate == "nnapi"
    assert load_profile("raspberrypi4").tflite_delegate == "xnnpack"
    _, kinds, record = choose_tflite_float_ops(quantizer, (), (), tmp_path / "nnapi", measure=False, fp32=None)
    assert kinds == () and record == {"candidates": [], "chosen": []}
    _, kinds, record = choose_tflite_float_ops(
        quantizer, (), (), tmp_path / "arm", measure=False, fp32=delegation(fp32)
    )
    assert kinds == ("HARD_SWISH",) and record["all_int8_xnnpack"] == found.to_dict()


def test_only_ops_refused_more_in_int8_than_in_fp32_are_candidates():
    """A deformable convolution's gather decomposition is left to LiteRT in fp32 as in int8 (DCN at 64²: GATHER ×78,
    CAST ×52 … in both; 53 partitions in int8 against 27, for its int8 ADDs): float joins nothing there, so only the
    ADD is worth a variant; never a compute op."""
    from edgecnn.pipeline.float_choice import refused_in_int8
    from edgecnn.runtime.xnnpack import Delegation

    int8 = Delegation(53, 1273, {"ADD": 27, "CAST": 52, "CONV_2D": 1, "GATHER": 78, "HARD_SWISH": 2})
    fp32 = Delegation(27, 1156, {"CAST": 52, "GATHER": 78})
    present = {"ADD", "CAST", "CONV_2D", "GATHER"}
    assert refused_in_int8(int8, fp32, present) == ["ADD"]
    assert refused_in_int8(int8, None, present) == ["ADD", "CAST", "GATHER"]


def test_on_this_hosts_kernels_the_refused_ops_are_timed_and_the_faster_variant_shipped(tmp_path: Path):
    """For x86-avx2 (this host's kernels) the candidates — HARD_SWISH, declared and refused by XNNPACK in int8 — are
    timed in LiteRT, not counted: the variant the rule picks from the recorded times is the one shipped (which one is
    the host's business, not the test's), and the int8 `.tflite` is timed against the fp32 one."""
    from ai_edge_litert import schema_py_generated as schema

    from edgecnn.pipeline.export import export
    from edgecnn.pipeline.float_choice import pick

    result = export("mobilenet_v3_small", profile="x86-avx2", out=tmp_path / "out", formats="onnx,tflite",
                    resolution=64, calib_size=16, holdout=8)  # fmt: skip
    int8 = result.manifest["stages"]["tflite"]["int8"]
    choice = int8["keep_float"]["slower_in_int8"]
    assert "HARD_SWISH" in choice["candidates"] and "LiteRT (XNNPACK)" in choice["basis"], choice
    times = {"+".join(t["float"]) or "none": t["min_ms"] for t in choice["tries"]}
    assert {"none", "HARD_SWISH"} <= set(times) and min(times.values()) > 0, times
    picked = pick({("all" if "+" in k else k): v for k, v in times.items()})
    expected = sorted(choice["candidates"]) if picked == "all" else [] if picked == "none" else [picked]
    assert sorted(choice["chosen"]) == expected and int8["keep_float"]["op_types"] == choice["chosen"], choice
    model = parse(result.artifacts["int8_tflite"].read_bytes())
    graph, codes = model.subgraphs[0], [c.builtinCode for c in model.operatorCodes]
    kinds = {
        graph.tensors[o.outputs[0]].type
        for o in graph.operators
        if codes[o.opcodeIndex] == schema.BuiltinOperator.HARD_SWISH
    }
    assert kinds == {schema.TensorType.FLOAT32 if "HARD_SWISH" in choice["chosen"] else schema.TensorType.INT8}
    speed = int8["speed"]
    assert speed["int8_ms"] > 0 and speed["fp32_ms"] > 0 and "LiteRT (XNNPACK)" in speed["basis"]
    report = (result.out / "report.md").read_text()
    assert "int8 .tflite ops kept float for speed:" in report and "fp32 .tflite" in report
