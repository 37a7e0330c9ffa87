"""An artifact to evaluate — a PyTorch model spec, `.onnx` or `.ort` — with the preprocessing it expects."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.config.recipes import LAYOUTS, Recipe, check_stats, recipe_for_family
from edgecnn.config.schema import Field, validate
from edgecnn.errors import UsageError, check_file
from edgecnn.formats import format_of, require_format
from edgecnn.runtime.loader import Runner, load
from edgecnn.runtime.outputs import Inputs


@dataclass
class Artifact:
    """Something that maps preprocessed images to logits, and how to preprocess for it."""

    label: str
    kind: str  # torch or a format name (edgecnn/formats.py)
    input_shape: tuple[int, ...]
    recipe: Recipe
    path: Path | None = None
    module: Any = None
    manifest: dict[str, Any] | None = None
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # several inputs: name → N,C,H,W; {} for one

    @property
    def is_qdq(self) -> bool:
        """True for an ONNX graph with QuantizeLinear nodes (a QDQ int8 model)."""
        if self.kind != "onnx" or self.path is None:
            return False
        import onnx

        return any(n.op_type == "QuantizeLinear" for n in onnx.load(str(self.path)).graph.node)

    def runner(self, optimization: str = "all", threads: int = 1) -> Runner:
        """A callable on preprocessed float32 batches."""
        if self.module is not None:
            return load(self.module, input_size=self.input_shape[1:])
        layout = ((self.manifest or {}).get("model") or {}).get("tflite_input_layout")
        return load(self.path, threads=threads, optimization=optimization, layout=layout)

    def sibling(self, key: str) -> Path | None:
        """Another artifact of the same export (from its manifest), e.g. 'fp32_onnx'."""
        if not self.manifest or self.path is None:
            return None
        entry = self.manifest["artifacts"].get(key)
        path = (
            self.path.parent / entry["path"] if isinstance(entry, dict) and isinstance(entry.get("path"), str) else None
        )
        return path if path is not None and path.is_file() else None


def _image_shape(value: list) -> str | None:
    return None if len(value) == 4 and all(d >= 1 for d in value) else f"must be N, C, H, W ≥ 1, got {value}"


MANIFEST_MODEL: dict[str, Field] = {  # what drift reads of an export's manifest.json: the preprocessing
    "family": Field(str, required=False),
    "input_shape": Field(items=int, check=_image_shape),
    "mean": Field(items=(int, float)),
    "std": Field(items=(int, float)),
    "layout": Field(str, required=False, choices=LAYOUTS),
    "tflite_input_layout": Field(str, required=False, choices=("NHWC", "NCHW")),
}


def _manifest_beside(path: Path) -> dict[str, Any] | None:
    """The manifest.json of the export ``path`` belongs to (one that lists it), checked; None when there is none.
    A file there that is not JSON, or lists other artifacts, is another tool's and is ignored."""
    candidate = path.parent / "manifest.json"
    if not candidate.is_file():
        return None
    try:
        manifest = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    entries = artifacts.values() if isinstance(artifacts, dict) else ()
    if path.name not in {entry.get("path") for entry in entries if isinstance(entry, dict)}:
        return None
    model = manifest.get("model")
    where = f"{candidate}: model"
    try:
        if not isinstance(model, dict):
            raise UsageError(f"{where}: expected a mapping, got {type(model).__name__}")
        validate({key: model.get(key) for key in MANIFEST_MODEL}, MANIFEST_MODEL, where)
        check_stats(model["mean"], model["std"], where)
        channels = model["input_shape"][1]
        if len(model["mean"]) not in (1, channels):
            raise UsageError(f"{where}.mean: has {len(model['mean'])} values for {channels} input channels")
    except UsageError as error:
        raise UsageError(f"{error}; fix or remove this manifest (it gives {path.name}'s preprocessing)") from None
    return manifest


def _recipe_from_manifest(manifest: dict[str, Any]) -> Recipe:
    model = manifest["model"]
    base = recipe_for_family(model.get("family"))
    return dataclasses.replace(
        base, mean=tuple(model["mean"]), std=tuple(model["std"]), layout=model.get("layout", "NCHW")
    )


