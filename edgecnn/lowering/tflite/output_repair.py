"""Graph outputs of an ai-edge-quantizer model put back where the float model had them.

ai-edge-quantizer (0.x) inserts a DEQUANTIZE after an int8 tensor that a float op reads; when that tensor is also a
graph output, the graph output moves to the DEQUANTIZE's float tensor, and the ``serving_default`` signature is
updated only when the graph output was the tensor's sole reader. A model returning a feature map that a float op
also reads (``return logits, f, f.amax((2, 3))``) then had a float output where int8 was asked for, and a signature
naming the int8 tensor inside the graph, which LiteRT does not keep: "Tensor data is null" on every run.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from edgecnn.lowering.tflite.flatbuffer import litert_schema, packed


def repaired_outputs(data: bytes, model: Any, float_model: Any, int8: Collection[int]) -> tuple[bytes, Any]:
    """``data`` (parsed: ``model``) with each graph output at position ``int8`` that a DEQUANTIZE of an int8 tensor
    makes taken from that int8 tensor, and each signature output naming its graph output at the float model's
    position; ``data`` and ``model`` as they are when nothing needed it."""
    schema = litert_schema()
    graph, float_graph = model.subgraphs[0], float_model.subgraphs[0]
    codes = [code.builtinCode for code in model.operatorCodes]
    producer = {out: op for op in graph.operators for out in op.outputs}
    changed = False
    for position, tensor in enumerate(graph.outputs):
        op = producer.get(tensor)
        if position not in int8 or op is None or codes[op.opcodeIndex] != schema.BuiltinOperator.DEQUANTIZE:
            continue
        if graph.tensors[op.inputs[0]].type == schema.TensorType.INT8:
            graph.outputs[position] = op.inputs[0]
            changed = True
    positions = {int(index): position for position, index in enumerate(float_graph.outputs)}
    named = {  # signature output name → its graph output's position in the float model
        item.name: positions[int(item.tensorIndex)]
        for signature in float_model.signatureDefs or []
        for item in signature.outputs or []
        if int(item.tensorIndex) in positions
    }
    for signature in model.signatureDefs or []:
        for item in signature.outputs or []:
            if item.name in named and item.tensorIndex != graph.outputs[named[item.name]]:
                item.tensorIndex = int(graph.outputs[named[item.name]])
                changed = True
    if not changed:
        return data, model
    return packed(model, len(data) + 1024), model  # ``model`` is what the bytes now hold


def int8_positions(float_model: Any, floated: Collection[str], io: str) -> set[int]:
    """The positions of the graph outputs meant int8: all but ``floated`` (tensor names) when ``io`` is int8."""
    if io != "int8":
        return set()
    graph = float_model.subgraphs[0]
    return {p for p, index in enumerate(graph.outputs) if graph.tensors[index].name.decode() not in floated}
