"""Full-integer int8 quantization of a lowered fp32 ``.tflite`` with ai-edge-quantizer (no TensorFlow).

The float flatbuffer of :func:`edgecnn.lowering.tflite.convert` (one ``serving_default`` signature, one
image input, any outputs) is calibrated on a few normalised samples and quantized with the
``static_wi8_ai8`` recipe: int8 activations (per tensor, asymmetric), int8 weights (per output channel,
symmetric), int32 biases. ai-edge-quantizer quantizes the graph's input and output tensors too, so
``io="int8"`` needs no post-pass; ``io="float"`` excludes the virtual ``INPUT``/``OUTPUT`` ops from the
recipe, which makes the tool put a QUANTIZE after the float input and a DEQUANTIZE before the float output.
"""

from __future__ import annotations

import contextlib
import io as _io
import re
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.errors import CheckFailedError, UnknownNameError, UsageError

SIGNATURE = "serving_default"
RECIPE = "static_wi8_ai8"
IO_MODES = ("int8", "float")
INT32_MAX = 2**31 - 1
LAYOUTS = ("NHWC", "NCHW")


@dataclass(frozen=True)
class QuantizedTflite:
    """An int8 ``.tflite`` and what a device needs to feed it: the input/output dtypes and, for int8 I/O,
    their quantization (``real = scale * (q - zero_point)``); scale and zero point are None for float I/O."""

    data: bytes
    input_scale: float | None
    input_zero_point: int | None
    output_scale: float | None
    output_zero_point: int | None
    input_dtype: str  # "int8" or "float32"
    output_dtype: str
    op_counts: dict[str, int]
    seconds: float = 0.0  # wall time of calibration + quantization
    # every input and output by signature name: dtype, scale and zero point (the input_*/output_* fields above are
    # the first one's)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ops kept float after quantization showed they cannot be int8: op (its output tensors, ';'-joined) -> why
    kept_float: dict[str, str] = field(default_factory=dict)


def node_scope(model: Any, node_names: Sequence[str]) -> str | None:
    """A regex on ``.tflite`` tensor names matching the ops lowered from the ONNX nodes ``node_names``
    (a lowered tensor is named after its ONNX output, plus ``/…`` or ``:n`` for helpers; the
    quantizer joins an op's output names with ``;``), for
    ``keep_float_scopes``; None when no node is named."""
    wanted = set(node_names)
    return _output_scope([out for node in model.graph.node if node.name in wanted for out in node.output if out])


def _output_scope(outputs: Sequence[str]) -> str | None:
    if not outputs:
        return None
    return "^(?:" + "|".join(re.escape(o) for o in sorted(set(outputs))) + ")(?:[/:;]|$)"


