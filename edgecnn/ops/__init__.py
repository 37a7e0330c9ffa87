"""Custom operators of edgecnn's networks."""

from edgecnn.ops.deform_conv import DeformConv2d

__all__ = ["DeformConv2d"]
