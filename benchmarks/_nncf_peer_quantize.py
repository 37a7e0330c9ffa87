"""Quantize one fp32 ONNX model with NNCF (the peer): run by ``quant_peers.py`` in the peer's own venv.

``python _nncf_peer_quantize.py FP32.onnx CALIB.npy OUT.onnx per_channel|per_tensor``: ``nncf.quantize`` on the
ONNX model (ONNX backend) with NNCF's defaults (preset, target device, fast bias correction), ``subset_size`` the
whole calibration set, fed one sample at a time; ``per_tensor`` sets
``AdvancedQuantizationParameters(weights_quantization_params=QuantizationParameters(per_channel=False))``.
Prints one JSON line: versions, seconds and the options used.
The leading underscore keeps ``run.py`` from taking it for a benchmark.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time


def main(argv: list[str]) -> int:
    """Quantize ``argv = [fp32, calib, out, granularity]``; 0 on success."""
    import nncf
    import numpy as np
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    src, calib, out, granularity = argv
    model = onnx.load(src)
    name = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    images = np.load(calib).astype(np.float32)
    dataset = nncf.Dataset([images[i : i + 1] for i in range(len(images))], lambda x: {name: x})
    options: dict = {"subset_size": len(images)}
    if granularity == "per_tensor":
        options["advanced_parameters"] = AdvancedQuantizationParameters(
            weights_quantization_params=QuantizationParameters(per_channel=False)
        )
    start = time.perf_counter()
    quantized = nncf.quantize(model, dataset, **options)
    seconds = time.perf_counter() - start
    onnx.save(quantized, out)
    versions = {pkg: importlib.metadata.version(pkg) for pkg in ("nncf", "onnx", "onnxruntime", "numpy")}
    used = {"subset_size": len(images), "per_channel_weights": granularity != "per_tensor"}
    print(json.dumps({"versions": versions, "seconds": round(seconds, 1), "options": used}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
