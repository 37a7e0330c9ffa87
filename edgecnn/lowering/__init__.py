"""Lowering of simplified ONNX graphs to other runtimes' formats, without their training frameworks."""