def _file_inputs(path: Path) -> dict[str, tuple[int, ...]]:
    """Every N×C×H×W input of a model file, by name (batch 1); a one-line error for an input that is not a float
    image, or an output edgecnn cannot compare."""
    from edgecnn.runtime.loader import load_tflite, ort_session

    if format_of(path).runtime == "tflite":
        shapes: dict[str, Any] = load_tflite(path).inputs
    else:
        session = ort_session(path)
        bad_input = next((i for i in session.get_inputs() if i.type != "tensor(float)"), None)
        if bad_input is not None:
            raise UsageError(
                f"{path}'s input '{bad_input.name}' is {bad_input.type}; edgecnn evaluates image models with float "
                "inputs"
            )
        shapes = {i.name: i.shape for i in session.get_inputs()}
        outputs = session.get_outputs()
        bad = next((o for o in outputs if o.type != "tensor(float)"), None)
        if not outputs or bad is not None:
            what = f"output '{bad.name}' is {bad.type}" if bad is not None else "graph has no outputs"
            raise UsageError(f"{path}'s {what}; edgecnn compares float outputs (logits, maps, boxes, embeddings)")
    for name, shape in shapes.items():
        if not len(shape):  # ONNX Runtime shows a shapeless input as a scalar's []
            raise UsageError(
                f"{path}'s input '{name}' has no shape (or is a scalar); edgecnn evaluates N×C×H×W image models: "
                "save the model with its input's shape"
            )
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            which = f"input '{name}' has shape" if len(shapes) > 1 else "has input shape"
            raise UsageError(f"{path} {which} {list(shape)}; edgecnn evaluates N×C×H×W image models")
    return {name: (1, *shape[1:]) for name, shape in shapes.items()}


def open_artifact(
    spec: str,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None = None,
) -> Artifact:
    """Open ``spec``: an `.onnx`/`.ort` file (preprocessing from the manifest beside it, if any) or a model spec."""
    path = Path(spec)
    fmt = format_of(path)
    if fmt is not None:
        check_file(path, "artifact")
        if weights is not None or num_classes is not None or in_chans is not None:
            raise UsageError(
                f"{path} is a model file: --weights, --num-classes and --in-chans apply to a PyTorch REF (a zoo name, "
                "torchvision:NAME or package.module:factory)"
            )
        manifest = _manifest_beside(path)
        recipe = _recipe_from_manifest(manifest) if manifest else recipe_for_family(None)
        inputs = _file_inputs(path)
        shape = tuple(manifest["model"]["input_shape"]) if manifest else next(iter(inputs.values()))
        several = inputs if len(inputs) > 1 else {}
        return Artifact(str(path), fmt.name, shape, recipe, path=path, manifest=manifest, inputs=several)
    from edgecnn.pipeline.source import resolve_source, source_recipe

    source = resolve_source(spec, num_classes=num_classes, in_chans=in_chans, input_shape=input_shape, weights=weights)
    if source.kind == "onnx":  # a file without a known suffix is no artifact: say so rather than recurse
        require_format(source.onnx_path)
        return open_artifact(str(source.onnx_path))
    return Artifact(
        source.name,
        "torch",
        tuple(source.input_shape),
        source_recipe(source),
        module=source.module,
        inputs=source.inputs,
    )


def one_preprocessing(reference: Artifact, target: Artifact) -> str | None:
    """Give REF and TARGET one preprocessing, so that they see the same images: a manifest's when one of them has
    one (its other side a copy or renamed file, the repaired model `drift --fix` writes, a PyTorch REF), else a
    PyTorch side's own; a one-line error when two manifests disagree. Returns a note when the defaults are assumed."""
    with_manifest = [a for a in (reference, target) if a.manifest]
    if len(with_manifest) == 2:
        ref, tgt = (_preprocessing(a.recipe) for a in (reference, target))
        if ref != tgt:
            raise UsageError(
                f"REF and TARGET are preprocessed differently by their manifests ({_said(ref)} against {_said(tgt)}): "
                "drift compares a model with its int8 version on the same images; give two models of one export"
            )
        return None
    source = next(iter(with_manifest), None) or next((a for a in (reference, target) if a.kind == "torch"), None)
    if source is None:
        mean, std = list(reference.recipe.mean), list(reference.recipe.std)
        return f"no manifest beside REF or TARGET: both are fed images normalised by mean {mean} and std {std}"
    reference.recipe = target.recipe = source.recipe
    return None


def _preprocessing(recipe: Recipe) -> dict[str, Any]:
    return {"mean": tuple(recipe.mean), "std": tuple(recipe.std), "layout": recipe.layout}


def _said(preprocessing: dict[str, Any]) -> str:
    return f"mean {list(preprocessing['mean'])}, std {list(preprocessing['std'])}, {preprocessing['layout']}"


def load_images(artifact: Artifact, data: str, limit: int, seed: int = 0) -> tuple[Inputs, Any]:
    """The evaluation data preprocessed for ``artifact``: (images — one array per input name for a model with
    several —, CalibrationSet)."""
    from edgecnn.data.calibration import load_calibration, load_input_calibration

    if artifact.inputs:
        shapes = {name: tuple(shape[1:]) for name, shape in artifact.inputs.items()}
        dataset, _ = load_input_calibration(data, shapes, artifact.recipe, limit, 0, seed)
    else:
        dataset, _ = load_calibration(data, tuple(artifact.input_shape[1:]), artifact.recipe, limit, 0, seed)
    if dataset.synthetic:
        raise UsageError("--data must be real data (an image folder or .npz/.npy): synthetic data cannot show drift")
    return dataset.images, dataset
