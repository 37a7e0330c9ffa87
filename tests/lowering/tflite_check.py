"""Build small ONNX graphs, lower them to TFLite and compare the LiteRT interpreter with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from onnx import TensorProto, helper, numpy_helper

from edgecnn.lowering.tflite import convert

# The default resolver applies XNNPACK; the other runs TFLite's own builtin kernels.
RESOLVERS = (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
TOLERANCE = 1e-4
MAX_ERRORS: dict[str, float] = {}  # test group -> worst relative error seen (printed by conftest)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: dict[str, Sequence[int]],
    outputs: Sequence[str],
    initializers: dict[str, Any] | None = None,
    opset: int = 20,
) -> onnx.ModelProto:
    """A float32 ONNX model of ``nodes``; output shapes come from shape inference."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), name) for name, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime's outputs, by name."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def run_tflite(data: bytes, feeds: dict[str, np.ndarray], resolver: OpResolverType) -> dict[str, np.ndarray]:
    """The interpreter's outputs for ``feeds`` (already in the .tflite's layout), through serving_default."""
    interpreter = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(**feeds)


def to_layout(array: np.ndarray, nchw: bool) -> np.ndarray:
    """NCHW → NHWC for 4-D arrays unless ``nchw``."""
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 and not nchw else array


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max absolute error over the range of ``expected``."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    spread = float(expected.max() - expected.min()) if expected.size else 0.0
    return float(np.abs(actual.astype(np.float64) - expected).max()) / (spread or 1.0)


def check(
    model: onnx.ModelProto, group: str, seed: int = 0, nchw_io: bool = False, scale: float = 1.0, feeds=None
) -> float:
    """Lower ``model``, run it under both resolvers and ONNX Runtime; assert and return the worst relative error."""
    rng = np.random.default_rng(seed)
    if feeds is None:
        feeds = {}
        for value in model.graph.input:
            shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
            feeds[value.name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    expected = run_ort(model, feeds)
    lowered = convert(model, nchw_io=nchw_io)
    assert lowered.input_layout == ("NCHW" if nchw_io else "NHWC")
    worst = 0.0
    for resolver in RESOLVERS:
        actual = run_tflite(lowered.data, {k: to_layout(v, nchw_io) for k, v in feeds.items()}, resolver)
        for name, reference in expected.items():
            worst = max(worst, relative_error(actual[name], to_layout(reference, nchw_io)))
    MAX_ERRORS[group] = max(MAX_ERRORS.get(group, 0.0), worst)
    assert worst <= TOLERANCE, f"relative error {worst:.3g} > {TOLERANCE}"
    return worst
