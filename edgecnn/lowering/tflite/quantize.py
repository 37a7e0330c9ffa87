"""Full-integer int8 quantization of a lowered fp32 ``.tflite`` with ai-edge-quantizer (no TensorFlow).

The float flatbuffer of :func:`edgecnn.lowering.tflite.convert` (one ``serving_default`` signature, one
image input, any outputs) is calibrated on a few normalised samples and quantized with the
``static_wi8_ai8`` recipe: int8 activations (per tensor, asymmetric), int8 weights (per output channel,
or per tensor for targets that need it; symmetric), int32 biases. ai-edge-quantizer quantizes the graph's
input and output tensors too, so ``io="int8"`` needs no post-pass; ``io="float"`` excludes the virtual
``INPUT``/``OUTPUT`` ops from the recipe, which makes the tool put a QUANTIZE after the float input and a
DEQUANTIZE before the float output.

Calibration takes each tensor's minimum and maximum over all the calibration samples, as edgecnn's ORT
calibration does. ai-edge-quantizer's own calibration keeps a moving average (factor 0.95) of each sample's
extremes instead, which narrows the ranges to roughly the last twenty samples' and clips the rest: on a digits
MobileNetV2 its int8 logits keep 7 dB of SQNR where the true extremes keep 31, as ORT's QDQ graph does
(``benchmarks/quant_peers.py``: its ``tflite_aeq_*`` rows are the tool's own calibration). Percentile, entropy
and auto ranges come from a ``calibrator`` (``edgecnn.pipeline.tflite_calibration``) and replace the min-max ones
tensor by tensor; bias correction is :mod:`edgecnn.lowering.tflite.bias_correction`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io as _io
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config.recipes import CALIBRATION_METHODS
from edgecnn.data.calibration import samples_within
from edgecnn.errors import CheckFailedError, UnknownNameError, UsageError, first_line
from edgecnn.lowering.linear_mean import CORRECTION_PIXELS
from edgecnn.lowering.tflite.flatbuffer import SIGNATURE, float_constants, litert_schema, parse
from edgecnn.lowering.tflite.large_weights import large_weights_split
from edgecnn.lowering.tflite.output_repair import int8_positions, repaired_outputs

RECIPE = "static_wi8_ai8"
IO_MODES = ("int8", "float")
INT32_MAX = 2**31 - 1
LAYOUTS = ("NHWC", "NCHW")
MINMAX = CALIBRATION_METHODS[0]  # ai-edge-quantizer's own; the others need a calibrator (pipeline.tflite_calibration)


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
    # with bias correction: the layers corrected and their mean and largest shift (output units); else None
    bias_correction: dict[str, Any] | None = None
    method: str = "minmax"  # how the activations were calibrated
    # with weight rounding: the layers rounded with error compensation and the share of weights moved; else None
    weight_rounding: dict[str, Any] | None = None


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

    schema = litert_schema()
    codes = [code.builtinCode for code in model.operatorCodes]
    floats = float_constants(float_model)
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


def quantized_tensors(model: Any) -> set[str]:
    """Names of the tensors of subgraph 0 of a parsed ``.tflite`` that are int8/int16 with a scale."""
    schema = litert_schema()
    kinds = {schema.TensorType.INT8, schema.TensorType.INT16}
    return {
        t.name.decode()
        for t in model.subgraphs[0].tensors
        if t.type in kinds and t.quantization is not None and t.quantization.scale is not None
    }


def is_quantized(model: Any) -> bool:
    """Whether a parsed ``.tflite`` has quantized tensors (an int8 model, not an fp32 one)."""
    return bool(quantized_tensors(model))


def op_names(model: Any) -> dict[str, str]:
    """Every op of subgraph 0 of a parsed ``.tflite`` by its output tensors (``;``-joined, as ai-edge-quantizer
    names an op) → its op type."""
    from edgecnn.lowering.tflite.builder import OPERATOR_NAMES

    codes = [code.builtinCode for code in model.operatorCodes]
    tensors = model.subgraphs[0].tensors
    return {
        ";".join(tensors[i].name.decode() for i in op.outputs): OPERATOR_NAMES[codes[op.opcodeIndex]]
        for op in model.subgraphs[0].operators
    }


def signature_feeds(
    model: Any, images: np.ndarray | dict[str, np.ndarray], input_layout: str
) -> list[dict[str, np.ndarray]]:
    """NCHW float32 samples (an array, or one per input name) as feeds of a parsed ``.tflite``'s signature: batches
    of each input's static batch, in the model's ``input_layout``."""
    inputs, outputs = _signature_io(model)
    if not isinstance(images, dict):
        if len(inputs) != 1:
            raise UsageError(f"the model has inputs {', '.join(inputs)}: give samples per input name")
        images = {next(iter(inputs)): images}
    if set(images) != set(inputs) or not outputs:
        raise UsageError(f"samples for {', '.join(images)}; the model has {inputs} → {outputs}")
    tensors = model.subgraphs[0].tensors
    per_input = {
        name: _calibration_samples(images[name], input_layout, tuple(int(d) for d in tensors[index].shape))
        for name, index in inputs.items()
    }
    return [dict(zip(per_input, values, strict=True)) for values in zip(*per_input.values(), strict=True)]


def _recipe(rules: list[dict[str, Any]], per_channel: bool) -> list[dict[str, Any]]:
    """The recipe's rules, with one weight scale per tensor instead of per output channel when not ``per_channel``
    (targets whose int8 kernels take per-tensor weights only, e.g. NNAPI before API level 29)."""
    if not per_channel:
        for rule in rules:
            weights = (rule.get("op_config") or {}).get("weight_tensor_config")
            if weights:
                weights["granularity"] = "TENSORWISE"
    return rules


def _calibrate(fp32: bytes, recipe: list[dict[str, Any]], samples: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Each tensor's min and max over all ``samples`` for ``recipe`` (``Quantizer.calibrate`` with
    ai-edge-quantizer's min-max merge in place of its default moving average)."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    recipes = recipe_manager.RecipeManager()
    recipes.load_quantization_recipe(recipe)
    calibration = calibrator.Calibrator(fp32, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calibration.calibrate({SIGNATURE: samples}, recipes)
    return calibration.get_model_qsvs()


@functools.cache
def _tied_op_types() -> tuple[frozenset[Any], frozenset[Any]]:
    """The op types ai-edge-quantizer gives their input's quantization (pooling, padding, reshaping: the output is
    tied to the input) and those whose inputs it gives their output's (concatenation, PADV2, maximum)."""
    from ai_edge_quantizer.algorithms.utils.common_utils import OpQuantConstraint
    from ai_edge_quantizer.utils.constrained_ops_utils import get_constrained_op_list

    with _quiet():
        return (
            frozenset(get_constrained_op_list(OpQuantConstraint.SAME_AS_INPUT_SCALE)),
            frozenset(get_constrained_op_list(OpQuantConstraint.SAME_AS_OUTPUT_SCALE)),
        )


