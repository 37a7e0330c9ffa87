"""Reading a ``.tflite``: its schema objects, float constants, and tensor values with every tensor kept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from edgecnn.errors import UsageError

SIGNATURE = "serving_default"
FILE_IDENTIFIER = b"TFL3"  # bytes 4–8 of every .tflite


def litert_schema() -> Any:
    """The TFLite schema module of ai-edge-litert (one line when it is not installed)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise UsageError("int8 .tflite needs ai-edge-litert: pip install 'edgecnn[tflite]'") from None
    return schema


def parse(data: bytes) -> Any:
    """A ``.tflite``'s object-API model (one line when it is not a TFLite flatbuffer)."""
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise UsageError("not a .tflite flatbuffer (no TFL3 identifier)")
    return litert_schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def packed(model: Any, size_hint: int = 1024) -> bytes:
    """The ``.tflite`` flatbuffer of an object-API ``model`` (``ModelT``)."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def float_constants(model: Any) -> dict[str, np.ndarray]:
    """The float32 constant tensors of subgraph 0 by name."""
    buffers, float32 = model.buffers, litert_schema().TensorType.FLOAT32
    return {
        tensor.name.decode(): np.frombuffer(bytes(buffers[tensor.buffer].data), np.float32)
        for tensor in model.subgraphs[0].tensors
        if tensor.type == float32 and buffers[tensor.buffer].data is not None
    }


def buffer_bytes(model: Any, data: bytes, index: int) -> bytes:
    """The bytes of buffer ``index`` of the parsed ``model`` (``data`` its file): inside the flatbuffer, or after it
    at an offset (ai-edge-quantizer writes its constants so)."""
    buffer = model.buffers[index]
    if buffer.data is not None:
        return bytes(buffer.data)
    return bytes(data[buffer.offset : buffer.offset + buffer.size]) if buffer.offset > 1 else b""


def kept_interpreter(model: bytes) -> tuple[Any, int, dict[str, Any]]:
    """LiteRT's interpreter of ``model`` on its reference kernels with every tensor kept (ai-edge-quantizer's
    helpers, which dequantize int8 tensors), the signature's subgraph and its tensors' details by name."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as utils

    interpreter = utils.create_tfl_interpreter(model, use_xnnpack=False, num_threads=1, preserve_all_tensors=True)
    subgraph = utils.get_signature_main_subgraph_index(interpreter, SIGNATURE)
    return interpreter, subgraph, utils.get_tensor_name_to_details_map(interpreter, subgraph)


def tensor_values(
    model: bytes, names: Sequence[str], samples: Iterable[dict[str, np.ndarray]]
) -> Iterator[dict[str, np.ndarray]]:
    """For each of ``samples`` (the signature's float32 feeds), the values of those tensors of ``names`` that the
    model has, dequantized, as float32."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as utils

    interpreter, subgraph, details = kept_interpreter(model)
    present = [name for name in names if name in details]
    for sample in samples:
        utils.invoke_interpreter_signature(interpreter, dict(sample), SIGNATURE)
        yield {n: np.array(utils.get_tensor_data(interpreter, details[n], subgraph), np.float32) for n in present}
