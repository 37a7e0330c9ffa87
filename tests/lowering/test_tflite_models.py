"""Zoo networks at 32×32, exported and simplified as `edgecnn export` does, lowered to TFLite end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.lowering.tflite import convert
from tests.lowering.tflite_check import check, run_ort

ZOO = {
    "mobilenet_v2": {"width": 0.35},
    "resnet18": {},
    "mobilenet_v3_small": {},
    "efficientnet_b0": {},
    "densenet121": {"growth_rate": 8},
}
# The TFLite ops each network lowers to: every Relu/Relu6 fused, no layout TRANSPOSE anywhere.
EXPECTED_OPS = {
    "mobilenet_v2": {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "FULLY_CONNECTED"},
    "resnet18": {"PAD", "CONV_2D", "MAX_POOL_2D", "ADD", "RESHAPE", "FULLY_CONNECTED"},  # the stem pool's: PAD
    "mobilenet_v3_small": {
        *("PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD"),  # SE gates: CONV, ADD, MUL
        *("RESHAPE", "FULLY_CONNECTED"),
    },
    "efficientnet_b0": {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "LOGISTIC", "MUL", "MEAN", "ADD", "RESHAPE"}
    | {"FULLY_CONNECTED"},
    "densenet121": {"PAD", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "CONCATENATION"}  # BatchNorm, AveragePool
    | {"MEAN", "RESHAPE", "FULLY_CONNECTED"},  # at 32² the last transition pools 2×2 to 1×1: a MEAN
}


def _export(name: str, path: Path) -> None:
    """Build the network, set its BatchNorm statistics from random data, export and simplify it to ``path``."""
    import torch

    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    torch.manual_seed(0)
    module = create_model(name, num_classes=10, resolution=32, **ZOO[name])
    # A cumulative average (momentum=None): with the default 0.1, a few passes leave the statistics near
    # (0, 1) and several of these networks' logits do not depend on the input at all.
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = None
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(16, 3, 32, 32))
    raw, partial = path.with_suffix(".raw.onnx"), path.with_suffix(".partial.onnx")
    export_onnx(module.eval(), (1, 3, 32, 32), raw)
    simplify(raw, partial)
    partial.replace(path)


@pytest.fixture(scope="module")
def zoo_onnx(shared_dir):
    """name -> the simplified fp32 ONNX model; exported once per run (shared by xdist workers, under a lock)."""
    from filelock import FileLock

    folder = shared_dir / "lowering_zoo"
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[str, onnx.ModelProto] = {}

    def get(name: str) -> onnx.ModelProto:
        if name not in cache:
            path = folder / f"{name}.fp32.onnx"
            with FileLock(str(path) + ".lock"):
                if not path.exists():
                    _export(name, path)
            cache[name] = onnx.load(str(path))
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_matches_onnx_runtime(zoo_onnx, name):
    model = zoo_onnx(name)
    inputs = [np.random.default_rng(seed).standard_normal((1, 3, 32, 32)).astype(np.float32) for seed in (0, 1)]
    logits = [run_ort(model, {"input": x})["logits"] for x in inputs]
    spread = float(np.ptp(logits[0]))
    assert spread > 1e-2 and np.abs(logits[0] - logits[1]).max() > 1e-2 * spread, "degenerate logits"
    for x in inputs:
        check(model, f"zoo:{name}", feeds={"input": x})
    lowered = convert(model)
    assert lowered.inputs == {"input": (1, 32, 32, 3)} and lowered.outputs == {"logits": (1, 10)}
    assert set(lowered.op_counts) == EXPECTED_OPS[name]


@pytest.mark.slow
def test_zoo_model_with_nchw_input(zoo_onnx):
    model = zoo_onnx("mobilenet_v2")
    check(model, "zoo:mobilenet_v2 nchw_io", nchw_io=True)
    lowered = convert(model, nchw_io=True)
    assert lowered.input_layout == "NCHW" and lowered.inputs == {"input": (1, 3, 32, 32)}
    assert lowered.op_counts["TRANSPOSE"] == 1  # only the leading NCHW -> NHWC; the logits are 2-D
