"""Runners for ONNX / ORT-format models (ONNX Runtime) and PyTorch modules, behind one interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import UsageError, check_file, reading
from edgecnn.formats import require_format
from edgecnn.runtime.outputs import (
    PER_IMAGE,
    Inputs,
    Outputs,
    as_float,
    batch_size,
    flatten_outputs,
    padded,
    single,
    take,
)

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class Runner:
    """Runs a model on float32 batches, one sample at a time when the model has a static batch of 1.

    :meth:`run_all` gives every output by name; calling the runner gives the output of a single-output model.
    """

    name: str
    kind: str
    input_shape: tuple[int | None, ...]
    _run: Callable[[Inputs], Outputs]
    inputs: dict[str, tuple[int | None, ...]] = field(default_factory=dict)  # every input's shape (NCHW), by name

    @property
    def static_batch(self) -> int | None:
        """The model's fixed batch size, or None when it is dynamic."""
        first = self.input_shape[0] if self.input_shape else None
        return first if isinstance(first, int) and first > 0 else None

    def run_all(self, x: Inputs) -> Outputs:
        """Every output of the model on the batch ``x`` (an array, or one per input name), by name, in the model's
        output order."""
        x, count = as_float(x), batch_size(x)
        size = self.static_batch
        if size is None or size == count:
            return self._batched(self._run(x), count)
        parts = [
            self._batched(self._run(padded(take(x, slice(i, i + size)), size)), size) for i in range(0, count, size)
        ]
        return {name: np.concatenate([part[name] for part in parts])[:count] for name in parts[0]}

    def _batched(self, outputs: Outputs, count: int) -> Outputs:
        """``outputs``, each of which must have a batch axis of ``count`` rows, one per input image (a scalar, or an
        output of a batch the model fixed, cannot be split or joined per image)."""
        scalar = next((name for name, value in outputs.items() if np.ndim(value) == 0), None)
        if scalar is not None:
            raise UsageError(f"{self.name}'s output '{scalar}' is a scalar: {PER_IMAGE}")
        for name, value in outputs.items():
            if np.shape(value)[0] != count:
                raise UsageError(
                    f"{self.name}'s output '{name}' has {np.shape(value)[0]} row(s) for a batch of {count} images: the "
                    "model ignores the batch dimension N (x[:1], a reshape to a fixed size …); keep N as the first "
                    "axis of every output"
                )
        return outputs

    def __call__(self, x: Inputs) -> np.ndarray:
        return single(self.run_all(x), self.name)


def ort_session(path: str | Path, threads: int = 1, optimization: str = "all", **session_config: str) -> Any:
    """An ONNX Runtime CPU session with a thread count and a graph optimization level."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    options.log_severity_level = 4  # fatal only: an error is raised, and said once, by edgecnn
    for key, value in session_config.items():
        options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for corrupt or unsupported models
        raise UsageError(f"ONNX Runtime cannot load {path}: {str(error).splitlines()[0]}") from None


def load_ort(path: str | Path, threads: int = 1, optimization: str = "all") -> Runner:
    """A runner for a `.onnx` or `.ort` file: every output; one array for a single-input model, one per input name
    for a model with several."""
    session = ort_session(path, threads, optimization)
    inputs = [i.name for i in session.get_inputs()]
    shape = tuple(d if isinstance(d, int) else None for d in session.get_inputs()[0].shape)
    names = [output.name for output in session.get_outputs()]

    def run(x: Inputs) -> Outputs:
        if isinstance(x, dict):
            if set(x) != set(inputs):
                raise UsageError(f"{path} takes inputs {', '.join(inputs)}; got {', '.join(x)}")
            feed = x
        elif len(inputs) == 1:
            feed = {inputs[0]: x}
        else:
            raise UsageError(f"{path} takes {len(inputs)} inputs ({', '.join(inputs)}): give one array per input name")
        return dict(zip(names, session.run(names, feed), strict=True))

    shapes = {i.name: tuple(d if isinstance(d, int) else None for d in i.shape) for i in session.get_inputs()}
    return Runner(str(path), "onnxruntime", shape, run, shapes)


TRIAL_MAX_BYTES = 2**28  # 256 MiB of trial input: larger inputs are not tried (ORT's load alone judges the graph)
_TRIAL_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def trial_run(path: str | Path, what: str, fix: str, shown: str | Path | None = None) -> bool:
    """Load ``path`` in ONNX Runtime and run it once on zeros (a free batch dim as 1): a graph ORT loads but cannot
    run (zero-size dims, absurd attributes) is a UsageError "``what`` ``shown`` is not valid: …; ``fix``" (``shown``
    defaults to ``path``). False when it was not run: an input dim other than the batch is free, or the inputs
    are too large to try."""
    try:
        session = ort_session(path)
    except UsageError as error:  # name the user's file, not the working copy ORT was given
        raise UsageError(str(error).replace(str(path), str(shown or path))) from None
    feed = {}
    for value in session.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else (1 if k == 0 else None) for k, d in enumerate(value.shape)]
        dtype = _TRIAL_DTYPES.get(value.type)
        if None in dims or dtype is None or int(np.prod(dims)) * np.dtype(dtype).itemsize > TRIAL_MAX_BYTES:
            return False
        feed[value.name] = np.zeros(dims, dtype)
    with reading(shown or path, what, fix):
        session.run(None, feed)
    return True


def tflite_layout(shape: tuple[int, ...]) -> str:
    """The layout of a `.tflite` input of ``shape`` when no manifest says: NHWC for an image (few channels last,
    larger spatial dims), else NCHW."""
    return "NHWC" if len(shape) == 4 and shape[3] <= 4 < shape[1] else "NCHW"


def tflite_interpreter(path: str | Path, threads: int = 1, xnnpack: bool = True) -> Any:
    """A LiteRT interpreter of the `.tflite` at ``path`` with its tensors allocated (XNNPACK unless ``xnnpack`` is
    False); ai-edge-litert, else the older tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # a device may only have the older tflite-runtime
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise UsageError("running .tflite needs ai-edge-litert: pip install 'edgecnn[tflite]'") from None
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"the TFLite interpreter cannot load {path}: {str(error).splitlines()[0]}") from None
    return interpreter


