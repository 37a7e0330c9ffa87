"""The harness and `edgecnn bench` on this machine: every artifact format, the JSON schema, clean errors."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.bench import bench
from edgecnn.bench.api import HARNESS
from edgecnn.errors import BenchError, UsageError

TIMING = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms")
DEVICE = ("cpu", "cores", "machine", "os", "governor", "freq_mhz", "python")


def check_result(result: dict, runs: int | None = None, this_python: bool = True) -> None:
    """The harness's JSON schema: timings ordered, load time, RSS, device, runtime, delegate."""
    for key in (*TIMING, "runs", "load_ms", "peak_rss_mb", "threads", "delegate", "runtime", "device", "artifact"):
        assert key in result, key
    assert all(isinstance(result[key], float) for key in TIMING)
    assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["min_ms"] <= result["mean_ms"] and result["std_ms"] >= 0
    if runs is not None:
        assert result["runs"] == runs
    assert result["load_ms"] > 0 and result["peak_rss_mb"] > 10
    assert set(DEVICE) <= set(result["device"])
    assert result["device"]["cores"] >= 1
    if this_python:
        assert result["device"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert result["runtime"]["name"] in ("onnxruntime", "ai_edge_litert", "tflite_runtime")
    assert result["runtime"]["version"]


@pytest.mark.parametrize("kind", ["onnx", "ort", "tflite", "int8_tflite"])
def test_local_bench_of_every_format(artifacts, kind):
    (result,) = bench([artifacts[kind]], runs=25, warmup=2)
    check_result(result, runs=25)
    assert result["host"] == "local" and result["artifact"] == Path(artifacts[kind]).name
    if kind.endswith("tflite"):
        assert result["runtime"]["name"] == "ai_edge_litert" and result["delegate"] == "xnnpack"
        assert result["inputs"][0]["shape"] == [1, 16, 16, 3]  # NHWC
    else:
        assert result["runtime"]["name"] == "onnxruntime" and result["delegate"] == "none"
        assert result["inputs"][0]["shape"] == [1, 3, 16, 16]


def test_int8_input_is_quantized_with_the_tensors_scale_and_zero_point(artifacts):
    (result,) = bench([artifacts["int8_tflite"]], runs=3, warmup=0, xnnpack=False)
    spec = result["inputs"][0]
    assert spec["dtype"] == "int8" and result["delegate"] == "none"
    assert spec["quantization"] == pytest.approx([artifacts["input_scale"], artifacts["input_zero_point"]])


def test_npy_input_nchw_is_transposed_and_quantized(artifacts, tmp_path):
    sample = tmp_path / "sample.npy"
    np.save(sample, np.random.default_rng(0).standard_normal((3, 16, 16)).astype(np.float32))
    (result,) = bench([artifacts["int8_tflite"]], runs=3, inputs=sample)
    assert "transposed NCHW to NHWC" in result["inputs"][0]["source"]
    assert "quantized" in result["inputs"][0]["source"]
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 5), np.float32))
    with pytest.raises(BenchError, match=r"input 'input' has shape \[1, 3, 16, 16\]; the file holds \[5, 5\]"):
        bench([artifacts["onnx"]], inputs=wrong)


def test_time_budget_and_threads(artifacts):
    (result,) = bench([artifacts["onnx"]], budget_s=0.3, warmup=1, threads=2)
    check_result(result)
    assert result["threads"] == 2 and result["budget_s"] == 0.3
    assert result["runs"] > 25 and 0.3 <= result["total_s"] < 1.0


@pytest.mark.parametrize("kind", ["corrupt_onnx", "corrupt_tflite"])
def test_corrupt_file_is_a_clean_error(artifacts, kind):
    name = Path(artifacts[kind]).name
    with pytest.raises(BenchError, match=rf"cannot load {name}: "):
        bench([artifacts[kind]])


def test_corrupt_file_on_the_command_line_exits_1_with_one_line(artifacts):
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", "bench", artifacts["corrupt_onnx"]], capture_output=True, text=True
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and "cannot load corrupt.onnx" in errors[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_json_and_table(artifacts, tmp_path):
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "edgecnn", "bench", artifacts["onnx"], artifacts["tflite"], "-n", "5", "--json"]
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True, check=True)
    results = json.loads(done.stdout)
    assert [r["artifact"] for r in results] == ["conv.onnx", "conv.tflite"]
    assert json.loads(out.read_text()) == results
    table = subprocess.run(argv[:-1], capture_output=True, text=True, check=True).stdout
    assert "conv.onnx" in table and "p99" in table and "device (local)" in table


def _hard_swish_int8(folder: Path) -> Path:
    """Conv → HardSwish → Conv as an all-int8 `.tflite`: XNNPACK takes no int8 HARD_SWISH."""
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import quantize_tflite

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("w1", (8, 3, 3, 3)), ("w2", (8, 8, 1, 1)))]  # fmt: skip
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("HardSwish", ["c1"], ["h"]),
            helper.make_node("Conv", ["h", "w2"], ["logits"]),
        ],
        "hard_swish",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, 16, 16])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    lowered = convert(model)
    calibration = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
    path = folder / "hard_swish.int8.tflite"
    path.write_bytes(quantize_tflite(lowered.data, calibration, lowered.input_layout).data)
    return path


