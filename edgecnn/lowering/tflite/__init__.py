"""Lower simplified fp32 ONNX graphs to TFLite flatbuffers with the schema of ai-edge-litert (no TensorFlow)."""

from edgecnn.lowering.tflite.builder import GraphBuilder
from edgecnn.lowering.tflite.registry import (
    LoweredModel,
    check_supported,
    convert,
    lower,
    register,
    supported_ops,
    unsupported_nodes,
)

__all__ = [
    "GraphBuilder",
    "LoweredModel",
    "check_supported",
    "convert",
    "lower",
    "register",
    "supported_ops",
    "unsupported_nodes",
]
