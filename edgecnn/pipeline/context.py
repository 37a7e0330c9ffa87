"""What the stages share: the options, the resolved inputs, the artifacts made so far, the progress display."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config.profiles import Profile
from edgecnn.config.recipes import Recipe
from edgecnn.data.calibration import CalibrationSet
from edgecnn.pipeline.source import ModelSource
from edgecnn.progress import Reporter

PARITY_THRESHOLD = 1e-4  # max abs error relative to the output's range
ORT_INT8_THRESHOLD = 1e-6  # the int8 .ort must give the int8 .onnx's outputs


@dataclass
class ExportOptions:
    """Every knob of an export; the CLI and the Python API fill the same object."""

    model: Any
    profile: str = "x86-avx2"
    out: Path | None = None
    formats: str | None = None
    scaling: dict[str, Any] = field(default_factory=dict)  # the knobs given (edgecnn/models/knobs.py), by name
    weights: Path | None = None
    num_classes: int | None = None
    in_chans: int | None = None
    input_shape: str | tuple[int, ...] | None = None
    calib: str | None = None
    calib_size: int | None = None
    holdout: int = 64
    method: str | None = None
    opset: int | None = None
    quantize: bool = True
    dynamic_batch: bool = False
    # DeformConv: keep the standard op (native, ORT ≥ 1.25), add mmdeploy custom-op twins (custom) or rewrite
    # it to gathers any runtime runs (gather); None takes the profile's
    deform: str | None = None
    nchw_io: bool = False  # TFLite: keep the input NCHW (a leading TRANSPOSE) instead of TFLite's NHWC
    tflite_io: str = "int8"  # TFLite int8 artifact: int8 input/output (scale, zero point in the manifest) or float
    force: bool = False
    recipe: str | None = None
    seed: int = 0
    fix: bool = True  # repair int8 drift (global remedies, then mixed precision) when the check fails
    allow_drift: bool = False  # write the artifacts and exit 0 even when drift is over the thresholds
    min_agreement: float = 0.99
    max_drop: float = 1.0  # accuracy drop in points
    min_cosine: float | None = None


@dataclass
class ExportContext:
    """The state one export run threads through its stages."""

    options: ExportOptions
    profile: Profile
    recipe: Recipe
    source: ModelSource
    formats: tuple[str, ...]
    formats_requested: bool  # False when the formats came from the profile (then an unlowerable one is skipped)
    out: Path  # the temporary output directory, renamed to OUT at the end
    scratch: Path  # intermediate files that are not artifacts
    calib: CalibrationSet
    holdout: CalibrationSet
    method: str
    opset: int
    reporter: Reporter
    artifacts: dict[str, Path] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    parity_inputs: np.ndarray | None = None
    reference_outputs: dict[str, np.ndarray] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    quantizer: Any = None  # the pipeline's Quantizer, reused by the drift repair
    tflite_layout: str | None = None
    plan: dict[str, Any] | None = None  # the planner's decision when it chose the scaling
    float_nodes: tuple[str, ...] = ()  # nodes that must stay float in every int8 artifact (deform sampling path)
    warnings: list[str] = field(default_factory=list)

    def check_inputs(self) -> np.ndarray:
        """The inputs every stage checks on: four calibration samples and two random ones (made once)."""
        if self.parity_inputs is None:
            rng = np.random.default_rng(self.options.seed + 1)
            samples = self.calib.images[:4]
            noise = rng.standard_normal((2, *samples.shape[1:])).astype(np.float32)
            self.parity_inputs = np.concatenate([samples, noise])
        return self.parity_inputs

    def warn(self, message: str) -> None:
        """Record a warning for the manifest and show it."""
        self.warnings.append(message)
        self.reporter.warn(message)
