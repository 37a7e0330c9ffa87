"""The lowerings, one module per op family; importing this package registers them all."""

# gather imports gemm, so its batched MatMul lowering always replaces gemm's (and hands it the 2-D case).
from edgecnn.lowering.tflite.ops import conv, elementwise, gather, gemm, pool, shape

__all__ = ["conv", "elementwise", "gather", "gemm", "pool", "shape"]
