"""What the stages share: the options, the resolved inputs, the artifacts made so far, the progress display."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.drift import Thresholds
from edgecnn.analysis.tasks import option_scopes
from edgecnn.applies import Rules, format_needs
from edgecnn.config.profiles import Profile
from edgecnn.config.recipes import Recipe
from edgecnn.data.calibration import CalibrationSet
from edgecnn.pipeline.source import ModelSource
from edgecnn.progress import Reporter
from edgecnn.runtime.outputs import Inputs, Outputs

PARITY_THRESHOLD = 1e-4  # max abs error relative to the output's range
ORT_INT8_THRESHOLD = 1e-6  # the int8 .ort must give the int8 .onnx's outputs
CHECK_SAMPLES = 4  # calibration samples among the check inputs (all an fp32-only export reads)


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
    # N,C,H,W: a string or a tuple; for several inputs one "name=N,C,H,W" string each, or {name: shape}
    input_shape: str | tuple[Any, ...] | dict[str, Any] | None = None
    calib: str | None = None
    calib_size: int | None = None
    holdout: int = 64
    method: str | None = None
    bias_correction: bool | None = None  # correct the int8 layers' mean shift out of their biases; None: the recipe's
    weight_rounding: bool | None = None  # round the int8 weights with error compensation; None: the recipe's
    opset: int | None = None
    quantize: bool = True
    dynamic_batch: bool = False
    # DeformConv: keep the standard op (native, ORT ≥ 1.25), add mmdeploy custom-op twins (custom) or rewrite
    # it to gathers any runtime runs (gather); None takes the profile's
    deform: str | None = None
    nchw_io: bool = False  # TFLite: keep the input NCHW (a leading TRANSPOSE) instead of TFLite's NHWC
    tflite_io: str | None = None  # TFLite int8 artifact: int8 (default) input/output (scale, zero point in the
    # manifest) or float
    force: bool = False
    recipe: str | None = None
    seed: int = 0
    fix: bool = True  # repair int8 drift (global remedies, then mixed precision) when the check fails
    allow_drift: bool = False  # write the artifacts and exit 0 even when drift is over the thresholds
    min_agreement: float = 0.99
    max_drop: float = 1.0  # accuracy drop in points
    min_cosine: float | None = None
    task: str | None = None  # how drift is judged per output (edgecnn/analysis/task_*.py); None: inferred
    min_miou: float = 0.9
    min_rank1: float = 0.95
    min_f1: float = 0.9
    min_recall: float | None = None
    mask_threshold: float = 0.5
    decoder: str = "yolo"
    score_threshold: float = 0.25
    nms_iou: float = 0.45
    given: frozenset[str] = frozenset()  # the options the caller gave (edgecnn/applies.py holds them to their path)

    def thresholds(self) -> Thresholds:
        """The drift thresholds and task choice these options give (an error for nonsense values)."""
        named = {"max_drop": "max_accuracy_drop", "task": "tasks"}  # ExportOptions → Thresholds field names
        return Thresholds(
            min_agreement=self.min_agreement,
            max_accuracy_drop=self.max_drop,
            min_cosine=self.min_cosine,
            min_miou=self.min_miou,
            min_rank1=self.min_rank1,
            min_f1=self.min_f1,
            min_recall=self.min_recall,
            mask_threshold=self.mask_threshold,
            decoder=self.decoder,
            score_threshold=self.score_threshold,
            nms_iou=self.nms_iou,
            tasks=self.task,
            given=frozenset(named.get(option, option) for option in self.given),
        )


# the pass marks of the tasks' verdicts (the tasks' other options say how outputs are read): a verdict not judged
# applies none of them, so one given is an error, as --fix is
VERDICT_THRESHOLDS = ("min_agreement", "min_cosine", "min_miou", "min_rank1", "min_f1", "min_recall")

# The export options that apply to one path only (edgecnn/applies.py): given without it, an error.
RULES = Rules(
    "export",
    {
        **{
            option: ("int8",)
            for option in ("method", "bias_correction", "weight_rounding", "calib_size", "holdout", "task")
        },
        **dict.fromkeys(("fix", "allow_drift"), ("int8", "judged")),  # both act on a judged verdict only
        **option_scopes("int8"),
        **{option: (*option_scopes("int8")[option], "judged") for option in VERDICT_THRESHOLDS},
        "max_drop": ("int8", "truth", "judged"),  # a pass mark too
        **format_needs(),
        "tflite_io": ("int8", "format:tflite"),
        "dynamic_batch": ("traced",),
        "deform": ("deformable",),
    },
    flags={"fix": "--fix/--no-fix"},
)


def given_options(options: Mapping[str, Any]) -> frozenset[str]:
    """The options a caller gave: every one passed (the CLI passes only the typed ones) but None and a flag left off
    (False), except ``fix=False`` (--no-fix turns a default off)."""
    given = {k for k, v in options.items() if v is not None and v is not False}
    return frozenset(given | ({"fix"} if options.get("fix") is False else set()))


def static_scopes(quantize: bool, formats: tuple[str, ...]) -> set[str]:
    """The scopes an export takes before any work: its formats, and int8 unless ``quantize`` is off."""
    return {f"format:{name}" for name in formats} | ({"int8"} if quantize else set())


def check_static_options(given: frozenset[str], quantize: bool, formats: tuple[str, ...]) -> None:
    """The given options that need int8 or a format, held to this export's (before any work)."""
    from edgecnn.applies import check_applies
    from edgecnn.formats import FORMATS

    taken = static_scopes(quantize, formats)
    check_applies(RULES, given, taken, known={"int8", *(f"format:{name}" for name in FORMATS)})


