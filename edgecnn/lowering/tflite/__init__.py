"""Lower simplified fp32 ONNX graphs to TFLite flatbuffers with the schema of ai-edge-litert (no TensorFlow)."""

from edgecnn.lowering.tflite.builder import GraphBuilder
from edgecnn.lowering.tflite.engine import LoweredModel, check_supported, convert, lower, unsupported_nodes
from edgecnn.lowering.tflite.registry import register, supported_ops

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
