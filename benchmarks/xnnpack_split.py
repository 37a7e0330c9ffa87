"""How XNNPACK splits each zoo network's `.tflite` as the export ships it for an ARM board, and what that costs.

Exports each network at 224² (random weights, synthetic calibration, `.tflite` only beside the ONNX it needs) for
``raspberrypi4`` — a device that cannot be timed here, so the export keeps float the ops XNNPACK leaves to LiteRT by
the fewest partitions, counted here — and once more for the same profile with ``tflite_delegate: nnapi`` (nothing
counted: the int8 `.tflite` as the export shipped it for every ARM profile before the choice). Records each
`.tflite`'s split (partitions, the op types left to LiteRT) and times the fp32, the all-int8 and the shipped int8
`.tflite` in LiteRT with XNNPACK on this host (1 thread: min of interleaved rounds, the export's protocol; p50 of
the device harness, ``edgecnn bench``, run twice in turn). The split is the delegate's code's, the same on the
Pi's LiteRT; the times are this host's. Run by ``make bench``; alone: ``python benchmarks/xnnpack_split.py
[--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import write_result

from edgecnn.bench import bench
from edgecnn.config.profiles import load_profile
from edgecnn.pipeline.export import export
from edgecnn.pipeline.float_choice import ROUNDS, RUNS
from edgecnn.runtime.host_timing import interleaved_min_ms
from edgecnn.runtime.xnnpack import delegation

NAME = "xnnpack_split"
MODELS = (
    "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
    "efficientnet_lite0", "resnet18", "densenet121",
)  # fmt: skip
PROFILE = "raspberrypi4"
HARNESS_RUNS = 50
DESCRIPTION = (
    f"Exports for {PROFILE} at 224² (random weights, synthetic calibration): `fp32_*` the fp32 `.tflite`, "
    "`all_int8_*` the int8 `.tflite` with nothing float for speed (the same profile with `tflite_delegate: nnapi`), "
    "`shipped_*` the export's int8 `.tflite` (the ops XNNPACK leaves to LiteRT kept float by the fewest partitions: "
    f"`float_ops`). `*_partitions` XNNPACK's partitions, `*_left` the op types left to LiteRT. Times in LiteRT with "
    f"XNNPACK on this host, 1 thread: `*_min_ms` min over {ROUNDS} interleaved rounds of {RUNS} runs, `*_p50_ms` the "
    f"median of the device harness's p50 ({HARNESS_RUNS} runs) over two turns. `shipped/all_int8`: p50 ratio."
)


def _nnapi_profile(folder: Path) -> Path:
    """The profile with its `.tflite` delegate said to be NNAPI: the export counts no partitions for it."""
    data = yaml.safe_load(Path(load_profile(PROFILE).path).read_text())
    data["tflite_delegate"] = "nnapi"
    path = folder / f"{PROFILE}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _left(split: Any) -> str:
    return ", ".join(f"{op}×{n}" for op, n in split.undelegated.items()) or "none"


def compare_model(model: str, work: Path, nnapi: Path) -> dict[str, Any]:
    """One row: the three `.tflite`s of ``model``, their splits and times."""
    options = {"formats": "onnx,tflite", "resolution": 224}
    shipped = export(model, profile=PROFILE, out=work / model, **options)
    plain = export(model, profile=str(nnapi), out=work / f"{model}-all-int8", **options)
    paths = {
        "fp32": shipped.artifacts["fp32_tflite"],
        "all_int8": plain.artifacts["int8_tflite"],
        "shipped": shipped.artifacts["int8_tflite"],
    }
    mins = interleaved_min_ms(paths, ROUNDS, RUNS)
    p50s: dict[str, list[float]] = {label: [] for label in paths}
    for order in (list(paths), list(reversed(paths))):
        for label, result in zip(order, bench([paths[label] for label in order], runs=HARNESS_RUNS), strict=True):
            p50s[label].append(result["p50_ms"])
    choice = shipped.manifest["stages"]["tflite"]["int8"]["keep_float"]["slower_in_int8"]
    row: dict[str, Any] = {"model": model, "float_ops": ", ".join(choice.get("chosen", [])) or "none"}
    for label, path in paths.items():
        split = delegation(path)
        row[f"{label}_partitions"] = split.partitions
        row[f"{label}_left"] = _left(split)
        row[f"{label}_min_ms"] = round(mins[label], 4)
        row[f"{label}_p50_ms"] = round(statistics.median(p50s[label]), 4)
    row["shipped/all_int8"] = round(row["shipped_p50_ms"] / row["all_int8_p50_ms"], 3)
    return row


def main(argv: list[str] | None = None) -> int:
    """Export, count and time every model; write ``results/xnnpack_split.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MobileNetV3-small and ResNet-18 only")
    args = parser.parse_args(argv)
    models = ("mobilenet_v3_small", "resnet18") if args.quick else MODELS
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-xnnpack-") as tmp:
        nnapi = _nnapi_profile(Path(tmp))
        for model in models:
            row = compare_model(model, Path(tmp), nnapi)
            rows.append(row)
            print(
                f"{NAME}: {model}: all-int8 {row['all_int8_partitions']} partition(s) ({row['all_int8_left']}), "
                f"shipped {row['shipped_partitions']} with {row['float_ops']} float; p50 {row['all_int8_p50_ms']} → "
                f"{row['shipped_p50_ms']} ms (fp32 {row['fp32_p50_ms']})",
                flush=True,
            )
    path = write_result(NAME, rows, {"description": DESCRIPTION, "profile": PROFILE})
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
