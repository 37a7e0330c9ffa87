"""Which TFLite ops make an int8 `.tflite` slower than it could be in LiteRT with XNNPACK on this host.

Exports MobileNetV3-small, EfficientNet-B0, MobileNetV2, DenseNet-121 and ResNet-18 (224², random weights, profile
x86-avx2, fp32 `.tflite` only), quantizes each with ai-edge-quantizer (edgecnn's ``TfliteQuantizer``, 16 synthetic
calibration images, per-channel min-max) with nothing kept float and with each op type of the graph kept float
alone (but the convolutions and fully connected layers: float there is no int8 model), and times every variant and
the fp32 `.tflite` in LiteRT with XNNPACK (1 thread, min of interleaved rounds: the export's timing protocol).
``partitions`` counts the XNNPACK delegate's partitions: an op XNNPACK does not take in int8 runs in LiteRT's own
kernel and splits the graph there. An op type whose float variant is faster than the all-int8 graph by more than
10% feeds the x86-avx2 profile's ``int8.slower_tflite_ops``: candidates the export times in its int8 `.tflite`
(``edgecnn/pipeline/float_choice.py``). Run by ``make bench``; alone: ``python benchmarks/tflite_float_ops.py
[--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import write_result

from edgecnn.lowering.tflite.quantize import TfliteQuantizer
from edgecnn.pipeline.export import export
from edgecnn.pipeline.float_choice import COMPUTE_OPS, ROUNDS, RUNS
from edgecnn.runtime.host_timing import interleaved_min_ms
from edgecnn.runtime.xnnpack import delegation

NAME = "tflite_float_ops"
MODELS = ("mobilenet_v3_small", "efficientnet_b0", "mobilenet_v2", "densenet121", "resnet18")
FASTER = 0.9  # a float variant faster than the all-int8 graph by more than 10%
DESCRIPTION = (
    "LiteRT with XNNPACK, 1 thread, batch 1 at 224², random weights: min ms over "
    f"{ROUNDS} interleaved rounds of {RUNS} runs of the fp32 `.tflite`, of its int8 twin with nothing float "
    "(`none_ms`) and with one op type kept float (`float_ms`, DEQUANTIZE/QUANTIZE around each such op); "
    "`partitions`: the XNNPACK delegate's partitions of each int8 graph. `faster`: float_ms < 0.9 × none_ms."
)


def partitions(path: Path) -> int:
    """How many XNNPACK partitions LiteRT makes of the `.tflite` at ``path``."""
    return delegation(path).partitions


def compare_model(model: str, work: Path) -> list[dict[str, Any]]:
    """Rows (one per op type kept float) of one model."""
    result = export(model, profile="x86-avx2", out=work / model, formats="onnx,tflite", quantize=False)
    manifest = result.manifest
    fp32_path = result.artifacts["fp32_tflite"]
    shape = tuple(manifest["model"]["input_shape"])
    images = np.random.default_rng(0).standard_normal((16, *shape[1:])).astype(np.float32)
    quantizer = TfliteQuantizer(fp32_path.read_bytes(), images, manifest["model"]["tflite_input_layout"])
    kinds = sorted({kind for kind in quantizer.ops.values() if kind not in COMPUTE_OPS})
    paths = {"fp32": fp32_path, "none": work / f"{model}.none.tflite"}
    paths["none"].write_bytes(quantizer.quantize_bytes().data)
    for kind in kinds:
        paths[kind] = work / f"{model}.{kind}.tflite"
        paths[kind].write_bytes(quantizer.quantize_bytes([op for op, k in quantizer.ops.items() if k == kind]).data)
    times = interleaved_min_ms(paths, ROUNDS, RUNS)
    none_parts = partitions(paths["none"])
    rows = []
    for kind in kinds:
        rows.append(
            {
                "model": model,
                "float_op": kind,
                "ops": sum(k == kind for k in quantizer.ops.values()),
                "fp32_ms": times["fp32"],
                "none_ms": times["none"],
                "float_ms": times[kind],
                "float/none": round(times[kind] / times["none"], 3),
                "partitions_none": none_parts,
                "partitions_float": partitions(paths[kind]),
                "faster": times[kind] < FASTER * times["none"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Time the variants and write ``results/tflite_float_ops.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model")
    args = parser.parse_args(argv)
    models = MODELS[:1] if args.quick else MODELS
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-tflite-ops-") as tmp:
        for model in models:
            found = compare_model(model, Path(tmp))
            rows += found
            print(f"{NAME}: {model}: float/none " + ", ".join(f"{r['float_op']} {r['float/none']}" for r in found))
    faster = sorted({r["float_op"] for r in rows if r["faster"]})
    print(f"{NAME}: ops whose float variant is faster on this host: {', '.join(faster) or 'none'}")
    path = write_result(NAME, rows, {"description": DESCRIPTION, "slower_tflite_ops": faster})
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
