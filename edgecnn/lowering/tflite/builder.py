"""Collect the tensors, buffers, operator codes and operators of one TFLite subgraph, and pack them.

Everything goes through the object API of the TFLite schema that ships with
ai-edge-litert (``ModelT.Pack``); no flatbuffer offset is written by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.flatbuffer import packed

SCHEMA_VERSION = 3  # the version field every current TFLite flatbuffer carries
BUFFER_ALIGNMENT = 16  # the TFLite converter aligns constant data to 16 bytes (``force_align: 16``)

TENSOR_TYPES: dict[np.dtype, int] = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.float16): schema.TensorType.FLOAT16,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}
OPERATOR_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class _AlignedBufferT(schema.BufferT):
    """A buffer whose bytes start on a 16-byte boundary of the finished file."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # the object API names it so
        data = None
        if self.data is not None and len(self.data):
            builder.Prep(BUFFER_ALIGNMENT, len(self.data))  # pad so that the vector's bytes end up aligned
            data = builder.CreateNumpyVector(self.data)
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def options_type(options: Any) -> int:
    """The ``BuiltinOptions`` union tag of an options object (``Conv2DOptionsT`` → ``Conv2DOptions``)."""
    return getattr(schema.BuiltinOptions, type(options).__name__.removesuffix("T"))


class GraphBuilder:
    """One TFLite model with one subgraph, built up tensor by tensor and operator by operator."""

    def __init__(self, description: str = "edgecnn ONNX→TFLite lowering") -> None:
        self.description = description
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [_AlignedBufferT()]  # buffer 0: the empty sentinel of the schema
        self.operators: list[Any] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._codes: dict[int, int] = {}  # builtin code -> index in _versions
        self._versions: list[list[int]] = []  # [builtin code, version]
        self._names: set[str] = set()
        self._signature: tuple[dict[str, int], dict[str, int], str] | None = None

    # tensors
    def _unique(self, name: str) -> str:
        unique, n = name, 0
        while unique in self._names:
            n += 1
            unique = f"{name}:{n}"
        self._names.add(unique)
        return unique

    def add_tensor(
        self, name: str, shape: Sequence[int], dtype: Any = np.float32, data: np.ndarray | None = None
    ) -> int:
        """Add a tensor (a constant when ``data`` is given); returns its index."""
        dtype = np.dtype(dtype)
        if dtype not in TENSOR_TYPES:
            raise ValueError(f"no TFLite tensor type for {dtype}")
        buffer = 0
        if data is not None:
            array = np.array(data, dtype=dtype, order="C")
            if tuple(array.shape) != tuple(shape):
                raise ValueError(f"constant {name}: data shape {array.shape} != tensor shape {tuple(shape)}")
            self.buffers.append(_AlignedBufferT(data=array.reshape(-1).view(np.uint8)))
            buffer = len(self.buffers) - 1
        tensor = schema.TensorT(
            shape=[int(d) for d in shape], type=TENSOR_TYPES[dtype], buffer=buffer, name=self._unique(name)
        )
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def add_constant(self, name: str, data: Any, dtype: Any = None) -> int:
        """Add a constant tensor holding ``data``."""
        array = np.asarray(data, dtype=dtype)
        return self.add_tensor(name, array.shape, array.dtype, array)

    def shape(self, index: int) -> tuple[int, ...]:
        """The shape of tensor ``index``."""
        return tuple(self.tensors[index].shape)

    def dtype(self, index: int) -> np.dtype:
        """The numpy element type of tensor ``index``."""
        return next(d for d, t in TENSOR_TYPES.items() if t == self.tensors[index].type)

    def name(self, index: int) -> str:
        """The name of tensor ``index``."""
        return self.tensors[index].name

    def rename(self, index: int, name: str) -> None:
        """Give tensor ``index`` a new (unique) name."""
        self._names.discard(self.tensors[index].name)
        self.tensors[index].name = self._unique(name)

    def is_constant(self, index: int) -> bool:
        """Whether tensor ``index`` holds data."""
        return self.tensors[index].buffer != 0

    # operators
    def opcode(self, builtin: int, version: int = 1) -> int:
        """The index of the operator code of ``builtin``; one code per builtin, at the highest version asked."""
        if builtin not in self._codes:
            self._codes[builtin] = len(self._versions)
            self._versions.append([builtin, version])
        entry = self._versions[self._codes[builtin]]
        entry[1] = max(entry[1], version)
        return self._codes[builtin]

    def add_operator(
        self, builtin: int, inputs: Sequence[int], outputs: Sequence[int], options: Any = None, version: int = 1
    ) -> int:
        """Append an operator; ``options`` is a ``…OptionsT`` object of the schema or None. Returns its index."""
        op = schema.OperatorT(opcodeIndex=self.opcode(builtin, version), inputs=list(inputs), outputs=list(outputs))
        if options is not None:
            op.builtinOptionsType = options_type(options)
            op.builtinOptions = options
        self.operators.append(op)
        return len(self.operators) - 1

    def op_counts(self) -> dict[str, int]:
        """How many operators of each builtin type the graph has, by TFLite name."""
        codes = {index: code for code, index in self._codes.items()}
        return dict(Counter(OPERATOR_NAMES[codes[op.opcodeIndex]] for op in self.operators))

    # graph
    def set_io(self, inputs: Sequence[int], outputs: Sequence[int]) -> None:
        """Declare the subgraph's input and output tensors."""
        self.inputs, self.outputs = list(inputs), list(outputs)

    def set_signature(self, inputs: dict[str, int], outputs: dict[str, int], key: str = "serving_default") -> None:
        """Name the subgraph's inputs and outputs in a signature (``serving_default`` unless told)."""
        self._signature = (dict(inputs), dict(outputs), key)

    def to_model(self) -> Any:
        """The ``ModelT`` object of everything collected so far."""
        codes = [
            schema.OperatorCodeT(
                deprecatedBuiltinCode=min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES),
                builtinCode=code,
                version=version,
            )
            for code, version in self._versions
        ]
        subgraph = schema.SubGraphT(
            tensors=self.tensors, inputs=self.inputs, outputs=self.outputs, operators=self.operators, name="main"
        )
        model = schema.ModelT(
            version=SCHEMA_VERSION,
            operatorCodes=codes,
            subgraphs=[subgraph],
            description=self.description,
            buffers=self.buffers,
        )
        if self._signature is not None:
            inputs, outputs, key = self._signature
            model.signatureDefs = [
                schema.SignatureDefT(
                    inputs=[schema.TensorMapT(name=k, tensorIndex=v) for k, v in inputs.items()],
                    outputs=[schema.TensorMapT(name=k, tensorIndex=v) for k, v in outputs.items()],
                    signatureKey=key,
                    subgraphIndex=0,
                )
            ]
        return model

    def to_bytes(self) -> bytes:
        """The finished ``.tflite`` flatbuffer."""
        return packed(self.to_model())