@dataclass
class Judgement:
    """The drift of an int8 artifact besides the drift stage's (the int8 `.tflite`): figures and verdict."""

    agreement: dict[str, Any]  # the manifest's agreement.formats[stage]
    verdict: dict[str, Any]  # judged, passed (None when not judged), failures: the manifest's drift.formats[stage]


@dataclass
class StageResult:
    """What a stage hands on: its figures for the manifest, the artifacts it made (keyed by the outputs it
    declares) and those artifacts' outputs on the check inputs, for the stages after it to compare with."""

    figures: dict[str, Any] = field(default_factory=dict)  # the manifest's stages[name]; "check" holds its numbers
    artifacts: dict[str, Path] = field(default_factory=dict)
    outputs: dict[str, Outputs] = field(default_factory=dict)
    skipped: str | None = None  # why it made nothing although it ran (then its outputs are not required)
    failed: str | None = None  # why its format failed although what it made is kept (the fp32 .tflite of a failed int8)
    judgement: Judgement | None = None  # its int8 artifact's drift, when it judged one


@dataclass
class TfliteOpsResult(StageResult):
    """… and the fp32 graph's TFLite lowering, made while checking that it lowers (the tflite stage writes it)."""

    lowering: Any = None  # stages.TfliteLowering


@dataclass
class SimplifyResult(StageResult):
    """… and the DeformConv sampling-path nodes that must stay float in int8 (``--deform gather``)."""

    float_nodes: tuple[str, ...] = ()


@dataclass
class QuantizeResult(StageResult):
    """… and the calibrated quantizer (the drift repair re-quantizes with it), the nodes and op types kept float."""

    quantizer: Any = None
    float_nodes: tuple[str, ...] = ()
    float_op_types: tuple[str, ...] = ()


@dataclass
class DriftResult(StageResult):
    """… and the manifest's drift record and agreement figures, and fp32 outputs on the held-out samples."""

    record: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    reference: Outputs | None = None


@dataclass
class TfliteResult(StageResult):
    """… and the input layout of the `.tflite` files."""

    input_layout: str | None = None


@dataclass
class ExportContext:
    """The inputs of one export run and the results of the stages run so far (``results`` is written by the
    stage runner only: a stage reads earlier results and returns its own)."""

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
    bias_correction: bool  # the int8 biases corrected (the option's, else the recipe's)
    weight_rounding: bool  # the int8 weights rounded with error compensation (the option's, else the recipe's)
    opset: int
    reporter: Reporter
    plan: dict[str, Any] | None = None  # the planner's decision when it chose the scaling
    results: dict[str, StageResult] = field(default_factory=dict)
    # Formats that will not be made, by name: status (failed | skipped), the stage and the reason; a failed
    # stage's record for the manifest (status, seconds, reason), by stage name.
    dropped: dict[str, dict[str, str]] = field(default_factory=dict)
    failed_stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _check_inputs: Inputs | None = field(default=None, repr=False)

    def check_inputs(self) -> Inputs:
        """The inputs every stage checks on: CHECK_SAMPLES calibration samples and two random ones (made once); one
        array per input name for a model with several."""
        if self._check_inputs is None:
            rng = np.random.default_rng(self.options.seed + 1)

            def checked(samples: np.ndarray) -> np.ndarray:
                noise = rng.standard_normal((2, *samples.shape[1:])).astype(np.float32)
                return np.concatenate([samples[:CHECK_SAMPLES], noise])

            images = self.calib.images
            self._check_inputs = (
                {name: checked(v) for name, v in images.items()} if isinstance(images, dict) else checked(images)
            )
        return self._check_inputs

    def result(self, stage: str) -> StageResult | None:
        """The result of ``stage``, None when it has not run (or was skipped)."""
        return self.results.get(stage)

    def calibration_method(self) -> str:
        """The calibration method of the int8 graphs: the quantize stage's (its range choice may take mean-of-extremes
        or auto for min-max), else the one asked for."""
        quantized = self.result("quantize")
        return quantized.figures.get("method", self.method) if quantized is not None else self.method

    def artifact(self, key: str) -> Path | None:
        """The newest artifact made under ``key`` (a later stage may replace one, as the drift repair does)."""
        for result in reversed(self.results.values()):
            if key in result.artifacts:
                return result.artifacts[key]
        return None

    def outputs(self, key: str) -> Outputs:
        """The newest outputs of artifact ``key`` on :meth:`check_inputs`."""
        for result in reversed(self.results.values()):
            if key in result.outputs:
                return result.outputs[key]
        raise KeyError(f"no stage has run artifact {key} on the check inputs")

    def warn(self, message: str) -> None:
        """Record a warning for the manifest and show it."""
        self.warnings.append(message)
        self.reporter.warn(message)