def variable_division_scope(model: Any) -> str | None:
    """The scope of every Div by a computed (not constant) divisor: it stays float in int8, because an int8 DIV
    whose divisor rounds to its zero point is refused by LiteRT's kernel at run time (EfficientViT's attention
    normalisation does that)."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    divisions = [n for n in model.graph.node if n.op_type == "Div" and n.input[1] not in constants]
    return _output_scope([out for node in divisions for out in node.output if out])


def _constants(model: Any) -> dict[str, np.ndarray]:
    """The float32 constant tensors of subgraph 0 by name."""
    buffers = model.buffers
    return {
        tensor.name.decode(): np.frombuffer(bytes(buffers[tensor.buffer].data), np.float32)
        for tensor in model.subgraphs[0].tensors
        if tensor.type == _schema().TensorType.FLOAT32 and buffers[tensor.buffer].data is not None
    }


def bias_problem(bias: np.ndarray, scale: np.ndarray) -> str | None:
    """Why an int32 bias of ``scale`` (input scale × weight scale, per tensor or channel) cannot hold the float
    ``bias``, or None: the scale underflows float32, or ``|bias| / scale`` overflows int32."""
    scale = np.asarray(scale, np.float64)
    if np.min(scale) < np.finfo(np.float32).tiny:
        return f"int32 bias scale {np.min(scale):.2g} underflows float32"
    ratio = float(np.max(np.abs(np.asarray(bias, np.float64)) / scale))
    if ratio > INT32_MAX:
        return f"int32 bias overflows: |bias| / (input scale × weight scale) reaches {ratio:.2g} > 2^31 - 1"
    return None


def overflowing_biases(float_model: Any, model: Any) -> dict[str, tuple[str, str]]:
    """The ops of the quantized ``model`` whose int32 bias cannot hold the float bias of ``float_model`` (its
    scale is fixed to input scale × weight scale: activations of ~1e-11 overflow it): op, named by its output
    tensors ``;``-joined as ai-edge-quantizer names it, → (op type, reason)."""
    from edgecnn.lowering.tflite.builder import OPERATOR_NAMES

    schema = _schema()
    codes = [code.builtinCode for code in model.operatorCodes]
    floats = _constants(float_model)
    tensors = model.subgraphs[0].tensors
    found = {}
    for op in model.subgraphs[0].operators:
        for index in op.inputs:
            tensor = tensors[index] if index >= 0 else None
            if tensor is None or tensor.type != schema.TensorType.INT32 or tensor.name.decode() not in floats:
                continue
            quantization = tensor.quantization
            if quantization is None or quantization.scale is None or len(quantization.scale) == 0:
                continue
            reason = bias_problem(floats[tensor.name.decode()], quantization.scale)
            if reason:
                op_type = OPERATOR_NAMES[codes[op.opcodeIndex]]
                found[";".join(tensors[i].name.decode() for i in op.outputs)] = (op_type, reason)
    return found


def _quantize_keeping_bad_biases_float(
    tool: Any, statistics: Any, float_model: Any, schema: Any
) -> tuple[bytes, Any, dict[str, str]]:
    """Quantize with ``tool`` on the calibration ``statistics``; the ops whose int32 bias would overflow
    (:func:`overflowing_biases`) are added to the recipe as float scopes and the model quantized again.
    The quantized bytes, their parsed model, and the ops kept float → why."""
    from ai_edge_quantizer import algorithm_manager

    no_quantize = algorithm_manager.AlgorithmName.NO_QUANTIZE
    kept: dict[str, str] = {}
    while True:
        data = bytes(tool.quantize(statistics, enable_progress_report=False).quantized_model)
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        found = {op: why for op, why in overflowing_biases(float_model, model).items() if op not in kept}
        if not found:
            return data, model, kept
        for op, (op_type, why) in found.items():
            kept[op] = f"{op_type}: {why}"
            # by op type too: the virtual OUTPUT op after it is named like it and must stay quantized
            scope = _output_scope(op.split(";"))
            tool.update_quantization_recipe(regex=scope, operation_name=op_type, algorithm_key=no_quantize)


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise UsageError("int8 .tflite needs ai-edge-litert: pip install 'edgecnn[tflite]'") from None
    return schema


def _signature_io(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Input and output tensor indices of the ``serving_default`` signature, by signature name."""
    for signature in model.signatureDefs or []:
        key = signature.signatureKey.decode() if isinstance(signature.signatureKey, bytes) else signature.signatureKey
        if key == SIGNATURE:

            def names(maps: Any) -> dict[str, int]:
                return {(m.name.decode() if isinstance(m.name, bytes) else m.name): m.tensorIndex for m in maps}

            return names(signature.inputs or []), names(signature.outputs or [])
    raise UsageError(f"the .tflite has no '{SIGNATURE}' signature to calibrate through")


