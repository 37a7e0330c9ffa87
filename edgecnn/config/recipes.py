"""Export recipes: per-family defaults in ``export_recipes/<family>.yaml``, validated on load."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgecnn.config.schema import Field, load_yaml, positive, project_dir, validate, yaml_names, yaml_path
from edgecnn.errors import UsageError

AUTO = "auto"  # per tensor, the range of whichever of AUTO_CANDIDATES quantizes it best (pipeline/quantize.py)
MEAN_MINMAX = (
    "mean_minmax"  # per tensor, the mean over the samples of each sample's min and max (graph inputs: min-max)
)
AUTO_CANDIDATES = ("minmax", "percentile", "entropy")  # the methods auto chooses among, tensor by tensor
CALIBRATION_METHODS = ("minmax", MEAN_MINMAX, "percentile", "entropy", AUTO)  # what recipes and --method take
LAYOUTS = ("NCHW",)
DEFAULT_RECIPE = "default"
MIN_OPSET, MAX_OPSET = 19, 21  # what a recipe's opset and --opset may be


def _three_or_one(value: list) -> str | None:
    return None if len(value) in (1, 3) else f"needs 1 or 3 values (one per channel), got {len(value)}"


def _opset(value: int) -> str | None:
    if MIN_OPSET <= value <= MAX_OPSET:
        return None
    return f"must be between {MIN_OPSET} and {MAX_OPSET} (the dynamo exporter needs ≥ {MIN_OPSET}), got {value}"


def _fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else f"must be in (0, 1], got {value}"


MIN_STD = 1e-3  # normalised pixels then stay within ±1000


def check_stats(mean: list[float], std: list[float], where: str) -> None:
    """Mean and std (validated as RECIPE_SCHEMA's) must pair up, be finite and be of pixels scaled to [0, 1]."""
    if len(mean) != len(std):
        raise UsageError(f"{where}: std: has {len(std)} values but mean has {len(mean)}")
    if not all(0 < s < math.inf for s in std):
        raise UsageError(f"{where}: std: every value must be finite and > 0")
    if not all(math.isfinite(m) for m in mean):
        raise UsageError(f"{where}: mean: every value must be finite")
    # Of pixels scaled to [0, 1]: a 0–255 mean (123.7) would make every image one flat value, a tiny std infinity.
    odd = next((("mean", v) for v in mean if not 0 <= v <= 1), None) or next(
        (("std", v) for v in std if not MIN_STD <= v <= 1), None
    )
    if odd is not None:
        bounds = "0 to 1" if odd[0] == "mean" else f"{MIN_STD:g} to 1"
        raise UsageError(
            f"{where}: {odd[0]}: values are of pixels scaled to [0, 1], so from {bounds}, got {odd[1]:g} "
            "(for 0–255 values, divide by 255)"
        )


RECIPE_SCHEMA: dict[str, Field] = {
    "family": Field(str),
    "description": Field(str, required=False),
    "mean": Field(items=(int, float), check=_three_or_one),
    "std": Field(items=(int, float), check=_three_or_one),
    "layout": Field(str, choices=LAYOUTS),
    "crop_fraction": Field(float, check=_fraction),
    "interpolation": Field(str, choices=("bilinear", "bicubic", "nearest")),
    "opset": Field(int, check=_opset),
    "calibration": Field(
        {
            "method": Field(str, choices=CALIBRATION_METHODS),
            "size": Field(int, check=positive),
            "percentile": Field(
                float, required=False, check=lambda v: None if 90 < v <= 100 else "must be in (90, 100]"
            ),
            "bins": Field(int, required=False, check=positive),
            "bias_correction": Field(bool, required=False),
            "weight_rounding": Field(bool, required=False),
        }
    ),
    "task": Field(str, required=False),  # how drift is judged per output (edgecnn/analysis/tasks.py), as --task
    "keep_float": Field(
        {
            "op_types": Field(items=str, required=False),
            "nodes": Field(items=str, required=False),
            "tflite_ops": Field(items=str, required=False),
        },
        required=False,
    ),
}


@dataclass(frozen=True)
class Recipe:
    """How to preprocess, export and quantize one family."""

    family: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str
    crop_fraction: float
    interpolation: str
    opset: int
    method: str
    calibration_size: int
    percentile: float = 99.999
    bins: int = 2048
    # the export corrects the int8 layers' mean output shift out of their biases (ORT and .tflite alike)
    bias_correction: bool = True
    # round the int8 weights with error compensation on the calibration samples (ORT and .tflite alike): off, as over
    # calibration draws it did not raise top-1 agreement (benchmarks/quant_draws.py); the drift repair tries it
    weight_rounding: bool = False
    keep_float_op_types: tuple[str, ...] = ()
    keep_float_nodes: tuple[str, ...] = ()
    tflite_keep_float_ops: tuple[str, ...] = ()
    task: str | None = None  # --task's default for the family
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def channel_stats(self, channels: int) -> tuple[list[float], list[float]]:
        """Mean and std for ``channels`` input channels (a 1-value recipe is broadcast; RGB→grey averages)."""
        if len(self.mean) == channels:
            return list(self.mean), list(self.std)
        if len(self.mean) == 1:
            return [self.mean[0]] * channels, [self.std[0]] * channels
        if channels == 1:
            return [sum(self.mean) / 3], [sum(self.std) / 3]
        raise UsageError(
            f"recipe '{self.family}' has mean/std for {len(self.mean)} channels; the model takes {channels}: give "
            f"--recipe a YAML whose mean and std have 1 or {channels} values (an input read as {channels} channels "
            "may be NHWC: edgecnn takes N×C×H×W)"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for manifests."""
        return {
            "family": self.family,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
            "crop_fraction": self.crop_fraction,
            "interpolation": self.interpolation,
            "opset": self.opset,
            "method": self.method,
            "bias_correction": self.bias_correction,
            "weight_rounding": self.weight_rounding,
            "keep_float": {"op_types": list(self.keep_float_op_types), "nodes": list(self.keep_float_nodes)},
            "task": self.task,
        }


def recipes_dir() -> Path:
    """Where the recipes live (``$EDGECNN_EXPORT_RECIPES`` overrides)."""
    return project_dir("export_recipes")


def list_recipes() -> list[str]:
    """Names of the recipes in ``export_recipes/``."""
    return yaml_names(recipes_dir())


def _check_op_types(op_types: Iterable[str], where: str) -> None:
    """keep_float.op_types must be ONNX op types: a misspelt one would keep nothing in float, unsaid."""
    try:
        import onnx.defs
    except ImportError:  # the core install (plan, predict): no export reads the recipe's op types there
        return
    unknown = [op for op in op_types if not onnx.defs.has(op)]
    if unknown:
        raise UsageError(
            f"{where}: keep_float.op_types: {', '.join(repr(op) for op in unknown)} is no ONNX op type: "
            "spell it as ONNX does (Conv, Gemm, Softmax, …)"
        )


def load_recipe_file(path: Path) -> Recipe:
    """Load and validate one recipe YAML."""
    data = load_yaml(path)
    where = str(path)
    validate(data, RECIPE_SCHEMA, where)
    check_stats(data["mean"], data["std"], where)
    calibration, keep = data["calibration"], data.get("keep_float") or {}
    _check_op_types(keep.get("op_types") or (), where)
    return Recipe(
        family=data["family"],
        mean=tuple(map(float, data["mean"])),
        std=tuple(map(float, data["std"])),
        layout=data["layout"],
        crop_fraction=float(data["crop_fraction"]),
        interpolation=data["interpolation"],
        opset=data["opset"],
        method=calibration["method"],
        calibration_size=calibration["size"],
        percentile=float(calibration.get("percentile", 99.999)),
        bins=calibration.get("bins", 2048),
        bias_correction=calibration.get("bias_correction", Recipe.bias_correction),
        weight_rounding=calibration.get("weight_rounding", Recipe.weight_rounding),
        keep_float_op_types=tuple(keep.get("op_types") or ()),
        keep_float_nodes=tuple(keep.get("nodes") or ()),
        tflite_keep_float_ops=tuple(keep.get("tflite_ops") or ()),
        task=data.get("task"),
        path=where,
    )


@cache
def _load_cached(path: Path) -> Recipe:
    return load_recipe_file(path)


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (a family, or 'default') or by path to a YAML file."""
    return _load_cached(yaml_path("recipe", name_or_path, recipes_dir()).resolve())


def recipe_for_family(family: str | None) -> Recipe:
    """The family's recipe, or the default recipe for models outside the zoo."""
    return load_recipe(family if family and family in list_recipes() else DEFAULT_RECIPE)
