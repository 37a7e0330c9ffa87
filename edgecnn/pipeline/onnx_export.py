"""Trace a PyTorch module to one self-contained ONNX file with the dynamo exporter, and check it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from edgecnn.errors import CheckFailedError
from edgecnn.files import interrupt_behind
from edgecnn.pipeline.source import INPUT_NAME, InputShapes
from edgecnn.runtime.outputs import output_names


def check_onnx(path: Path) -> None:
    """Full ONNX checker plus an ONNX Runtime load; raises ValueError with the first line of the problem."""
    import onnx

    from edgecnn.runtime.loader import ort_session

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # onnx.checker.ValidationError, shape-inference errors
        raise ValueError(f"ONNX checker: {str(error).strip().splitlines()[0]}") from None
    try:
        ort_session(path)
    except Exception as error:
        raise ValueError(str(error)) from None


@contextlib.contextmanager
def _quiet() -> Any:
    """The dynamo exporter prints progress and warnings; keep them out of the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(
    module: Any,
    examples: dict[str, Any],
    path: Path,
    opset: int,
    dynamic_batch: bool,
    optimize: bool,
    outputs: list[str],
) -> None:
    import torch

    # Keyed by position: the input's name in forward() differs from model to model. One batch for all inputs.
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic_shapes = tuple({0: batch} for _ in examples) if dynamic_batch else None
    with _quiet():
        torch.onnx.export(
            module,
            tuple(examples.values()),
            str(path),
            dynamo=True,
            opset_version=opset,
            external_data=False,
            optimize=optimize,
            input_names=list(examples),
            output_names=outputs,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )


@contextlib.contextmanager
def _one_thread() -> Any:
    """torch on one thread inside: a run whose values nobody reads costs no waiting threads on a busy host."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def traced_outputs(module: Any, examples: dict[str, Any]) -> list[str]:
    """The ONNX output names of ``module`` (see :func:`edgecnn.runtime.outputs.output_names`), from one run (on one
    thread: only the outputs' structure is read)."""
    import torch

    from edgecnn.pipeline.source import user_code_error

    try:
        with torch.inference_mode(), _one_thread():
            result = module(*examples.values())
    except (Exception, SystemExit) as error:  # the user's forward: its own traceback, not edgecnn's
        shapes = ", ".join("×".join(map(str, e.shape)) for e in examples.values())
        raise user_code_error(f"running the model on input(s) {shapes}", error) from error
    return output_names(result)


def graph_outputs(path: Path, what: str = "output") -> list[dict[str, Any]]:
    """Name and shape (None for a free dimension) of every output (or ``what="input"``) of the ONNX graph at
    ``path``; inputs that are initializers are left out."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    values = model.graph.output if what == "output" else [i for i in model.graph.input if i.name not in initializers]
    return [
        {
            "name": value.name,
            "shape": [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim],
        }
        for value in values
    ]


def export_onnx(
    module: Any, input_shape: InputShapes, path: Path, opset: int = 20, dynamic_batch: bool = False
) -> dict[str, Any]:
    """Export ``module`` (eval mode) for a float32 input of ``input_shape`` (or one per input name, passed to
    forward in that order); weights inside the one file.

    The dynamo optimizer can emit an invalid graph; the result is checked with
    the full ONNX checker and an ONNX Runtime load, and re-exported with
    ``optimize=False`` when that fails.
    """
    import torch

    module = module.eval()
    shapes = input_shape if isinstance(input_shape, dict) else {INPUT_NAME: input_shape}
    examples = {name: torch.randn(*shape) for name, shape in shapes.items()}
    outputs = traced_outputs(module, examples)
    attempts: list[str] = []
    for optimize in (True, False):
        try:
            _export(module, examples, path, opset, dynamic_batch, optimize, outputs)
        except Exception as error:  # torch.export / onnxscript raise many types; the message is what matters
            interrupt = interrupt_behind(error)
            if interrupt is not None:  # Ctrl-C or SIGTERM while tracing: a stop, not a failed export
                raise interrupt from None
            attempts.append(f"export(optimize={optimize}) failed: {str(error).strip().splitlines()[0][:300]}")
            continue
        data_file = path.with_name(path.name + ".data")
        if data_file.exists():  # never leave weights outside the one file
            import onnx

            model = onnx.load(str(path))
            data_file.unlink()
            onnx.save_model(model, str(path), save_as_external_data=False)
        try:
            check_onnx(path)
        except ValueError as error:
            attempts.append(f"optimize={optimize}: invalid graph: {error}")
            continue
        return {
            "exporter": "torch.onnx dynamo",
            "opset": opset,
            "optimized": optimize,
            "dynamic_batch": dynamic_batch,
            "retries": attempts,
        }
    raise CheckFailedError("ONNX export failed: " + " | ".join(attempts))
