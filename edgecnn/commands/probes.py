"""The latency model's probe set: 34 zoo configurations whose measured latencies fit a profile's coefficients.

The set spans what the planner chooses between — MobileNetV1 α × ρ, MobileNetV2 α, EfficientNet φ and
B0–B3, ResNet-18/34/50, DenseNet-121 — so every op class is exercised at several sizes. Each probe is
exported (random weights: latency does not depend on them) to fp32 and int8 artifacts in the profile's
runtime format, and carries its op costs, so ``edgecnn calibrate-profile`` needs no torch and no model.
``bench_probe_suite`` builds the set and times it (``edgecnn bench --suite probes``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.api import run_suite
from edgecnn.costs.op_costs import DTYPES, onnx_op_costs
from edgecnn.files import terminate_as_interrupt

PROBES: tuple[tuple[str, dict[str, float]], ...] = (
    *(("mobilenet_v1", {"width": a, "resolution": r}) for a in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 192, 224)),
    *(("mobilenet_v2", {"width": a, "resolution": 224}) for a in (0.35, 0.5, 0.75, 1.0, 1.4)),
    ("mobilenet_v2", {"width": 1.0, "resolution": 160}),
    ("efficientnet", {"phi": 0.5}),
    ("efficientnet", {"phi": 1.5}),
    *((f"efficientnet_b{i}", {}) for i in range(4)),
    ("resnet18", {"resolution": 160}),
    ("resnet18", {"resolution": 224}),
    ("resnet34", {"resolution": 224}),
    ("resnet50", {"resolution": 224}),
    ("densenet121", {"resolution": 160}),
    ("densenet121", {"resolution": 224}),
)
CALIBRATION_IMAGES = 8  # int8 probes only need representative graphs, not accurate ranges


def probe_name(model: str, scaling: dict[str, float], dtype: str) -> str:
    """A file-name-safe probe name: ``mobilenet_v1-width0.5-resolution160-int8``."""
    parts = [model, *(f"{k}{v:g}" for k, v in sorted(scaling.items())), dtype]
    return "-".join(parts)


def _export_fp32(model: str, scaling: dict[str, float], dst: Path, scratch: Path) -> tuple[int, ...]:
    import torch

    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    torch.manual_seed(0)
    network = create_model(model, **scaling).eval()
    shape = (1, *network.input_size)
    export_onnx(network, shape, scratch / "exported.onnx")
    simplify(scratch / "exported.onnx", dst)
    return shape


def _to_tflite(onnx_path: Path, dst: Path, images: np.ndarray | None) -> None:
    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import quantize_tflite

    lowered = convert(onnx_path)
    data = lowered.data if images is None else quantize_tflite(lowered.data, images, lowered.input_layout).data
    dst.write_bytes(data)


def build_probe_suite(
    profile: str,
    directory: Path,
    dtypes: Sequence[str] = DTYPES,
    on_probe: Callable[[str], None] | None = None,
    probes: Sequence[tuple[str, dict[str, float]]] = PROBES,
) -> list[dict[str, Any]]:
    """Export every probe for ``profile`` into ``directory``; one dict per probe and dtype with ``name``,
    ``artifact`` (a Path), ``model``, ``config``, ``dtype`` and ``ops`` (op-cost rows, see OpCost.to_row).
    ``on_probe(name)`` is called as each one starts (a progress bar)."""
    from edgecnn.config.profiles import load_profile
    from edgecnn.errors import UsageError
    from edgecnn.pipeline.quantize import Quantizer

    spec = load_profile(profile)
    runtime = spec.latency.runtime
    unknown = sorted(set(dtypes) - set(DTYPES))
    if unknown:
        raise UsageError(f"unknown dtype {unknown[0]} (known: {', '.join(DTYPES)})")
    directory.mkdir(parents=True, exist_ok=True)
    suite = []
    for model, scaling in probes:
        base = probe_name(model, scaling, "fp32").removesuffix("-fp32")
        if on_probe:
            on_probe(base)
        scratch = directory / f".{base}"
        scratch.mkdir(exist_ok=True)
        fp32 = directory / f"{base}-fp32.onnx"
        shape = _export_fp32(model, scaling, fp32, scratch)
        images = np.random.default_rng(0).standard_normal((CALIBRATION_IMAGES, *shape[1:])).astype(np.float32)
        onnx_files = {"fp32": fp32}
        if "int8" in dtypes:
            onnx_files["int8"] = directory / f"{base}-int8.onnx"
            with Quantizer(fp32, images) as quantizer:
                quantizer.quantize(onnx_files["int8"], "minmax", spec.reduce_range)
        for dtype in dtypes:
            artifact = onnx_files[dtype]
            if runtime == "tflite":
                artifact = directory / f"{base}-{dtype}.tflite"
                _to_tflite(fp32, artifact, images if dtype == "int8" else None)
            ops = [cost.to_row() for cost in onnx_op_costs(fp32, dtype=dtype)]
            suite.append(
                {
                    "name": f"{base}-{dtype}",
                    "artifact": artifact,
                    "model": model,
                    "config": {**scaling, "resolution": shape[-1]},
                    "dtype": dtype,
                    "ops": ops,
                }
            )
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
    return suite


@terminate_as_interrupt()
def bench_probe_suite(profile: str, out: str | Path, host: str | None = None, **bench_options: Any) -> dict[str, Any]:
    """Build the latency model's probe set for ``profile`` (ONNX files in a temporary directory) and run it."""
    with tempfile.TemporaryDirectory(prefix="edgecnn-probes-") as tmp:
        probes = build_probe_suite(profile, Path(tmp))
        return run_suite(probes, out, profile, host=host, **bench_options)
