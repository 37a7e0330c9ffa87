"""ONNX-to-ONNX graph rewrites that replace ops some runtimes lack with standard ones."""

from edgecnn.lowering.onnx.deform_gather import rewrite_deform_conv

__all__ = ["rewrite_deform_conv"]
