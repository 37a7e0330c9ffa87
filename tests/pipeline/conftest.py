"""Fixtures of the pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tiny_fp32(tmp_path: Path) -> Path:
    """A random-weights MobileNetV1 α 0.25 at 32×32×1 as a simplified fp32 ONNX."""
    import torch

    from edgecnn.models import create_model
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    torch.manual_seed(0)
    model = create_model("mobilenet_v1", num_classes=10, in_chans=1, resolution=32, width=0.25).eval()
    export_onnx(model, (1, 1, 32, 32), tmp_path / "raw.onnx")
    simplify(tmp_path / "raw.onnx", tmp_path / "fp32.onnx")
    return tmp_path / "fp32.onnx"
