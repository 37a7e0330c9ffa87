"""Fixtures of the pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.onnx_models import tiny_onnx


@pytest.fixture
def tiny_fp32(tmp_path: Path) -> Path:
    """:func:`tiny_onnx` of batch 1."""
    return tiny_onnx(tmp_path)
