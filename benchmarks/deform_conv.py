"""Deformable convolution on every path edgecnn offers: torchvision eager, ORT's DeformConv kernel, and the
gather decomposition in ONNX Runtime and LiteRT, fp32 and int8 (sampling path float).

One layer (N=1, C=64, 56×56, 3×3, 64 out, DCNv1 with its offset conv, offsets ~ a few pixels) and one
network (ResNet-50-DCN). Latency is p50 at 1 thread; each row also says how far the path is from the
reference (max abs error for fp32, logit cosine for int8).
Run by ``make bench``; alone: ``python benchmarks/deform_conv.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from common import time_callable, write_result

from edgecnn.lowering.onnx import rewrite_deform_conv
from edgecnn.lowering.tflite import convert
from edgecnn.lowering.tflite.quantize import node_scope, quantize_tflite
from edgecnn.models import create_model
from edgecnn.ops import DeformConv2d
from edgecnn.pipeline.onnx_export import export_onnx
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.pipeline.simplify import simplify
from edgecnn.runtime.loader import load

NAME = "deform_conv"
LAYER = (1, 64, 56, 56)
NETWORK = ("resnet50_dcn", 160)
DESCRIPTION = (
    "One deformable layer (N=1, C=64, 56×56, 3×3 → 64, DCNv1, offset conv included, offsets ~ N(0, 2 px)) and "
    "ResNet-50-DCN (deformable stages 2–4) at 160², random weights. p50 ms at 1 thread. `vs_eager_x`: speed-up "
    "over torchvision eager; `vs_native_x`: latency over ORT's DeformConv kernel. `error`: max abs error vs "
    "eager for fp32 paths, 1 − mean logit cosine vs the fp32 twin for int8 paths (sampling path float). "
    "Goal of the deformable-conv issue: the gather fallback within 2× of ORT native and faster than eager."
)


def _cosine_gap(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(1.0 - cos.mean())


def _artifacts(module: torch.nn.Module, shape: tuple[int, ...], work: Path, calib: np.ndarray) -> dict[str, Path]:
    """native, gather fp32/int8 .onnx and gather fp32/int8 .tflite of ``module``."""
    export_onnx(module, shape, work / "exported.onnx")
    simplify(work / "exported.onnx", work / "native.onnx")
    native = onnx.shape_inference.infer_shapes(onnx.load(str(work / "native.onnx")))
    gather, float_nodes = rewrite_deform_conv(native)
    keep = tuple(n for names in float_nodes.values() for n in names)
    onnx.save_model(gather, str(work / "gather.onnx"))
    with Quantizer(work / "gather.onnx", calib) as quantizer:  # as the export's quantize stage does it
        kept = tuple(n for n in keep if n in set(quantizer.node_names))  # ORT's pre-processing drops Mul by 1
        quantizer.quantize(work / "gather.int8.onnx", keep_float_nodes=kept)
    lowered = convert(gather)
    (work / "gather.tflite").write_bytes(lowered.data)
    scope = node_scope(gather, keep)
    int8 = quantize_tflite(lowered.data, calib, keep_float_scopes=(scope,) if scope else ())
    (work / "gather.int8.tflite").write_bytes(int8.data)
    return {
        "ORT DeformConv (native)": work / "native.onnx",
        "ORT gather fp32": work / "gather.onnx",
        "ORT gather int8": work / "gather.int8.onnx",
        "LiteRT gather fp32": work / "gather.tflite",
        "LiteRT gather int8": work / "gather.int8.tflite",
    }


def measure(label: str, module: torch.nn.Module, shape: tuple[int, ...], work: Path, runs: int, seconds: float):
    """Rows of one subject: eager first, then every exported path."""
    work.mkdir()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, *shape[1:])).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    torch.set_num_threads(1)
    with torch.no_grad():
        eager_out = module(torch.from_numpy(x)).numpy()
    timings = {"torchvision eager": time_callable(lambda: module(torch.from_numpy(x)), 2, runs, seconds)}
    outputs: dict[str, np.ndarray] = {}
    for path_label, path in _artifacts(module, shape, work, calib).items():
        runner = load(path, threads=1, layout="NHWC" if path.suffix == ".tflite" else None)
        out = runner(x)
        outputs[path_label] = out.transpose(0, 3, 1, 2) if path.suffix == ".tflite" and out.ndim == 4 else out
        timings[path_label] = time_callable(lambda r=runner: r(x), 2, runs, seconds)
    eager, native = timings["torchvision eager"]["p50_ms"], timings["ORT DeformConv (native)"]["p50_ms"]
    rows = []
    for path_label, timing in timings.items():
        if path_label.endswith("int8"):
            error = _cosine_gap(outputs[path_label], outputs[path_label.replace("int8", "fp32")])
        else:
            error = float(np.abs(outputs.get(path_label, eager_out) - eager_out).max())
        rows.append(
            {
                "subject": label,
                "path": path_label,
                "p50_ms": round(timing["p50_ms"], 2),
                "vs_eager_x": round(eager / timing["p50_ms"], 2),
                "vs_native_x": round(timing["p50_ms"] / native, 2),
                "error": float(f"{error:.3g}"),
            }
        )
        print(f"{NAME}: {rows[-1]}", flush=True)
    return rows


def _layer() -> torch.nn.Module:
    torch.manual_seed(0)
    layer = DeformConv2d(LAYER[1], 64, 3, padding=1)
    with torch.no_grad():  # offsets of a couple of pixels, as a trained layer has
        layer.offset_conv.weight.normal_(0.0, 2.0 / (LAYER[1] * 9) ** 0.5)
    return layer.eval()


def _network(resolution: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(NETWORK[0], resolution=resolution)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DeformConv2d):
                module.offset_conv.weight.normal_(0.0, 0.01)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    """Measure the layer and the network and write ``results/deform_conv.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the layer only, few runs")
    args = parser.parse_args(argv)
    runs, seconds = (3, 0.0) if args.quick else (20, 2.0)
    with tempfile.TemporaryDirectory(prefix="edgecnn-deform-bench-") as tmp:
        rows = measure("layer 64×56²", _layer(), LAYER, Path(tmp) / "layer", runs, seconds)
        if not args.quick:
            name, resolution = NETWORK
            rows += measure(
                f"{name} {resolution}²",
                _network(resolution),
                (1, 3, resolution, resolution),
                Path(tmp) / "network",
                max(5, runs // 4),
                seconds,
            )
    meta: dict[str, Any] = {"description": DESCRIPTION, "threads": 1, "layer": LAYER, "network": NETWORK}
    print(f"{NAME}: wrote {write_result(NAME, rows, meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
