"""An ONNX MODEL made into the working graph: what is refused, the opset upgrade, the input dims fixed.

A third-party ONNX file can be at any opset from 7 on, have symbolic batch or spatial dims, or hold
what int8 calibration cannot handle. :func:`refusals` says what cannot be exported (one reason per
problem), :func:`upgrade_opset` brings an old default-domain opset to the working one with
``onnx.version_converter`` (naming the op it cannot convert), :func:`fix_input_dims` sets free input
dims from the input shape. The export stage checks the result against the original in ONNX Runtime.
"""

from __future__ import annotations

import re
from typing import Any

from edgecnn.config.recipes import MIN_OPSET
from edgecnn.errors import UsageError
from edgecnn.runtime.outputs import PER_IMAGE

OLDEST_OPSET = 7  # the oldest default-domain opset ONNX Runtime loads (and the converter is checked from)
CONTROL_FLOW = ("If", "Loop", "Scan")
DEFAULT_DOMAINS = ("", "ai.onnx")


def default_opset(model: Any) -> int | None:
    """The model's default-domain (ai.onnx) opset, None when it imports none."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def wants_upgrade(original: int | None, working: int, asked: bool) -> bool:
    """Whether a model at ``original`` is converted to ``working``: below the exporter's opsets always, and
    below an ``--opset`` given explicitly (``asked``); a newer model is never downgraded."""
    if original is None or original >= working:
        return False
    return original < MIN_OPSET or asked


def _label(node: Any) -> str:
    return f"{node.op_type} '{node.name}'" if node.name else node.op_type


def _graph_inputs(model: Any) -> list[Any]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _constants(model: Any) -> dict[str, Any]:
    """Initializers and Constant-node outputs by name (as numpy arrays), for small flags such as training_mode."""
    from onnx import numpy_helper

    found: dict[str, Any] = {}
    for tensor in model.graph.initializer:
        if not tensor.HasField("data_location") or tensor.data_location == 0:
            found[tensor.name] = numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _training_nodes(model: Any) -> list[str]:
    """Nodes that compute in training mode: BatchNormalization with training_mode=1 or its training outputs
    (running mean/var), Dropout whose training_mode is not a constant false."""
    constants, found = _constants(model), []
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            attrs = {a.name: a.i for a in node.attribute if a.name == "training_mode"}
            if attrs.get("training_mode") == 1 or len([o for o in node.output if o]) > 1:
                found.append(f"{_label(node)} (training_mode=1)")
        elif node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            flag = constants.get(node.input[2])
            if flag is None or bool(flag.reshape(-1)[0]):
                found.append(f"{_label(node)} (training_mode={'an input' if flag is None else 'true'})")
    return found


def _shown(items: list[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f" … ({len(items)} in all)" if len(items) > limit else "")


QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger"})


def output_refusals(model: Any) -> list[str]:
    """Why the outputs of ``model`` cannot be checked: none at all, or one that is not float32."""
    from onnx import TensorProto

    reasons = [] if model.graph.output else ["it has no outputs"]
    names = [value.name for value in model.graph.output]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        reasons.append(
            f"its outputs name {_shown(twice)} more than once: give each graph output its own name (an Identity "
            "node per extra output)"
        )
    for value in model.graph.output:
        elem = value.type.tensor_type.elem_type
        if elem not in (TensorProto.FLOAT, TensorProto.UNDEFINED):
            name = TensorProto.DataType.Name(elem).lower()
            reasons.append(
                f"its output '{value.name}' is {name}, not float32: edgecnn measures float outputs (logits, maps, "
                "boxes, embeddings); export the model without its final ArgMax or Cast"
            )
        elif value.type.tensor_type.HasField("shape") and not value.type.tensor_type.shape.dim:
            reasons.append(f"its output '{value.name}' is a scalar: {PER_IMAGE}")
    return reasons


def refusals(model: Any, quantize: bool = True) -> list[str]:
    """Why ``model`` cannot be exported (one reason each; empty when it can): an input that is not float32,
    training-mode nodes, an opset older than ONNX Runtime loads, and control flow when it is to be quantized."""
    from onnx import TensorProto

    reasons = []
    for value in _graph_inputs(model):
        elem = value.type.tensor_type.elem_type
        if elem != TensorProto.FLOAT:
            name = TensorProto.DataType.Name(elem).lower() if elem else "not a tensor"
            reasons.append(
                f"its input '{value.name}' is {name}, not float32: edgecnn exports image models, calibrated "
                "and checked on float32 inputs"
            )
    for value in _graph_inputs(model):
        bad = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value") and d.dim_value <= 0]
        if bad:
            reasons.append(f"its input '{value.name}' has a dimension of {bad[0]}: every dimension must be ≥ 1")
    reasons += output_refusals(model)
    training = _training_nodes(model)
    if training:
        reasons.append(
            f"it is a training-mode graph ({_shown(training)}): int8 calibration needs inference statistics; "
            "export it in eval mode (model.eval() before torch.onnx.export)"
        )
    opset = default_opset(model)
    if opset is not None and opset < OLDEST_OPSET:
        reasons.append(f"its opset {opset} is older than ONNX Runtime loads ({OLDEST_OPSET}): re-export it")
    quantized = [_label(n) for n in model.graph.node if n.op_type in QUANTIZED_OPS]
    if quantized and quantize:
        reasons.append(
            f"it is quantized already ({len(quantized)} quantization nodes, such as {quantized[0]}): give the "
            "float model it was made from, or pass "
            "--no-quantize to take it as it is"
        )
    passed = [value.name for value in model.graph.output if value.name in {i.name for i in model.graph.input}]
    if passed and quantize:
        reasons.append(
            f"its output(s) {_shown(passed)} are its input(s) passed through, which int8 quantization cannot take "
            "(a graph that is not a DAG): remove those outputs, or pass --no-quantize for fp32 only"
        )
    flow = [_label(n) for n in model.graph.node if n.op_type in CONTROL_FLOW]
    if flow and quantize:
        reasons.append(
            f"it has control flow ({_shown(flow)}), whose subgraphs int8 calibration cannot quantize: export "
            "it with the branches resolved (traced at a fixed shape), or pass --no-quantize for fp32 only"
        )
    return reasons


def check_exportable(path: Any, quantize: bool = True) -> None:
    """One UsageError with every reason of :func:`refusals` for the ONNX file ``path``, naming it."""
    import onnx

    reasons = refusals(onnx.load(str(path), load_external_data=False), quantize)
    if reasons:
        raise UsageError(f"{path} cannot be exported{' to int8' if quantize else ''}: {'; '.join(reasons)}")


def _converter_reason(error: Exception) -> str:
    """The converter's assertion, without its source location and format placeholders."""
    text = " ".join(str(error).split())
    text = re.sub(r"^\S+\.(cc|h):\d+: \S+: ", "", text)
    text = re.sub(r"Assertion `.*?` failed: ", "", text)
    return text.split(" Op '%s'")[0][:200]