def tied_ranges(model: Any, statistics: dict[str, Any]) -> dict[str, Any]:
    """``statistics`` with the output range of every op whose tensors ai-edge-quantizer ties made from its activation
    inputs' ranges, in graph order: an op tied to its input passes that input's range on, one whose inputs take its
    output's gets the span of theirs. Ranges replaced tensor by tensor (percentile, entropy, auto, mean of extremes)
    can otherwise disagree across a tie — a PADV2 before a max pool holds its pad value, the lowest float, which the
    output's own range took and its input then inherited — and XNNPACK refuses such a model."""
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import TFL_OP_CODE_TO_NAME

    same_as_input, same_as_output = _tied_op_types()
    tied = dict(statistics)
    subgraph = model.subgraphs[0]
    for op in subgraph.operators:
        kind = TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
        if kind not in same_as_input and kind not in same_as_output:
            continue
        names = [subgraph.tensors[i].name.decode() for i in op.inputs if i >= 0]
        inputs = [tied[n] for n in (names[:1] if kind in same_as_input else names) if n in tied]
        if not inputs:
            continue
        low = min(float(np.min(qsv["min"])) for qsv in inputs)
        high = max(float(np.max(qsv["max"])) for qsv in inputs)
        for name in (subgraph.tensors[i].name.decode() for i in op.outputs if i >= 0):
            if name in tied:
                tied[name] = _with_range(tied[name], low, high)
    return tied


def _with_range(qsv: dict[str, Any], low: float, high: float) -> dict[str, Any]:
    """A tensor's calibration statistics with its range set to (``low``, ``high``), in the shapes it had."""
    return {**qsv, "min": np.full_like(qsv["min"], low), "max": np.full_like(qsv["max"], high)}


