"""The op-type → lowering registry: one lowering per op type, whatever the import order."""

from __future__ import annotations

import pytest

from edgecnn.lowering.tflite import register, supported_ops


def test_an_op_type_registered_twice_raises():
    supported_ops()  # every op module imported: MatMul is registered
    with pytest.raises(ValueError, match="'MatMul' registered twice"):
        register("EdgecnnTestOnly", "MatMul")(lambda node, ctx: None)
    assert "EdgecnnTestOnly" not in supported_ops()  # nothing of a refused registration is kept
