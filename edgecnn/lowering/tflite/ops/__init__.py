"""The lowerings, one module per op family; importing this package registers them all."""

# gather comes after gemm: its MatMul lowering (batched) replaces gemm's and delegates the 2-D case to it.
from edgecnn.lowering.tflite.ops import conv, elementwise, gemm, gather, pool, shape

__all__ = ["conv", "elementwise", "gather", "gemm", "pool", "shape"]