def _blame(model: Any, target: int) -> str | None:
    """The first node that the converter fails on alone (a one-node model with the node's constant inputs)."""
    from onnx import helper, version_converter

    constants = {t.name: t for t in model.graph.initializer}
    opset = default_opset(model)
    for node in model.graph.node:
        if node.op_type in CONTROL_FLOW:
            continue
        inputs = [helper.make_tensor_value_info(name, 1, None) for name in node.input if name and name not in constants]
        outputs = [helper.make_tensor_value_info(name, 1, None) for name in node.output if name]
        graph = helper.make_graph([node], "one", inputs, outputs, [constants[n] for n in node.input if n in constants])
        single = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        try:
            version_converter.convert_version(single, target)
        except Exception as error:  # the converter raises RuntimeError/IndexError from its C++ assertions
            known = _has_schema(node.op_type, target)
            why = _converter_reason(error) if known else f"{node.op_type} is not an ONNX op at opset {target}"
            return f"{_label(node)}: {why}"
    return None


def _has_schema(op_type: str, opset: int) -> bool:
    from onnx import defs

    try:
        defs.get_schema(op_type, opset)
    except Exception:  # SchemaError: no such op (removed or experimental)
        return False
    return True


def upgrade_opset(model: Any, target: int, path: Any) -> Any:
    """``model`` converted to default-domain opset ``target`` by ``onnx.version_converter``, its IR version
    raised to what that opset needs; a conversion the converter cannot do is one UsageError naming the op."""
    from onnx import helper, version_converter

    original = default_opset(model)
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as error:  # the converter raises RuntimeError/IndexError from its C++ assertions
        culprit = _blame(model, target) or _converter_reason(error)
        raise UsageError(
            f"{path} cannot be upgraded from opset {original} to {target} (onnx.version_converter): {culprit}; "
            "re-export it at a newer opset"
        ) from None
    needed = helper.find_min_ir_version_for(list(converted.opset_import), ignore_unknown=True)
    converted.ir_version = max(converted.ir_version, needed)
    return converted


def fix_input_dims(model: Any, shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """Set the free (symbolic or unknown) dims of the graph's inputs to ``shapes`` (one per input, in order); what
    was fixed, by dim name. Intermediate shapes recorded in the file are dropped so shape inference recomputes
    them."""
    import onnx

    fixed: dict[str, int] = {}
    several = len(shapes) > 1
    for value, shape in zip(_graph_inputs(model), shapes, strict=True):
        if not value.type.tensor_type.HasField("shape"):  # no shape, not even a rank: all of it is given
            value.type.tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension() for _ in shape)
        dims = value.type.tensor_type.shape.dim
        for i, (dim, size) in enumerate(zip(dims, shape, strict=True)):
            if not dim.HasField("dim_value"):
                label = dim.dim_param or f"dim {i}"
                fixed[f"{value.name}: {label}" if several else label] = size
                dim.dim_value = size
    if fixed:
        del model.graph.value_info[:]
    return fixed
