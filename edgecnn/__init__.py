"""edgecnn: take convolutional networks from PyTorch to edge devices, int8, checked at every step.

The public API is imported lazily, so ``import edgecnn`` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "create_model": "edgecnn.models.registry",
    "list_models": "edgecnn.models.registry",
    "get_model_info": "edgecnn.models.registry",
    "describe_model": "edgecnn.models.complexity",
    "export": "edgecnn.pipeline.export",
    "ExportResult": "edgecnn.pipeline.export",
    "inspect_model": "edgecnn.pipeline.inspect",
    "load_profile": "edgecnn.config.profiles",
    "list_profiles": "edgecnn.config.profiles",
    "sweep": "edgecnn.commands.sweep",
    "EdgecnnError": "edgecnn.errors",
    "PartialExportError": "edgecnn.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute '{name}'")
