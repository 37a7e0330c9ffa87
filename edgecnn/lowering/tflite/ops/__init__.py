"""The lowerings, one module per op family; importing this package registers them all."""

from edgecnn.lowering.tflite.ops import conv, elementwise, gemm, pool, shape

__all__ = ["conv", "elementwise", "gemm", "pool", "shape"]
