"""What per-channel int8 weights cost in ONNX Runtime against per-tensor ones, at the benchmarks' 32² and at 224².

quant_peers times its digits models at 32×32, where edgecnn's per-channel MobileNetV1 graph ran 7% slower than
ORT's defaults' per-tensor one. This measures whether that is a rate or a fixed cost: each model (quant_peers'
architectures and scalings, random weights: latency does not depend on the values) exported at 32²×1 and 224²×3,
quantized once by edgecnn's Quantizer (minmax, 16 random calibration samples, no reduce_range) with per-channel
and with per-tensor weights — the same ranges, the same graph but for the weights' scales — and timed in ORT
(1 thread, batch 1) in interleaved rounds. Run by ``make bench``; alone:
``python benchmarks/weight_granularity_latency.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, write_result

sys.path.insert(0, str(REPO_ROOT))

NAME = "weight_granularity_latency"
MODELS = ("mobilenet", "mobilenet_v2", "resnet", "efficientnet_b0")  # keys of quant_peers.MODELS
RESOLUTIONS = ((32, 1), (224, 3))  # (side, channels): quant_peers' digits, and an ImageNet-sized input
SAMPLES = 16
DESCRIPTION = (
    "quant_peers' architectures (random weights, 10 classes) at 32²×1 and 224²×3, quantized once by edgecnn's "
    f"Quantizer (minmax, {SAMPLES} random calibration samples, reduce_range off) with per-channel and with "
    "per-tensor int8 weights (same activation ranges); ORT, 1 thread, batch 1: min and median-of-round-p50 ms over "
    "interleaved rounds. `ratio_min`/`ratio_p50`: per channel / per tensor; `us_per_conv`: (per-channel − "
    "per-tensor min) / the graph's convolutions (its Gemm's share included) — a cost per call shows as a "
    "constant here and a ratio that shrinks with the input."
)


def fp32_graph(key: str, side: int, channels: int, work: Path) -> Path:
    """quant_peers' model ``key`` (random weights) as a simplified fp32 ONNX at side² × channels."""
    import torch
    from quant_peers import MODELS as PEER_MODELS

    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    name, scaling = PEER_MODELS[key]
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=channels, resolution=side, **scaling).eval()
    raw, path = work / f"{key}-{side}.raw.onnx", work / f"{key}-{side}.onnx"
    export_onnx(model, (1, channels, side, side), raw)
    simplify(raw, path)
    return path


def measure(key: str, side: int, channels: int, work: Path, rounds: int, runs: int) -> dict[str, Any]:
    """One row: the model's per-channel and per-tensor int8 graphs timed side by side."""
    import onnx
    from quant_peers import latency

    from edgecnn.pipeline.quantize import Quantizer

    fp32 = fp32_graph(key, side, channels, work)
    images = np.random.default_rng(0).standard_normal((SAMPLES, channels, side, side)).astype(np.float32)
    paths = {g: work / f"{key}-{side}.{g}.onnx" for g in ("per_channel", "per_tensor")}
    with Quantizer(fp32, images) as quantizer:
        for granularity, path in paths.items():
            quantizer.quantize(path, "minmax", per_channel=granularity == "per_channel")
    times = latency(paths, images[:1], rounds, runs)
    channel, tensor = times["per_channel"], times["per_tensor"]
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    return {
        "model": key,
        "input": f"{side}x{side}x{channels}",
        "convs": convs,
        "per_channel_min_ms": channel["min_ms"],
        "per_tensor_min_ms": tensor["min_ms"],
        "per_channel_p50_ms": channel["p50_ms"],
        "per_tensor_p50_ms": tensor["p50_ms"],
        "ratio_min": round(channel["min_ms"] / tensor["min_ms"], 3),
        "ratio_p50": round(channel["p50_ms"] / tensor["p50_ms"], 3),
        "us_per_conv": round(1e3 * (channel["min_ms"] - tensor["min_ms"]) / convs, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every model at both sizes and write ``results/weight_granularity_latency.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MobileNetV1 only, fewer rounds")
    args = parser.parse_args(argv)
    keys, rounds = (MODELS[:1], 3) if args.quick else (MODELS, 8)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-granularity-") as tmp:
        for key in keys:
            for side, channels in RESOLUTIONS:
                runs = 40 if side < 100 else 10
                rows.append(measure(key, side, channels, Path(tmp), rounds, runs))
                print(rows[-1], flush=True)
    meta = {"description": DESCRIPTION, "rounds": rounds, "quick": args.quick}
    print(write_result(NAME, rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
