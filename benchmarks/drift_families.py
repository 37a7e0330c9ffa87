"""Int8 drift on real data: one network per family, trained on digits, exported with default settings.

For each family: fp32 and int8 accuracy on held-out digits, top-1 agreement before and after the
export's repair, the layers kept in float, the int8 model's size, and int8/fp32 latency on this host
(ORT or LiteRT, 1 thread, 32×32 input), for the `.onnx`, `.ort` and `.tflite` int8 artifacts.
Run by ``make bench``; alone: ``python benchmarks/drift_families.py [--families resnet,dcn]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, time_callable, write_result

sys.path.insert(0, str(REPO_ROOT))  # the digits helpers live with the test fixtures

from edgecnn.analysis.drift import int8_computations
from edgecnn.pipeline.export import export
from edgecnn.runtime.loader import load, ort_session
from tests.fixtures.digits import MEAN, STD, TRAINED_FAMILIES, digits, normalise, train_family

NAME = "drift_families"
DESCRIPTION = (
    "Networks trained on scikit-learn's digits (32×32, 1 channel, 10 classes, 12 epochs), exported with "
    "`edgecnn.export(profile='x86-avx2', calib=<128 test images>)`; figures on the 232 other test images "
    "(held out). `agreement before` is plain int8 (MinMax, reduce_range), `agreement` the artifact after its own "
    "repair (if one was needed: the ORT model's by the drift stage, the .tflite's by its per-op ranking). Judged "
    "on this host's int8 kernels. Latency: ORT (LiteRT for the "
    "`.tflite`, over its fp32 ORT twin), 1 thread, p50. DCN reaches TFLite through the gather decomposition."
)


def _latency(path: Path, shape: tuple[int, ...], manifest: dict[str, Any] | None = None) -> float:
    x = np.zeros(shape, np.float32)
    if path.suffix == ".tflite":
        runner = load(path, threads=1, layout=manifest["model"]["tflite_input_layout"] if manifest else None)
        return time_callable(lambda: runner(x), warmup=5, runs=50)["p50_ms"]
    session = ort_session(path, threads=1)
    name = session.get_inputs()[0].name
    return time_callable(lambda: session.run(None, {name: x}), warmup=5, runs=50)["p50_ms"]


def measure(family: str, work: Path, npz: Path) -> list[dict[str, Any]]:
    """Train, export and measure one family; one row per int8 format."""
    model = train_family(family, work)
    result = export(
        model["name"],
        out=work / family,
        weights=model["path"],
        num_classes=10,
        in_chans=1,
        resolution=32,
        calib=str(npz),
        calib_size=128,
        holdout=232,
        formats="onnx,ort,tflite",
        allow_drift=True,
        **model["scaling"],
    )
    manifest = result.manifest
    drift, agreement = manifest["drift"], manifest["agreement"]
    shape = tuple(manifest["model"]["input_shape"])
    fp32_ms = _latency(result.artifacts["fp32_onnx"], shape)
    rows = []
    for fmt in ("int8_onnx", "int8_ort", "int8_tflite"):
        path = result.artifacts[fmt]
        row = {
            "family": family,
            "model": model["name"],
            "format": path.suffix[1:],
            "fp32_acc": round(agreement["fp32_accuracy"], 4),
        }
        if fmt == "int8_tflite":  # judged by the export's drift stage like the ORT artifact
            figs = agreement["formats"]["tflite"]
            row.update(int8_acc=round(figs["target_accuracy"], 4), agreement=round(figs["top1_agreement"], 4))
        elif fmt == "int8_ort":  # the .ort is checked equal to the .onnx; measure it anyway, on the same images
            held = _held_out(npz)
            fp32 = load(result.artifacts["fp32_onnx"])(held[0])
            figs = int8_computations(path, held[0], fp32, held[1], kinds=("host_kernels",))["host_kernels"]
            row.update(int8_acc=round(figs["target_accuracy"], 4), agreement=round(figs["top1_agreement"], 4))
        else:
            row.update(int8_acc=round(agreement["int8_accuracy"], 4), agreement=round(agreement["top1"], 4))
        # each artifact's own verdict and repair: the ORT model's for .onnx/.ort, the .tflite's own for it
        own = drift["formats"]["tflite"] if fmt == "int8_tflite" else drift
        before = own["initial"]["score"] if "initial" in own else row["agreement"]
        row.update(
            agreement_before=round(before, 4),
            passed=own["passed"],
            repair=own.get("fix", {}).get("chosen", "none needed"),
            layers_float=len(own.get("fix", {}).get("kept_float", [])),
            int8_bytes=path.stat().st_size,
            int8_over_fp32_latency=round(_latency(path, shape, manifest) / fp32_ms, 3),
        )
        rows.append(row)
    return rows


def _held_out(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    """The same held-out split the export used (seed 0: 232 of the 360 test images)."""
    from edgecnn.config.recipes import load_recipe
    from edgecnn.data.calibration import load_calibration

    _, held = load_calibration(npz, (1, 32, 32), load_recipe("default"), 128, 232, 0)
    return held.images, held.labels


def main(argv: list[str] | None = None) -> int:
    """Measure every family (or those given) and write ``results/drift_families.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--families", help=f"comma list among {', '.join(TRAINED_FAMILIES)}")
    args = parser.parse_args(argv)
    families = args.families.split(",") if args.families else list(TRAINED_FAMILIES)
    unknown = [f for f in families if f not in TRAINED_FAMILIES]
    if unknown:
        parser.error(f"unknown families: {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-drift-bench-") as tmp:
        work = Path(tmp)
        _, _, test_x, test_y = digits()
        npz = work / "digits_test.npz"
        np.savez(npz, images=normalise(test_x, MEAN, STD), labels=test_y)
        for family in families:
            rows += measure(family, work, npz)
            print(f"{NAME}: {rows[-2]}\n{NAME}: {rows[-1]}", flush=True)
    print(f"{NAME}: wrote {write_result(NAME, rows, {'description': DESCRIPTION, 'profile': 'x86-avx2'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
