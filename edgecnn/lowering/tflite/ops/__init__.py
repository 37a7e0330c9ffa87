"""The lowerings, one module per op family; importing this package registers them all."""

from edgecnn.lowering.tflite.ops import conv, elementwise, gather, gemm, pool, shape

__all__ = ["conv", "elementwise", "gather", "gemm", "pool", "shape"]
