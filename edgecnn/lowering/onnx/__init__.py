"""ONNX-to-ONNX graph rewrites: DeformConv to standard ops (gather) or to mmdeploy's custom ops."""

from edgecnn.lowering.onnx.deform_custom import register_schemas, to_mmdeploy
from edgecnn.lowering.onnx.deform_gather import rewrite_deform_conv

__all__ = ["register_schemas", "rewrite_deform_conv", "to_mmdeploy"]