def load_tflite(path: str | Path, threads: int = 1, xnnpack: bool = True, layout: str | None = None) -> Runner:
    """A runner for a `.tflite` file in the LiteRT interpreter, fed NCHW float32 like every other runner.

    A 4-D NHWC input gets the batch transposed (and 4-D outputs are transposed back to NCHW); an int8/uint8
    input is quantized with the tensor's scale and zero point and every int8 output dequantized.
    ``layout`` ('NHWC'/'NCHW', from the manifest) is inferred from the shape when not given.
    """
    interpreter = tflite_interpreter(path, threads, xnnpack)
    inputs, outputs = _tflite_io(interpreter, "inputs"), _tflite_io(interpreter, "outputs")
    detail_in = next(iter(inputs.values()))
    shape = tuple(int(d) for d in detail_in["shape"])
    layout = layout or tflite_layout(shape)
    nhwc = len(shape) == 4 and layout == "NHWC"
    nchw_shape = (shape[0], shape[3], shape[1], shape[2]) if nhwc else shape

    def run(x: Inputs) -> Outputs:
        if not isinstance(x, dict):
            if len(inputs) != 1:
                raise UsageError(f"{path} takes {len(inputs)} inputs ({', '.join(inputs)}): give one array per name")
            x = {next(iter(inputs)): x}
        if set(x) != set(inputs):
            raise UsageError(f"{path} takes inputs {', '.join(inputs)}; got {', '.join(x)}")
        for name, detail in inputs.items():
            feed = x[name].transpose(0, 2, 3, 1) if nhwc and x[name].ndim == 4 else x[name]
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                info = np.iinfo(detail["dtype"])
                feed = np.clip(np.round(feed / scale) + zero, info.min, info.max)
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(feed.astype(detail["dtype"])))
        interpreter.invoke()
        result = {}
        for name, detail in outputs.items():
            out = interpreter.get_tensor(detail["index"])
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                out = (out.astype(np.float32) - zero) * scale
            # The lowering keeps every 4-D value NHWC when the input is: back to the ONNX order.
            result[name] = np.ascontiguousarray(out.transpose(0, 3, 1, 2) if nhwc and out.ndim == 4 else out)
        return result

    def nchw(detail: dict[str, Any]) -> tuple[int, ...]:
        dims = tuple(int(d) for d in detail["shape"])
        return (dims[0], dims[3], dims[1], dims[2]) if nhwc and len(dims) == 4 else dims

    return Runner(str(path), "tflite", nchw_shape, run, {name: nchw(detail) for name, detail in inputs.items()})


def _tflite_io(interpreter: Any, which: str) -> dict[str, dict[str, Any]]:
    """The input or output (``which``) details of a ``.tflite`` by the names of its ``serving_default`` signature
    (the ONNX names); by tensor name, in graph order, when it has no signature."""
    signatures = interpreter.get_signature_list()
    if "serving_default" in signatures:
        runner = interpreter.get_signature_runner("serving_default")
        details = runner.get_input_details() if which == "inputs" else runner.get_output_details()
        return {name: details[name] for name in signatures["serving_default"][which]}
    details = interpreter.get_input_details() if which == "inputs" else interpreter.get_output_details()
    return {detail["name"]: detail for detail in details}


def load_torch(module: Any, input_size: tuple[int, ...]) -> Runner:
    """A runner for a PyTorch module in eval mode (no gradients)."""
    import torch

    module = module.eval()

    def run(x: Inputs) -> Outputs:
        with torch.inference_mode():
            # Several inputs go to forward positionally, in their order (forward's, see pipeline/source.py).
            out = module(*map(torch.from_numpy, x.values())) if isinstance(x, dict) else module(torch.from_numpy(x))
        return {name: tensor.detach().float().numpy() for name, tensor in flatten_outputs(out)}

    return Runner(type(module).__name__, "torch", (None, *input_size), run)


def load(
    artifact: Any,
    threads: int = 1,
    optimization: str = "all",
    input_size: tuple[int, ...] = (),
    layout: str | None = None,
) -> Runner:
    """A runner for any artifact: a `.onnx`/`.ort`/`.tflite` path or a ``torch.nn.Module``."""
    if isinstance(artifact, (str, Path)):
        path = Path(artifact)
        check_file(path, "artifact")
        if require_format(path).runtime == "tflite":
            return load_tflite(path, threads, layout=layout)
        return load_ort(path, threads, optimization)
    return load_torch(artifact, input_size)