def _quiet() -> contextlib.ExitStack:
    """The calibrator's tqdm bar and the interpreter's debug-mode warning are noise for a CLI."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    stack.enter_context(contextlib.redirect_stderr(_io.StringIO()))
    warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
    return stack


def _failed(error: Exception) -> CheckFailedError:
    message = first_line(error, None)
    return CheckFailedError(f"int8 quantization with ai-edge-quantizer failed: {message}")


class TfliteQuantizer:
    """Calibrates a lowered fp32 ``.tflite`` once, then quantizes it to full int8 as often as asked.

    ``calibration`` is float32 N×C×H×W, normalised as the model expects (one array per input name for a model
    with several); ``input_layout`` is the layout of the ``.tflite``'s input (``LoweredModel.input_layout``).
    ``per_channel=False`` gives each weight tensor one scale (per-tensor targets). ``keep_float_ops`` names TFLite
    builtin ops ("MEAN", "LOGISTIC", …) that stay in float, with
    DEQUANTIZE/QUANTIZE around them. ``io="int8"`` makes the model's input and output int8; ``io="float"`` keeps
    them float32 with QUANTIZE/DEQUANTIZE inside. ``keep_float_scopes`` are regexes on output tensor names whose
    ops stay float (a deformable layer's sampling path, :func:`node_scope`). Ops ai-edge-quantizer has no int8
    rule for stay in float the same way, and so do ops whose int32 bias would overflow (:func:`overflowing_biases`).
    ``bias_correct`` corrects the biases for the mean shift of the int8 weights, measured on the calibration samples
    (:mod:`edgecnn.lowering.tflite.bias_correction`), and quantizes again on the same ranges. ``method`` calibrates
    the activations other than by min-max when a ``calibrator`` is given: called with the fp32 bytes, the calibration
    feeds and the min-max ranges, it returns a function of a method giving each tensor's (low, high), with a
    ``record(method)`` of how it chose (``edgecnn.pipeline.tflite_calibration.TfliteCalibration``).

    The drift repair re-quantizes with more ops kept float (:meth:`quantize`, the interface of the ORT
    ``Quantizer``): an op is named by its output tensors, ``;``-joined, as in :attr:`ops`. With a ``calibrator`` it
    tries the other calibration methods (``remedy_methods``; none without one), and bias correction is its technique
    (``remedy_techniques``). With ``float_outputs`` (int8
    I/O is the default, not what the user pinned), a graph output whose producer is kept float stays float too:
    quantizing it at the output would bring back the noise (an embedding's int8 output alone can cost more
    rank-1 agreement than every layer inside).
    """

    suffix = ".tflite"
    remedy_techniques: tuple[str, ...] = ("bias_correct", "round_weights")  # switches of quantize() the repair tries

    def __init__(
        self,
        fp32: bytes,
        calibration: np.ndarray | dict[str, np.ndarray],
        input_layout: str = "NHWC",
        keep_float_ops: tuple[str, ...] = (),
        io: str = "int8",
        keep_float_scopes: tuple[str, ...] = (),
        float_outputs: bool = False,
        per_channel: bool = True,
        bias_correct: bool = False,
        method: str = MINMAX,
        round_weights: bool = False,
        calibrator: Callable[[bytes, list[dict[str, np.ndarray]], dict[str, tuple]], Any] | None = None,
    ):
        methods = CALIBRATION_METHODS if calibrator is not None else (MINMAX,)
        if method not in methods:
            raise UsageError(f"the int8 .tflite calibrates by {' or '.join(methods)}, not '{method}'")
        self.method = method
        self.remedy_methods = tuple(m for m in methods if m != method)  # what the drift repair tries besides
        if io not in IO_MODES:
            raise UsageError(f"io must be one of {', '.join(IO_MODES)}, not '{io}'")
        self.schema = litert_schema()
        self.check_op_types(keep_float_ops)
        try:
            from ai_edge_quantizer import quantizer, recipe
        except ImportError:
            raise UsageError("int8 .tflite needs ai-edge-quantizer: pip install 'edgecnn[tflite]'") from None
        self.fp32, self.io, self.input_layout, self.per_channel = bytes(fp32), io, input_layout, per_channel
        self.bias_correct, self.round_weights = bias_correct, round_weights
        self._rounded: dict[str, np.ndarray] | None = None  # every int8 linear op's rounded weights, made once
        self._moved: dict[str, int] = {}
        self.float_outputs = float_outputs and io == "int8"
        self.float_model = parse(fp32)
        self.inputs, self.outputs = _signature_io(self.float_model)
        self.ops = op_names(self.float_model)
        samples = self.calibration_samples = self.samples(calibration)
        # bias correction measures on the first samples: whole feeds of the signature's static batch
        batch = len(next(iter(samples[0].values()))) if samples and samples[0] else 1
        self.correction_feeds = -(-samples_within(calibration, CORRECTION_PIXELS) // batch)
        self.kept_float: dict[str, str] = {}  # ops found unable to be int8 (bias overflow) → why; float in every try
        self._kept_types: dict[str, str] = {}
        self._keep_float_ops = tuple(keep_float_ops)  # op types kept float in every model
        started = time.perf_counter()
        try:
            with _quiet():
                self.tool = quantizer.Quantizer(bytearray(fp32))
                self.tool.load_quantization_recipe(_recipe(getattr(recipe, RECIPE)(), per_channel))
                # Later rules win: these override the '*' rule of the recipe for the ops named.
                for op in (*keep_float_ops, *(("INPUT", "OUTPUT") if io == "float" else ())):
                    self._keep(".*", op)
                for scope in keep_float_scopes:
                    self._keep(scope, "*")
                self.recipe = self._base_recipe = copy.deepcopy(self.tool.get_quantization_recipe())
                self.statistics = _calibrate(self.fp32, self.recipe, samples)
        except Exception as error:  # the tool raises ValueError/RuntimeError/KeyError… from deep inside
            raise _failed(error) from error
        self.calibrated, self._float_op_types = None, ()
        if calibrator is not None:
            count = len(next(iter(calibration.values())) if isinstance(calibration, dict) else calibration)
            self.calibrated = calibrator(self.fp32, samples, self.minmax_ranges(), count=count)
            self._statistics(method)  # calibrated now: the timing belongs to calibration
        self.calibration_seconds = time.perf_counter() - started
        self.made: dict[Path, QuantizedTflite] = {}

    @property
    def float_op_types(self) -> tuple[str, ...]:
        """TFLite ops kept float by type besides ``keep_float_ops``, in every later model (the export's timed
        choice of ops slower in int8, :mod:`edgecnn.pipeline.float_choice`)."""
        return self._float_op_types

    @float_op_types.setter
    def float_op_types(self, op_types: Sequence[str]) -> None:
        self.check_op_types(op_types)
        try:
            with _quiet():
                self.tool.load_quantization_recipe(copy.deepcopy(self._base_recipe))
                for op in op_types:
                    self._keep(".*", op)
                self.recipe = copy.deepcopy(self.tool.get_quantization_recipe())
        except Exception as error:  # the tool raises from deep inside
            raise _failed(error) from error
        self._float_op_types = tuple(op_types)

    def check_op_types(self, op_types: Sequence[str]) -> None:
        """Raise an UnknownNameError (with a did-you-mean) for a name of ``op_types`` that is no TFLite builtin op."""
        known = [k for k in vars(self.schema.BuiltinOperator) if not k.startswith("_")]
        for op in op_types:
            if op not in known:
                raise UnknownNameError("TFLite op", op, known)

    def minmax_ranges(self) -> dict[str, tuple[np.float32, np.float32]]:
        """Each per-tensor calibrated tensor → its (min, max) over the calibration samples."""
        return {
            name: (np.float32(qsv["min"].reshape(-1)[0]), np.float32(qsv["max"].reshape(-1)[0]))
            for name, qsv in self.statistics.items()
            if np.size(qsv.get("min")) == 1 and np.size(qsv.get("max")) == 1
        }

    def _statistics(self, method: str) -> dict[str, Any]:
        """The calibration statistics for ``method``: min-max's, with each tensor's range by ``method`` in place and
        the ranges ai-edge-quantizer ties made alike (:func:`tied_ranges`)."""
        if method == MINMAX:
            return self.statistics
        try:
            ranges = self.calibrated(method)
        except Exception as error:  # ORT's histogram collector or LiteRT raise from deep inside
            reason = first_line(error, None)
            raise CheckFailedError(f"int8 .tflite calibration by {method} failed: {reason}") from error
        statistics = dict(self.statistics)
        for name, (low, high) in ranges.items():
            if name in statistics:
                statistics[name] = _with_range(statistics[name], low, high)
        return tied_ranges(self.float_model, statistics)

    def calibration(self, method: str) -> dict[str, Any] | None:
        """How ``method`` calibrated per tensor (auto's choice, once made), or None."""
        return self.calibrated.record(method) if self.calibrated is not None else None

    def samples(self, images: np.ndarray | dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """NCHW float32 samples as the signature's feeds (:func:`signature_feeds`)."""
        return signature_feeds(self.float_model, images, self.input_layout)

    def _keep(self, scope: str, op_type: str, tool: Any = None) -> None:
        from ai_edge_quantizer import algorithm_manager

        no_quantize = algorithm_manager.AlgorithmName.NO_QUANTIZE
        (tool or self.tool).update_quantization_recipe(regex=scope, operation_name=op_type, algorithm_key=no_quantize)

    def _keep_ops(self, ops: dict[str, str], tool: Any = None) -> None:
        """Keep ``ops`` (by output tensors → op type) float in ``tool``'s recipe (the quantizer's by default), by op
        type too: the virtual OUTPUT op after a graph output's producer is named like it and must stay quantized."""
        by_type: dict[str, list[str]] = {}
        for op, op_type in ops.items():
            by_type.setdefault(op_type, []).extend(op.split(";"))
        for op_type, outputs in by_type.items():
            self._keep(_output_scope(outputs) or "^$", op_type, tool)

    def quantize_bytes(
        self,
        keep_float: Sequence[str] = (),
        bias_correct: bool | None = None,
        method: str | None = None,
        round_weights: bool | None = None,
    ) -> QuantizedTflite:
        """The int8 model with the ops ``keep_float`` (by output tensors, as in :attr:`ops`) kept float (and the
        graph outputs they make, with :attr:`float_outputs`); its activations calibrated by ``method``, its weights
        rounded with error compensation with ``round_weights`` and its biases corrected with ``bias_correct`` (all
        by default the quantizer's)."""
        bias_correct = self.bias_correct if bias_correct is None else bias_correct
        round_weights = self.round_weights if round_weights is None else round_weights
        method = method or self.method
        if method not in (self.method, *self.remedy_methods):
            known = " or ".join((self.method, *self.remedy_methods))
            raise UsageError(f"the int8 .tflite calibrates by {known}, not '{method}'")
        unknown = [op for op in keep_float if op not in self.ops]
        if unknown:
            raise UsageError(f"ops to keep in float not in the .tflite: {', '.join(unknown)}")
        started = time.perf_counter()
        correction = rounding = None
        statistics = self._statistics(method)
        try:
            with _quiet():
                self.tool.load_quantization_recipe(copy.deepcopy(self.recipe))
                self._keep_ops({**self._kept_types, **{op: self.ops[op] for op in keep_float}})
                floated = self.floated_outputs(keep_float)
                if floated:
                    self._keep(_output_scope(floated) or "^$", "OUTPUT")
                kept = self.kept_float
                data, model = self._quantize_keeping_bad_biases_float(self.tool, self.float_model, statistics, kept)
                source = self.fp32
                if round_weights:  # weights that round to a bias overflow keep their op float in this model only
                    kept = dict(self.kept_float)
                    try:
                        source, rounding = self._weights_rounded(data)
                        data, model = self._requantized(source, statistics, kept)
                    except Exception as error:  # a model it cannot measure keeps the nearest rounding, and says why
                        source, kept = self.fp32, self.kept_float
                        rounding = {"layers": 0, "skipped": f"weight rounding failed: {first_line(error)}"}
                if bias_correct:  # a corrected bias that overflows keeps its op float in this model only
                    uncorrected, kept = kept, dict(kept)
                    try:
                        data, model, correction = self._bias_corrected(data, statistics, kept, source)
                    except Exception as error:  # the means come from LiteRT's reference kernels, which may refuse
                        kept = uncorrected  # the int8 model XNNPACK runs: it stays uncorrected, and says why
                        correction = {"layers": 0, "skipped": f"bias correction failed: {first_line(error)}"}
                # ai-edge-quantizer can leave an output float and its signature naming a tensor inside the graph
                int8 = int8_positions(self.float_model, floated, self.io)
                data, model = repaired_outputs(data, model, self.float_model, int8)
        except Exception as error:
            raise _failed(error) from error
        seconds = time.perf_counter() - started
        return self._described(data, model, seconds, floated, correction, kept, method, rounding)

    def _correction_samples(self) -> tuple[list[dict[str, np.ndarray]], int]:
        """The calibration feeds the bias correction and the weight rounding measure on, and their sample count."""
        samples = self.calibration_samples[: self.correction_feeds]
        return samples, sum(len(next(iter(feed.values()))) for feed in samples)

    def _weights_rounded(self, int8: bytes) -> tuple[bytes, dict[str, Any]]:
        """The fp32 model with the weights of ``int8``'s int8 linear ops rounded with error compensation on their
        grid (:mod:`edgecnn.lowering.tflite.weight_rounding`; measured once), and what the rounding did."""
        from edgecnn.lowering.tflite.bias_correction import linear_ops, with_constants
        from edgecnn.lowering.tflite.weight_rounding import rounded_weights
        from edgecnn.lowering.weight_rounding import rounding_record

        samples, count = self._correction_samples()
        if self._rounded is None:
            self._rounded, self._moved = rounded_weights(self.fp32, int8, samples)
        names = {layer.weight_name for layer in linear_ops(int8)} & set(self._rounded)
        data, written = with_constants(self.fp32, {name: self._rounded[name] for name in names})
        sizes, moved = (self._rounded[name].size for name in written), (self._moved[name] for name in written)
        return data, rounding_record(sizes, moved, count)

    def _requantized(self, fp32: bytes, statistics: dict[str, Any], kept: dict[str, str]) -> tuple[bytes, Any]:
        """``fp32`` (this model with other constants) quantized on the same ranges and recipe."""
        from ai_edge_quantizer import quantizer

        tool = quantizer.Quantizer(bytearray(fp32))
        tool.load_quantization_recipe(copy.deepcopy(self.tool.get_quantization_recipe()))
        return self._quantize_keeping_bad_biases_float(tool, parse(fp32), statistics, kept)

    def _bias_corrected(
        self, int8: bytes, statistics: dict[str, Any], kept: dict[str, str], source: bytes
    ) -> tuple[bytes, Any, dict[str, Any]]:
        """The model quantized again, on the same ranges and recipe, from ``source`` (the fp32 model, its weights
        rounded or not) with its biases corrected for the mean shift ``int8``'s weights add against the fp32 ones
        (:func:`weight_shifts`); and what was corrected."""
        from edgecnn.lowering.tflite.bias_correction import weight_shifts, with_biases

        samples, count = self._correction_samples()
        corrected, record = with_biases(source, weight_shifts(self.fp32, int8, samples), count)
        data, model = self._requantized(corrected, statistics, kept)
        return data, model, record

    def floated_outputs(self, keep_float: Sequence[str]) -> list[str]:
        """The graph outputs left float when a float op makes one of them and :attr:`float_outputs` lets them be:
        all of them, as ai-edge-quantizer quantizes every graph output in one virtual OUTPUT op. A float op is one
        of ``keep_float``, one kept float in every model (:attr:`kept_float`), or one of a type kept float
        (``keep_float_ops``, :attr:`float_op_types`)."""
        if not self.float_outputs:
            return []
        float_types = {*self._keep_float_ops, *self._float_op_types}
        floated = {*keep_float, *self.kept_float, *(op for op, op_type in self.ops.items() if op_type in float_types)}
        tensors = self.float_model.subgraphs[0].tensors
        names = {tensors[index].name.decode() for index in self.outputs.values()}
        return sorted(names) if names & {t for op in floated for t in op.split(";")} else []

    def _quantize_keeping_bad_biases_float(
        self, tool: Any, float_model: Any, statistics: dict[str, Any], kept: dict[str, str]
    ) -> tuple[bytes, Any]:
        """Quantize ``tool``'s float model (``float_model``, parsed) on the calibration ``statistics``; the ops whose
        int32 bias would overflow (:func:`overflowing_biases`) join ``kept`` (op → why; :attr:`kept_float` keeps
        them float in every later model) and it is quantized again."""
        while True:
            with large_weights_split():
                data = bytes(tool.quantize(statistics, enable_progress_report=False).quantized_model)
            model = self.schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
            overflowing = overflowing_biases(float_model, model)
            found = {op: why for op, why in overflowing.items() if op not in kept}
            if not found:
                return data, model
            for op, (op_type, why) in found.items():
                kept[op] = f"{op_type}: {why}"
                if kept is self.kept_float:
                    self._kept_types[op] = op_type
            self._keep_ops({op: op_type for op, (op_type, _) in found.items()}, tool)

    def quantize(
        self,
        dst: Path,
        method: str | None = None,
        reduce_range: bool = False,
        keep_float_nodes: tuple[str, ...] = (),
        bias_correct: bool | None = None,
        round_weights: bool | None = None,
    ) -> dict[str, Any]:
        """Write the int8 ``.tflite`` to ``dst`` with the ops ``keep_float_nodes`` float, the activations calibrated
        by ``method``, the weights rounded with ``round_weights`` and the biases corrected with ``bias_correct``
        (the drift repair's call, like the ORT ``Quantizer``'s); no reduced range."""
        if reduce_range:
            raise UsageError(f"ai-edge-quantizer's {RECIPE} quantizes with the full int8 range")
        quantized = self.quantize_bytes(keep_float_nodes, bias_correct, method, round_weights)
        Path(dst).write_bytes(quantized.data)
        self.made[Path(dst)] = quantized
        return {
            "method": quantized.method,
            "kept_float": list(keep_float_nodes),
            "bias_correction": quantized.bias_correction,
            "weight_rounding": quantized.weight_rounding,
        }

    def _described(
        self,
        data: bytes,
        model: Any,
        seconds: float,
        floated: Sequence[str] = (),
        correction: dict | None = None,
        kept: dict[str, str] | None = None,
        method: str = MINMAX,
        rounding: dict | None = None,
    ) -> QuantizedTflite:
        """The quantized bytes with their I/O quantization and op counts, checked against ``io`` (the output
        tensors ``floated`` are float32)."""
        schema = self.schema
        q_inputs, q_outputs = _signature_io(model)
        tensors = model.subgraphs[0].tensors
        graph_outputs = set(model.subgraphs[0].outputs)
        inside = [name for name, index in q_outputs.items() if index not in graph_outputs]
        if inside:  # LiteRT keeps no such tensor: every run would fail
            raise CheckFailedError(f"the quantized model's signature outputs {', '.join(inside)} are not graph outputs")

        def described(index: int) -> dict[str, Any]:
            return dict(zip(("dtype", "scale", "zero_point"), _quantization(tensors[index], schema), strict=True))

        quantized_inputs = {name: described(q_inputs[name]) for name in self.inputs}
        quantized_outputs = {name: described(q_outputs[name]) for name in self.outputs}
        first_in, first_out = next(iter(quantized_inputs.values())), next(iter(quantized_outputs.values()))
        wanted = "int8" if self.io == "int8" else "float32"
        in_dtypes = {i["dtype"] for i in quantized_inputs.values()}
        floated = set(floated)  # float model tensor names: a dequantized output is a new tensor in ``model``
        names = {n: self.float_model.subgraphs[0].tensors[index].name.decode() for n, index in self.outputs.items()}
        expected = {n: "float32" if names[n] in floated else wanted for n in self.outputs}
        out_dtypes = {name: o["dtype"] for name, o in quantized_outputs.items()}
        if in_dtypes != {wanted} or out_dtypes != expected:
            raise CheckFailedError(
                f"io='{self.io}' asks for {wanted} input and outputs {expected}; the quantized model has "
                f"{first_in['dtype']} → {out_dtypes}"
            )
        from edgecnn.lowering.tflite.builder import OPERATOR_NAMES

        codes = [code.builtinCode for code in model.operatorCodes]
        op_counts = dict(Counter(OPERATOR_NAMES[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators))
        return QuantizedTflite(
            data,
            first_in["scale"],
            first_in["zero_point"],
            first_out["scale"],
            first_out["zero_point"],
            first_in["dtype"],
            first_out["dtype"],
            op_counts,
            self.calibration_seconds + seconds,
            quantized_outputs,
            quantized_inputs,
            dict(self.kept_float if kept is None else kept),
            correction,
            method,
            rounding,
        )


def quantize_tflite(
    fp32: bytes,
    calibration: np.ndarray | dict[str, np.ndarray],
    input_layout: str = "NHWC",
    keep_float_ops: tuple[str, ...] = (),
    io: str = "int8",
    keep_float_scopes: tuple[str, ...] = (),
    per_channel: bool = True,
) -> QuantizedTflite:
    """Quantize a lowered fp32 ``.tflite`` to full int8 (:class:`TfliteQuantizer`'s arguments), once."""
    return TfliteQuantizer(
        fp32, calibration, input_layout, keep_float_ops, io, keep_float_scopes, per_channel=per_channel
    ).quantize_bytes()
