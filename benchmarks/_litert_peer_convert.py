"""Convert one torchvision model with litert-torch (the peer): run by ``litert_peer.py`` in the peer's own venv.

``python _litert_peer_convert.py NAME WEIGHTS OUT.tflite``: builds ``torchvision.models.NAME(weights=None)``,
loads the state_dict WEIGHTS, wraps it with ``litert_torch.to_channel_last_io`` (NHWC input, as edgecnn's
``.tflite`` takes it) and writes the fp32 flatbuffer to OUT. Prints one JSON line: versions and seconds.
The leading underscore keeps ``run.py`` from taking it for a benchmark.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time


def main(argv: list[str]) -> int:
    """Convert ``argv = [name, weights, out]``; 0 on success."""
    import litert_torch
    import torch
    import torchvision

    name, weights, out = argv
    module = getattr(torchvision.models, name)(weights=None).eval()
    module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    sample = torch.zeros(1, 224, 224, 3)
    start = time.perf_counter()
    converted = litert_torch.convert(litert_torch.to_channel_last_io(module, args=[0]).eval(), (sample,))
    converted.export(out)
    seconds = time.perf_counter() - start
    versions = {pkg: importlib.metadata.version(pkg) for pkg in ("litert-torch", "torch", "torchvision")}
    print(json.dumps({"versions": versions, "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
