"""Which operator types are slower in int8 than in fp32 on this host: ORT's per-node profile, by op type.

Exports MobileNetV3-small, EfficientNet-B0, MobileNetV2 and DenseNet-121 (224², random weights, synthetic
calibration, profile x86-avx2, fp32 only), quantizes the fp32 graph with every quantizable op in int8 (edgecnn's
Quantizer, nothing kept float: the export's own choice would hide what is measured), runs the fp32 and the QDQ
int8 graph with ONNX Runtime's profiler (1 thread, all optimizations: the int8 graph runs fused QLinear kernels),
and sums each op type's kernel time. The op types whose int8 kernels cost more than their fp32 kernels feed the x86-avx2
profile's ``int8.slower_op_types``: candidates the export times in its ORT int8 graph and keeps float when faster.
Run by ``make bench``; alone: ``python benchmarks/int8_op_latency.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from common import write_result

from edgecnn.config.profiles import load_profile
from edgecnn.pipeline.export import export
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load

NAME = "int8_op_latency"
SLOWER_RATIO, SLOWER_US = 1.1, 10.0  # slower: by more than 10% and 10 µs a run (a 3 µs Reshape is noise)
CONVERSIONS = ("QuantizeLinear", "DequantizeLinear")
MODELS = ("mobilenet_v3_small", "efficientnet_b0", "mobilenet_v2", "densenet121")
DESCRIPTION = (
    "ONNX Runtime profiler, 1 thread, all graph optimizations, batch 1 at 224², 30 profiled runs after 5 "
    "warm-up runs: total kernel time per run (µs) of each op type in the fp32 graph and in the QDQ int8 graph "
    "(every quantizable op in int8, nothing kept float) "
    "(where the int8 graph's fused kernels have their own names: QLinearConv, QLinearMul …). `int8_slower`: the "
    "op type's work costs more in the int8 graph than in the fp32 one, by more than 10% and 10 µs a run."
)


def profile(path: Path, runs: int, work: Path) -> dict[str, float]:
    """Mean kernel µs per run, by op type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(work / path.stem)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(tuple(session.get_inputs()[0].shape)).astype(np.float32)
    for _ in range(5):
        session.run(None, {name: x})
    trace = session.end_profiling()
    Path(trace).unlink()  # drop the warm-up profile
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, {name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    return {op: dur / runs for op, dur in totals.items()}


def base_op(op: str) -> str:
    """The float op a fused int8 kernel stands for (QLinearConv → Conv, QLinearMul → Mul …)."""
    for prefix in ("QLinear", "Q"):
        if op.startswith(prefix) and op not in ("QuantizeLinear",):
            return op[len(prefix) :]
    return op


def compare_model(model: str, work: Path, runs: int) -> list[dict[str, Any]]:
    """Rows op type → fp32 µs, int8 µs for one model."""
    result = export(model, profile="x86-avx2", out=work / model, formats="onnx", quantize=False)
    fp32_path, int8_path = result.artifacts["fp32_onnx"], work / f"{model}.int8.onnx"
    images = np.random.default_rng(0).standard_normal((16, *load(fp32_path).input_shape[1:])).astype(np.float32)
    with Quantizer(fp32_path, images) as quantizer:
        quantizer.quantize(int8_path, "minmax", reduce_range=load_profile("x86-avx2").reduce_range)
    fp32 = profile(fp32_path, runs, work)
    int8 = profile(int8_path, runs, work)
    int8_by_base: dict[str, float] = defaultdict(float)
    for op, us in int8.items():
        int8_by_base[base_op(op)] += us
    rows = []
    for op in sorted(set(fp32) | set(int8_by_base), key=lambda o: -(fp32.get(o, 0) + int8_by_base.get(o, 0))):
        f, q = fp32.get(op, 0.0), int8_by_base.get(op, 0.0)
        rows.append(
            {
                "model": model,
                "op_type": op,
                "fp32_us": round(f, 1),
                "int8_us": round(q, 1),
                "int8/fp32": round(q / f, 2) if f else None,
                "int8_slower": bool(f and q > f * SLOWER_RATIO and q - f > SLOWER_US and op not in CONVERSIONS),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Profile the models and write ``results/int8_op_latency.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, 5 runs")
    args = parser.parse_args(argv)
    models, runs = (MODELS[:1], 5) if args.quick else (MODELS, 30)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-ops-") as tmp:
        for model in models:
            rows += compare_model(model, Path(tmp), runs)
    slower = sorted({r["op_type"] for r in rows if r["int8_slower"]})
    print(f"{NAME}: op types slower in int8 on this host: {', '.join(slower) or 'none'}")
    path = write_result(NAME, rows, {"description": DESCRIPTION, "slower_op_types": slower, "runs": runs})
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
