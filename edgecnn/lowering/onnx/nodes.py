"""Reading ONNX nodes: shared by the graph rewrites, the TFLite lowerings and the quantization techniques."""

from __future__ import annotations

from typing import Any


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of an ONNX ``node`` (strings decoded), or ``default``."""
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default