def test_the_harness_reports_what_xnnpack_leaves_to_litert(artifacts, tmp_path):
    """The device's own split: the harness counts it where it runs (the export counts the same way here)."""
    from edgecnn.commands.render import render_bench
    from edgecnn.runtime.xnnpack import delegation

    split = _hard_swish_int8(tmp_path)
    whole, refused = bench([artifacts["int8_tflite"], split], runs=3, warmup=0)
    assert whole["xnnpack"] == {"partitions": 1, "nodes": whole["xnnpack"]["nodes"], "undelegated": {}}, whole
    assert refused["xnnpack"] == {"partitions": 2, "nodes": 3, "undelegated": {"HARD_SWISH": 1}}, refused
    assert refused["xnnpack"] == delegation(split).to_dict()
    (plain,) = bench([split], runs=3, warmup=0, xnnpack=False)
    (onnx_result,) = bench([artifacts["onnx"]], runs=3, warmup=0)
    assert plain["xnnpack"] is None and onnx_result["xnnpack"] is None
    from rich.console import Console

    console = Console(record=True, width=200)
    render_bench([whole, refused, plain], console)
    text = console.export_text()
    assert "hard_swish.int8.tflite: XNNPACK takes 2 of 3 nodes in 2 partition(s); left to LiteRT's kernels: " \
        "HARD_SWISH ×1" in text, text  # fmt: skip
    assert "conv.int8.tflite: XNNPACK takes" in text and text.count("XNNPACK takes") == 2


def test_an_unread_output_of_a_delegated_node_does_not_leave_it_to_litert(tmp_path):
    """A SPLIT inside a partition whose second output nobody reads is delegated like the rest (LiteRT makes no
    partition output of an unread tensor)."""
    from onnx import TensorProto, helper

    from edgecnn.lowering.tflite import convert
    from edgecnn.runtime.xnnpack import delegation

    graph = helper.make_graph(
        [
            helper.make_node("Split", ["input"], ["a", "b"], axis=1, num_outputs=2),
            helper.make_node("Relu", ["a"], ["logits"]),
        ],
        "split",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path / "split.tflite"
    path.write_bytes(convert(model).data)
    found = delegation(path)
    assert found is not None and found.undelegated == {} and found.partitions == 1, found


def test_usage_errors(artifacts, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"unknown artifact format '\.pt'"):
        bench([model])
    with pytest.raises(UsageError, match="does not exist"):
        bench([tmp_path / "missing.onnx"])
    with pytest.raises(UsageError, match="--threads"):
        bench([artifacts["onnx"]], threads=0)
    with pytest.raises(UsageError, match=r"--host must be"):
        bench([artifacts["onnx"]], host="-oProxyCommand=evil")


def test_crashing_runtime_is_an_error_not_a_crash(artifacts, tmp_path):
    crasher = tmp_path / "python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    with pytest.raises(BenchError, match=r"crashed \(SIGSEGV\) while benchmarking conv.onnx"):
        bench([artifacts["onnx"]], python=str(crasher))


def test_harness_runs_as_a_file_and_prints_json(artifacts):
    done = subprocess.run(
        [sys.executable, str(HARNESS), artifacts["ort"], "--runs", "7", "--warmup", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    check_result(json.loads(done.stdout), runs=7)
    bad = subprocess.run([sys.executable, str(HARNESS), artifacts["corrupt_tflite"]], capture_output=True, text=True)
    assert bad.returncode == 1 and "cannot load corrupt.tflite" in json.loads(bad.stdout)["error"]


def test_harness_is_python38_and_imports_only_numpy_and_runtimes():
    source = HARNESS.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    allowed_third_party = {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime"}
    assert imported - allowed_third_party <= set(sys.stdlib_module_names), imported
    assert "edgecnn" not in imported and "torch" not in imported
    assert "from __future__" not in source  # annotations are evaluated on 3.8: typing.Optional, not X | None


def test_local_timeout_is_a_clean_error(artifacts):
    with pytest.raises(BenchError, match=r"benchmarking conv.onnx did not finish within 1 s"):
        bench([artifacts["onnx"]], budget_s=3, timeout=1)


def _python38() -> str | None:
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    candidates = [shutil.which("python3.8"), *pyenv]
    for candidate in filter(None, candidates):
        check = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return candidate
    return None


def test_harness_runs_on_python38(artifacts):
    python = _python38()
    if python is None:
        pytest.skip("no Python 3.8 interpreter on this machine")
    done = subprocess.run([python, str(HARNESS), artifacts["onnx"], "--runs", "3"], capture_output=True, text=True)
    payload = json.loads(done.stdout)  # a result where numpy and onnxruntime are installed, a clean error otherwise
    if "error" in payload:
        assert done.returncode == 1 and "fix: pip install" in payload["error"], payload
    else:
        check_result(payload, runs=3, this_python=False)


def test_peak_rss_is_the_harness_own_not_the_parents(artifacts):
    ballast = np.ones(400 * 2**20, np.uint8)  # 400 MiB resident in this process, the harness's parent
    (result,) = bench([artifacts["onnx"]], runs=3)
    assert ballast[-1] == 1 and result["peak_rss_mb"] < 300
