"""The op-type → lowering registry: one lowering per op type, every op module imported by it, whatever the order."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import edgecnn.lowering.tflite.ops
from edgecnn.lowering.tflite import register, registry, supported_ops

# The op types the TFLite lowering had when the registry was split from the engine; change this on purpose only.
OP_TYPES = {
    *("Add", "And", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div"),
    *("Equal", "Flatten", "Floor", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater"),
    *("GreaterOrEqual", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Less", "LessOrEqual", "MatMul"),
    *("MaxPool", "Mul", "Not", "Or", "Pad", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Sigmoid"),
    *("Slice", "Softmax", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where"),
    # normalization, activation and reduction family (issue #15)
    *("LayerNormalization", "InstanceNormalization", "GroupNormalization", "Gelu", "Erf", "PRelu", "LogSoftmax"),
    *("Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Abs", "Neg", "Elu", "Softplus", "Mish"),
    *("ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare"),
    *("Sign", "Ceil", "Round", "Sin", "Cos", "Max", "Min", "Sum", "Mean"),
    # shape and spatial family (issue #15)
    *("Split", "Resize", "Upsample", "ConvTranspose", "Tile", "Expand", "DepthToSpace", "SpaceToDepth", "Einsum"),
    *("GatherND",),
}
OPS_PACKAGE = edgecnn.lowering.tflite.ops.__name__


def _table() -> dict[str, str]:
    """op type -> the module and name of its lowering."""
    functions = {op: registry.lowering_for(op) for op in supported_ops()}
    return {op: f"{function.__module__}.{function.__name__}" for op, function in functions.items()}


def test_the_registered_op_types_are_the_known_ones():
    assert set(supported_ops()) == OP_TYPES


def test_every_op_module_is_imported_by_the_registry():
    """Importing every module of ops/ adds nothing; the modules that registered lowerings are exactly OP_MODULES."""
    table = _table()
    for module in pkgutil.iter_modules(edgecnn.lowering.tflite.ops.__path__):
        importlib.import_module(f"{OPS_PACKAGE}.{module.name}")
    assert _table() == table
    modules = {path.rsplit(".", 2)[1] for path in table.values()}
    assert modules == set(registry.OP_MODULES)
    assert all(path.startswith(f"{OPS_PACKAGE}.") for path in table.values())


def test_the_table_does_not_depend_on_import_order():
    """Importing the package loads no op module; op modules imported first, in reverse order, give the same table."""
    code = (
        "import importlib, json, sys\n"
        "from edgecnn.lowering.tflite import registry, supported_ops\n"
        f"assert not [m for m in sys.modules if m.startswith('{OPS_PACKAGE}.')]\n"
        "for module in reversed(registry.OP_MODULES):\n"
        f"    importlib.import_module(f'{OPS_PACKAGE}.{{module}}')\n"
        "functions = {op: registry.lowering_for(op) for op in supported_ops()}\n"
        "print(json.dumps({op: f'{f.__module__}.{f.__name__}' for op, f in functions.items()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == _table()


def test_an_op_type_registered_twice_raises(monkeypatch):
    monkeypatch.setattr(registry, "_LOWERINGS", {})
    register("Fresh")(lambda node, ctx: None)
    with pytest.raises(ValueError, match="'Fresh' registered twice"):
        register("Fresh")(lambda node, ctx: None)


def test_a_refused_registration_keeps_nothing():
    with pytest.raises(ValueError, match="'MatMul' registered twice"):
        register("EdgecnnTestOnly", "MatMul")(lambda node, ctx: None)
    assert "EdgecnnTestOnly" not in supported_ops()
