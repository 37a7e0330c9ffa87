"""Runners for ONNX / ORT-format models (ONNX Runtime) and PyTorch modules, behind one interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import UsageError

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class Runner:
    """Runs a model on float32 batches, one sample at a time when the model has a static batch of 1."""

    name: str
    kind: str
    input_shape: tuple[int | None, ...]
    _run: Callable[[np.ndarray], np.ndarray]

    @property
    def static_batch(self) -> int | None:
        """The model's fixed batch size, or None when it is dynamic."""
        first = self.input_shape[0] if self.input_shape else None
        return first if isinstance(first, int) and first > 0 else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.static_batch is None or self.static_batch == len(x):
            return self._run(x)
        if self.static_batch != 1:
            raise UsageError(f"{self.name} takes batches of exactly {self.static_batch}, got {len(x)}")
        return np.concatenate([self._run(x[i : i + 1]) for i in range(len(x))])


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
    options.log_severity_level = 3
    for key, value in session_config.items():
        options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for corrupt or unsupported models
        raise UsageError(f"ONNX Runtime cannot load {path}: {str(error).splitlines()[0]}") from None


def load_ort(path: str | Path, threads: int = 1, optimization: str = "all") -> Runner:
    """A runner for a `.onnx` or `.ort` file (its first input and first output)."""
    session = ort_session(path, threads, optimization)
    first = session.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else None for d in first.shape)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {first.name: x})[0]

    return Runner(str(path), "onnxruntime", shape, run)


def load_torch(module: Any, input_size: tuple[int, ...]) -> Runner:
    """A runner for a PyTorch module in eval mode (no gradients)."""
    import torch

    module = module.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        return out.detach().float().numpy()

    return Runner(type(module).__name__, "torch", (None, *input_size), run)


def load(artifact: Any, threads: int = 1, optimization: str = "all", input_size: tuple[int, ...] = ()) -> Runner:
    """A runner for any artifact: a `.onnx`/`.ort` path or a ``torch.nn.Module``."""
    if isinstance(artifact, (str, Path)):
        path = Path(artifact)
        if not path.is_file():
            raise UsageError(f"artifact {path} does not exist")
        if path.suffix in (".onnx", ".ort"):
            return load_ort(path, threads, optimization)
        raise UsageError(f"cannot run {path}: unknown artifact type '{path.suffix}' (known: .onnx, .ort)")
    return load_torch(artifact, input_size)