def _calibration_samples(calibration: np.ndarray, input_layout: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The samples as float32 batches of the input's static batch (``shape[0]``; a short last batch is filled with
    copies of its last sample), in the model's layout; checked against the input's ``shape``."""
    if input_layout not in LAYOUTS:
        raise UsageError(f"input_layout must be one of {', '.join(LAYOUTS)}, not '{input_layout}'")
    samples = np.asarray(calibration, dtype=np.float32)
    if samples.ndim != 4 or len(samples) == 0:
        raise UsageError(f"calibration data must be a non-empty N×C×H×W array, got shape {samples.shape}")
    if input_layout == "NHWC":
        samples = samples.transpose(0, 2, 3, 1)
    if tuple(samples.shape[1:]) != tuple(shape[1:]):
        raise UsageError(
            f"calibration samples are {tuple(samples.shape[1:])} in {input_layout}; the model's input is {shape}"
        )
    size = max(int(shape[0]), 1)
    batches = [samples[i : i + size] for i in range(0, len(samples), size)]
    batches[-1] = np.concatenate([batches[-1], np.repeat(batches[-1][-1:], size - len(batches[-1]), axis=0)])
    return [np.ascontiguousarray(batch) for batch in batches]


def _quantization(tensor: Any, schema: Any) -> tuple[str, float | None, int | None]:
    """(dtype name, scale, zero point) of a graph input/output tensor; scale/zero point only for int8."""
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    dtype = names[tensor.type]
    if tensor.type != schema.TensorType.INT8:
        return dtype, None, None
    params = tensor.quantization
    if params is None or params.scale is None or len(params.scale) != 1:
        raise CheckFailedError(f"int8 tensor '{tensor.name.decode()}' has no per-tensor scale and zero point")
    return dtype, float(params.scale[0]), int(params.zeroPoint[0])


def quantize_tflite(
    fp32: bytes,
    calibration: np.ndarray | dict[str, np.ndarray],
    input_layout: str = "NHWC",
    keep_float_ops: tuple[str, ...] = (),
    io: str = "int8",
    keep_float_scopes: tuple[str, ...] = (),
) -> QuantizedTflite:
    """Quantize a lowered fp32 ``.tflite`` to full int8.

    ``calibration`` is float32 N×C×H×W, normalised as the model expects (one array per input name for a model
    with several); ``input_layout`` is the layout of
    the ``.tflite``'s input (``LoweredModel.input_layout``). ``keep_float_ops`` names TFLite builtin ops
    ("MEAN", "LOGISTIC", …) that stay in float, with DEQUANTIZE/QUANTIZE around them. ``io="int8"`` makes
    the model's input and output int8; ``io="float"`` keeps them float32 with QUANTIZE/DEQUANTIZE inside.
    ``keep_float_scopes`` are regexes on output tensor names whose ops stay float (a deformable layer's
    sampling path, :func:`node_scope`). Ops ai-edge-quantizer has no int8 rule for stay in float the same way.
    """
    if io not in IO_MODES:
        raise UsageError(f"io must be one of {', '.join(IO_MODES)}, not '{io}'")
    schema = _schema()
    known_ops = [k for k in vars(schema.BuiltinOperator) if not k.startswith("_")]
    for op in keep_float_ops:
        if op not in known_ops:
            raise UnknownNameError("TFLite op", op, known_ops)
    try:
        from ai_edge_quantizer import algorithm_manager, quantizer, recipe
    except ImportError:
        raise UsageError("int8 .tflite needs ai-edge-quantizer: pip install 'edgecnn[tflite]'") from None

    if bytes(fp32[4:8]) != b"TFL3":
        raise UsageError("not a .tflite flatbuffer (no TFL3 identifier)")
    float_model = schema.ModelT.InitFromPackedBuf(bytearray(fp32), 0)
    inputs, outputs = _signature_io(float_model)
    if not isinstance(calibration, dict):
        if len(inputs) != 1:
            raise UsageError(f"the model has inputs {', '.join(inputs)}: give calibration samples per input name")
        calibration = {next(iter(inputs)): calibration}
    if set(calibration) != set(inputs) or not outputs:
        raise UsageError(f"calibration samples for {', '.join(calibration)}; the model has {inputs} → {outputs}")
    tensors = float_model.subgraphs[0].tensors
    per_input = {
        name: _calibration_samples(calibration[name], input_layout, tuple(int(d) for d in tensors[index].shape))
        for name, index in inputs.items()
    }
    samples = [dict(zip(per_input, values, strict=True)) for values in zip(*per_input.values(), strict=True)]
    input_name = next(iter(inputs))

    no_quantize = algorithm_manager.AlgorithmName.NO_QUANTIZE
    started = time.perf_counter()
    try:
        # The calibrator's tqdm bar and the interpreter's debug-mode warning are noise for a CLI.
        with warnings.catch_warnings(), contextlib.redirect_stderr(_io.StringIO()):
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            tool = quantizer.Quantizer(bytearray(fp32))
            tool.load_quantization_recipe(getattr(recipe, RECIPE)())
            # Later rules win: these override the '*' rule of the recipe for the ops named.
            for op in (*keep_float_ops, *(("INPUT", "OUTPUT") if io == "float" else ())):
                tool.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key=no_quantize)
            for scope in keep_float_scopes:
                tool.update_quantization_recipe(regex=scope, operation_name="*", algorithm_key=no_quantize)
            statistics = tool.calibrate({SIGNATURE: samples}, num_threads=1)
            data, model, kept_float = _quantize_keeping_bad_biases_float(tool, statistics, float_model, schema)
    except Exception as error:  # the tool raises ValueError/RuntimeError/KeyError… from deep inside
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckFailedError(f"int8 quantization with ai-edge-quantizer failed: {message}") from error
    seconds = time.perf_counter() - started

    q_inputs, q_outputs = _signature_io(model)
    tensors = model.subgraphs[0].tensors
    in_dtype, in_scale, in_zero = _quantization(tensors[q_inputs[input_name]], schema)

    def described(index: int) -> dict[str, Any]:
        return dict(zip(("dtype", "scale", "zero_point"), _quantization(tensors[index], schema), strict=True))

    quantized_inputs = {name: described(q_inputs[name]) for name in inputs}
    quantized_outputs = {name: described(q_outputs[name]) for name in outputs}
    in_dtypes = {i["dtype"] for i in quantized_inputs.values()}
    wanted = "int8" if io == "int8" else "float32"
    out_dtypes = {o["dtype"] for o in quantized_outputs.values()}
    if {*in_dtypes, *out_dtypes} != {wanted}:
        raise CheckFailedError(
            f"io='{io}' asks for {wanted} input and outputs; the quantized model has {in_dtype} → "
            f"{', '.join(sorted(out_dtypes))}"
        )
    first = next(iter(quantized_outputs.values()))
    out_dtype, out_scale, out_zero = first["dtype"], first["scale"], first["zero_point"]
    from edgecnn.lowering.tflite.builder import OPERATOR_NAMES

    codes = [code.builtinCode for code in model.operatorCodes]
    op_counts = dict(Counter(OPERATOR_NAMES[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators))
    return QuantizedTflite(
        data,
        in_scale,
        in_zero,
        out_scale,
        out_zero,
        in_dtype,
        out_dtype,
        op_counts,
        seconds,
        quantized_outputs,
        quantized_inputs,
        kept_float,
    )
