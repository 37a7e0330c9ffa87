"""Static int8 quantization with ONNX Runtime: QDQ, per-channel int8 weights, uint8 activations.

Calibration runs here rather than inside ``quantize_static``: that function
does not pass the histogram size to its calibrator, so its 'entropy' method
silently yields the MinMax scales (128 bins). We run ORT's calibrator with the
recipe's bin count, then hand the ranges to ``quantize_static`` through its
calibration cache.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import CheckFailedError, UsageError

METHODS = ("minmax", "percentile", "entropy")


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[name]
    except KeyError:
        raise UsageError(f"unknown calibration method '{name}' (known: {', '.join(METHODS)})") from None


def calibrator_options(method: str, bins: int = 2048, percentile: float = 99.999) -> dict[str, Any]:
    """The calibrator's options: real histograms for entropy (``bins`` bins) and percentile."""
    if method == "entropy":
        return {"num_bins": bins, "num_quantized_bins": 128}
    if method == "percentile":
        return {"num_bins": bins, "percentile": percentile, "symmetric": True}
    return {}


class _Captured(logging.Handler):
    """Collects the quantizer's log warnings (it logs to the root logger) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _capture_root_warnings() -> Iterator[_Captured]:
    root = logging.getLogger()
    handler, saved = _Captured(), root.handlers[:]
    root.handlers = [handler]
    try:
        yield handler
    finally:
        root.handlers = saved


class _Reader:
    """Feeds calibration samples one at a time (batch 1), reporting progress."""

    def __init__(self, input_name: str, images: np.ndarray, on_sample: Callable[[], None] | None = None):
        self.input_name, self.images, self.on_sample, self.index = input_name, images, on_sample, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.images):
            return None
        sample = self.images[self.index : self.index + 1]
        self.index += 1
        if self.on_sample:
            self.on_sample()
        return {self.input_name: np.ascontiguousarray(sample, np.float32)}

    def rewind(self) -> None:
        self.index = 0

    def __len__(self) -> int:
        return len(self.images)


def _preprocess(src: Path, dst: Path) -> str:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
        return "full"
    except Exception:  # symbolic shape inference fails on some graphs; ONNX shape inference is enough
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return "without symbolic shapes"


def _op_types(model_path: Path, keep_float_op_types: tuple[str, ...]) -> list[str] | None:
    if not keep_float_op_types:
        return None
    import onnx

    present = {n.op_type for n in onnx.load(str(model_path)).graph.node}
    return sorted(present - set(keep_float_op_types))


def quantize(
    fp32_path: Path,
    dst: Path,
    images: np.ndarray,
    method: str = "minmax",
    reduce_range: bool = False,
    keep_float_op_types: tuple[str, ...] = (),
    keep_float_nodes: tuple[str, ...] = (),
    bins: int = 2048,
    percentile: float = 99.999,
    on_sample: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Calibrate on ``images`` (float32 N×C×H×W) and write the QDQ int8 model to ``dst``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    if len(images) == 0:
        raise UsageError("no calibration samples")
    calibrate_method = _method(method)
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp, _capture_root_warnings() as log:
        work = Path(tmp)
        pre = work / "preprocessed.onnx"
        preprocessing = _preprocess(fp32_path, pre)
        model = onnx.load(str(pre))
        known_nodes = {n.name for n in model.graph.node}
        missing = [n for n in keep_float_nodes if n not in known_nodes]
        if missing:
            raise UsageError(f"nodes to keep in float not in the graph: {', '.join(missing)}")
        op_types = _op_types(pre, keep_float_op_types)
        input_name = model.graph.input[0].name
        calibrator = create_calibrator(
            pre,
            op_types,
            augmented_model_path=str(work / "augmented.onnx"),
            calibrate_method=calibrate_method,
            extra_options=calibrator_options(method, bins, percentile),
        )
        calibrator.collect_data(_Reader(input_name, images, on_sample))
        ranges = calibrator.compute_data()
        del calibrator
        cache = work / "ranges.json"
        save_tensors_data(ranges, cache)
        try:
            quantize_static(
                str(pre),
                str(dst),
                calibration_data_reader=None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(keep_float_nodes) or None,
                calibrate_method=calibrate_method,
                calibration_cache_path=str(cache),
                extra_options={"ActivationSymmetric": False},
            )
        except Exception as error:  # ORT's quantizer raises bare exceptions for graphs it cannot handle
            raise CheckFailedError(f"int8 quantization failed: {str(error).strip().splitlines()[0][:300]}") from None
    quantized = onnx.load(str(dst))
    counts: dict[str, int] = {}
    for node in quantized.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {
        "method": method,
        "calibrator_options": calibrator_options(method, bins, percentile),
        "samples": len(images),
        "reduce_range": reduce_range,
        "per_channel": True,
        "format": "QDQ",
        "weights": "int8",
        "activations": "uint8",
        "preprocessing": preprocessing,
        "keep_float": {"op_types": list(keep_float_op_types), "nodes": list(keep_float_nodes)},
        "quantize_linear_nodes": counts.get("QuantizeLinear", 0),
        "quantizer_warnings": sorted(set(log.messages))[:20],
    }
