"""The lowerings, one module per op family; :mod:`edgecnn.lowering.tflite.registry` imports them (``OP_MODULES``)."""
