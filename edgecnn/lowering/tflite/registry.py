"""The table of TFLite lowerings: one function per ONNX op type, registered with :func:`register`.

The op modules (``ops/``) import :func:`register` from here; the table imports them the first time
it is read (:func:`_load`), so no import order decides which lowering an op type gets.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import onnx

from edgecnn.lowering.tflite.context import LoweringContext

# Adding an op family: write edgecnn/lowering/tflite/ops/<family>.py and add its module here.
OP_MODULES = (
    *("conv", "elementwise", "pool", "shape", "gemm", "cast", "compare", "logic", "gather", "slice"),
    *("normalization", "activation"),
    *("split", "resize", "transpose_conv", "broadcast", "depth", "einsum"),
)

Lowering = Callable[[onnx.NodeProto, LoweringContext], None]
_LOWERINGS: dict[str, Lowering] = {}
_loaded = False


def register(*op_types: str) -> Callable[[Lowering], Lowering]:
    """Register a lowering for ONNX op types (default domain); an op type registered twice raises ValueError."""

    def decorator(function: Lowering) -> Lowering:
        for op_type in op_types:
            if op_type in _LOWERINGS:
                raise ValueError(f"TFLite lowering of '{op_type}' registered twice ({function.__qualname__})")
        for op_type in op_types:
            _LOWERINGS[op_type] = function
        return function

    return decorator


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in OP_MODULES:
            importlib.import_module(f"edgecnn.lowering.tflite.ops.{module}")
        _loaded = True


def op_key(node: onnx.NodeProto) -> str:
    """The registry key of ``node``: its op type, prefixed by its domain outside the default one."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def lowering_for(key: str) -> Lowering:
    """The lowering registered for op type ``key`` (KeyError when there is none)."""
    _load()
    return _LOWERINGS[key]


def supported_ops() -> list[str]:
    """The ONNX op types the TFLite lowering knows."""
    _load()
    return sorted(_LOWERINGS)
