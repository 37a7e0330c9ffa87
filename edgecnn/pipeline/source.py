"""What MODEL names: a zoo network, a torchvision model, an import path, or an ONNX file."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.config.profiles import Profile
from edgecnn.config.recipes import Recipe, load_recipe, recipe_for_family
from edgecnn.errors import UnknownNameError, UsageError, UserCodeError, check_file

INPUT_NAME = "input"  # the ONNX input of a single-input model
TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"
TIMM_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # what calibration resizes with; timm's others → bicubic
MAX_INPUT_SHAPE = (256, 64, 8192, 8192)  # N, C, H, W: beyond these a "model input" is a typo


@dataclass
class ModelSource:
    """A resolved model: either a torch module to trace or an ONNX file, with its input shape."""

    kind: str  # zoo | torchvision | timm | import | onnx | module
    name: str
    input_shape: tuple[int, ...]  # N, C, H, W
    family: str | None = None
    scaling: dict[str, Any] = field(default_factory=dict)
    scaling_origin: str = "arguments"  # arguments | profile defaults | model defaults
    module: Any = None
    onnx_path: Path | None = None
    weights: dict[str, str] | None = None  # path and sha256 of loaded weights
    preprocessing: dict[str, Any] | None = None  # the model's own data config (timm: input_size, mean, std, …)
    # a model with several inputs: name → N, C, H, W in forward's order (input_shape is the first's); empty for one
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    preprocessing_origin: str = ""  # where calibration/eval preprocessing came from (set with the recipe)

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every input by its ONNX name: ``input`` for a single-input model."""
        return dict(self.inputs) if self.inputs else {INPUT_NAME: tuple(self.input_shape)}

    @property
    def trained(self) -> bool:
        """Whether real weights were loaded (or the model came as a file that carries them)."""
        return self.weights is not None or self.kind == "onnx"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for manifests."""
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "scaling": self.scaling,
            "scaling_origin": self.scaling_origin,
            "input_shape": list(self.input_shape),
            "inputs": [{"name": k, "shape": list(v)} for k, v in self.input_shapes().items()],
            "weights": self.weights,
            "preprocessing": self.preprocessing,
            "preprocessing_origin": self.preprocessing_origin,
        }


def sha256_file(path: str | Path, suffixes: tuple[str, ...] = ()) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's files (their relative names and bytes, in sorted order; only
    names ending in ``suffixes`` when given)."""
    digest, root = hashlib.sha256(), Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        if file != root:
            if suffixes and not file.name.endswith(suffixes):
                continue
            digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def code_identity(spec: str, search: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a ``torchvision:``/``timm:`` or import-path MODEL (``package.module:factory``) runs, found without
    importing it: the library's version, or the sha256 of the ``.py`` files of the factory's top-level module or
    package (an installed distribution: its version) — a changed factory is another model. The module is looked
    for as the export imports it: on sys.path, then in ``search`` and the current directory."""
    import importlib.metadata
    import os
    import sys
    from importlib.machinery import PathFinder

    for prefix, library in ((TORCHVISION_PREFIX, "torchvision"), (TIMM_PREFIX, "timm")):
        if spec.startswith(prefix):
            try:
                return {"import": spec, "version": importlib.metadata.version(library)}
            except importlib.metadata.PackageNotFoundError:
                return {"import": spec, "version": None}
    top = spec.partition(":")[0].split(".")[0]
    found = PathFinder.find_spec(top, [*sys.path, *search, os.getcwd()]) if top else None
    if found is None or found.origin in (None, "built-in", "frozen"):
        return {"import": spec, "code": None}  # not found here: the export says so when it runs
    locations = list(found.submodule_search_locations or [])
    root = Path(locations[0]) if locations else Path(found.origin)
    if {"site-packages", "dist-packages"} & set(root.parts):
        try:
            return {"import": spec, "version": importlib.metadata.version(top)}
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"import": spec, "code_sha256": sha256_file(root, (".py",))}


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """'1,3,224,224' → (1, 3, 224, 224); a one-line error for anything else."""
    if text is None:
        return None
    parts = [part.strip() for part in text.replace("x", ",").split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):  # int() would take '1_0' and '１'
        raise UsageError(f"--input-shape must be N,C,H,W integers, got '{text}'")
    shape = tuple(int(part) for part in parts)
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise UsageError(
            f"--input-shape must be four positive integers N,C,H,W, got '{text}' (edgecnn takes image inputs; "
            "others are not supported yet)"
        )
    for name, value, bound in zip("NCHW", shape, MAX_INPUT_SHAPE, strict=True):
        if value > bound:
            raise UsageError(
                f"--input-shape {name}={value} is beyond what edgecnn accepts for an image model "
                f"(N ≤ {MAX_INPUT_SHAPE[0]}, C ≤ {MAX_INPUT_SHAPE[1]}, H and W ≤ {MAX_INPUT_SHAPE[2]}): "
                "give the size the model is meant to run at"
            )
    return shape


InputShapes = tuple[int, ...] | dict[str, tuple[int, ...]]  # one input's N,C,H,W, or one per input name


def parse_input_shapes(value: Any) -> InputShapes | None:
    """``--input-shape`` as given once or once per input: ``1,3,224,224`` → a shape; ``image=1,3,224,224`` (each
    input named, as in forward) → {name: shape}. A tuple of ints passes through (the Python API)."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None
    if isinstance(value, dict):
        given = list(value.items())
    elif isinstance(value, str):
        given = [value]
    elif all(isinstance(v, int) for v in value):
        return tuple(value)
    else:
        given = list(value)
    if isinstance(value, dict):
        shapes = {
            str(k): parse_input_shape(",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
            for k, v in given
        }
    else:
        if len(given) == 1 and "=" not in given[0]:
            return parse_input_shape(given[0])
        unnamed = [g for g in given if "=" not in g]
        if len(unnamed) == len(given):
            raise UsageError(
                f"--input-shape is given {len(given)} times without input names: give it once for a model with one "
                "input, or NAME=N,C,H,W once per input (e.g. --input-shape image=1,3,224,224 --input-shape "
                "depth=1,1,224,224)"
            )
        if unnamed:
            raise UsageError(
                f"--input-shape '{unnamed[0]}' has no input name: with several inputs name each as in forward, "
                "e.g. --input-shape image=1,3,224,224 --input-shape depth=1,1,224,224"
            )
        shapes = {}
        for text in given:
            name, _, shape = text.partition("=")
            name = name.strip()
            if not name:  # any other name: a forward argument or an ONNX input ('input.1', 'x:0'), checked later
                raise UsageError(f"--input-shape '{text}' names no input: write NAME=N,C,H,W")
            if name in shapes:
                raise UsageError(f"--input-shape names input '{name}' twice")
            shapes[name] = parse_input_shape(shape)
    batches = {shape[0] for shape in shapes.values()}
    if len(batches) > 1:
        raise UsageError(f"every input must have the same batch size N; --input-shape gives {sorted(batches)}")
    return shapes


def _forward_params(module: Any) -> list[inspect.Parameter]:
    """The positional arguments of ``module``'s forward (edgecnn passes its inputs positionally)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # a forward without a signature (a builtin): taken as one input
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _forward_inputs(source: ModelSource, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The named input shapes in the order of the module's forward arguments (they are passed positionally)."""
    names = [p.name for p in _forward_params(source.module)]
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise UsageError(
            f"--input-shape names {', '.join(unknown)}, but the forward of MODEL '{source.name}' takes "
            f"({', '.join(names)})"
        )
    first = names[: len(shapes)]
    if set(first) != set(shapes):
        raise UsageError(
            f"the forward of MODEL '{source.name}' takes ({', '.join(names)}): give --input-shape for its first "
            f"{len(shapes)} argument(s), {', '.join(first)}"
        )
    return {name: shapes[name] for name in first}


def _load_failure(error: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in one line, with what the unsafe way would risk."""
    text = str(error)
    unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(error, EOFError) or "Unsupported operand" in text:  # empty, cut short, or no pickle at all
        return "it is not a PyTorch checkpoint (empty, cut short, or another format): give what torch.save wrote"
    if "Weights only load failed" in text:
        found = f" (it holds {unsupported.group(1)})" if unsupported else ""
        return (
            f"it holds Python objects besides tensors{found}; edgecnn loads weights with weights_only=True "
            "because weights_only=False runs arbitrary code from the file: if you trust its source, load it "
            "yourself and save only the state_dict (torch.save(model.state_dict(), 'weights.pt'))"
        )
    return " ".join(text.split())[:200] or type(error).__name__


def load_weights(module: Any, path: str | Path) -> dict[str, str]:
    """Load a state_dict or checkpoint (``weights_only=True``) into ``module``; mismatches are errors."""
    import torch

    path = check_file(path, "weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises anything from IndexError to UnpicklingError on a bad file
        raise UsageError(f"weights file {path} cannot be loaded: {_load_failure(error)}") from None
    state = loaded
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model", "weights"):
            if isinstance(loaded.get(key), dict):
                state = loaded[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"weights file {path} holds no state_dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
            if keys:
                shown = ", ".join(keys[:6]) + (f" … ({len(keys)} in all)" if len(keys) > 6 else "")
                parts.append(f"{label}: {shown}")
        hint = ""
        if wrong and any(expected[k].ndim == 2 for k in wrong):
            hint = " (is --num-classes right?)"
        raise UsageError(f"weights file {path} does not fit the model: {'; '.join(parts)}{hint}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:4]) + (f" … ({len(bad)} in all)" if len(bad) > 4 else "")
        raise UsageError(f"weights file {path} has NaN or infinite values in {shown}: the checkpoint is broken")
    integer = [k for k in state if not state[k].is_floating_point() and expected[k].is_floating_point()]
    if integer:
        raise UsageError(
            f"weights file {path} holds {str(state[integer[0]].dtype).removeprefix('torch.')} tensors where the "
            f"model has float ones ({integer[0]} …): give the float checkpoint"
        )
    module.load_state_dict(state)
    return {"path": str(path), "sha256": sha256_file(path)}


def _zoo(name: str, options: dict[str, Any], profile: Profile | None) -> ModelSource:
    from edgecnn.models.registry import get_model_info

    info = get_model_info(name)
    given = {k: v for k, v in options.items() if v is not None and k in info.knobs}
    ignored = sorted(k for k, v in options.items() if v is not None and k not in info.knobs)
    if ignored:
        raise UsageError(f"model '{info.name}' has no option {', '.join(ignored)}; it takes: {', '.join(info.knobs)}")
    origin = "arguments"
    if not given and profile is not None:
        given = {k: v for k, v in profile.scaling_for(info.family).items() if k in info.knobs}
        origin = "profile defaults" if given else "model defaults"
    return ModelSource("zoo", info.name, (), info.family, given, origin)


# What edgecnn imports after it has imported an import-path MODEL's module: imported first, so a file of the
# same name beside the user's module (onnxsim.py, PIL/, numpy.py) cannot stand in for it.
LIBRARIES = ("numpy", "yaml", "PIL.Image", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "torchvision")


def _import(spec: str) -> Any:
    import contextlib
    import os
    import sys

    module_name, _, attr = spec.partition(":")
    if not module_name or module_name.startswith("."):
        raise UsageError(f"MODEL '{spec}' names no module: write package.module:factory, the module's full name")
    for library in LIBRARIES:
        with contextlib.suppress(ImportError):
            importlib.import_module(library)
    saved = list(sys.path)
    sys.path.append(os.getcwd())  # like `python -m`, modules in the current directory are importable, but last
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import '{module_name}' for MODEL '{spec}': {error}") from None
    except (Exception, SystemExit) as error:
        raise user_code_error(f"importing '{module_name}' for MODEL '{spec}'", error) from error
    finally:
        sys.path[:] = saved
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(
                f"'{module_name}' has no attribute '{attr}': name a class or function defined in it (MODEL is "
                "package.module:name)"
            )
        target = getattr(target, part)
    return target


def user_code_error(doing: str, error: BaseException) -> UserCodeError:
    """An error raised by the user's code, with its traceback (edgecnn's own frames left out); a ``sys.exit``
    there is one too."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    own = Path(__file__).resolve().parents[1]
    mine = [f for f in frames if not Path(f.filename).resolve().is_relative_to(own) and "importlib" not in f.filename]
    details = "".join(traceback.format_list(mine or frames)) + "".join(traceback.format_exception_only(error))
    what = f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else f"raised {type(error).__name__}"
    return UserCodeError(
        f"your code {what} while {doing} (its traceback follows; the bug is in that code, not in edgecnn)",
        "Traceback of your code (most recent call last):\n" + details,
    )


def _build(spec: str, target: Any, kwargs: dict[str, Any]) -> Any:
    """Call an import-path MODEL's class or factory; anything but an nn.Module subclass or a Python function is
    refused before it is called (``os:system`` is not a model)."""
    import torch

    if isinstance(target, torch.nn.Module):
        return target
    is_module_class = inspect.isclass(target) and issubclass(target, torch.nn.Module)
    if not is_module_class and not inspect.isfunction(target):
        kind = "a class that is not a torch.nn.Module" if inspect.isclass(target) else type(target).__name__
        raise UsageError(
            f"MODEL '{spec}' is {kind}, not a factory of a torch.nn.Module: name an nn.Module subclass or a "
            "function of yours that returns one"
        )
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
        kind = "a generator" if inspect.isgeneratorfunction(target) else "an async function"
        raise UsageError(
            f"MODEL '{spec}' is {kind}, which gives no torch.nn.Module when called: make it a plain def that "
            "returns the model"
        )
    params = inspect.signature(target).parameters
    unknown = [k for k in kwargs if k not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise UsageError(f"'{spec}' takes no argument {', '.join(unknown)}")
    required = [
        name
        for name, p in params.items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in kwargs
    ]
    if required:
        raise UsageError(
            f"MODEL '{spec}' needs argument(s) {', '.join(required)}: a factory must build the model "
            "without arguments (besides num_classes and in_chans)"
        )
    try:
        module = target(**kwargs)
    except (Exception, SystemExit) as error:  # chained, so a caller of the Python API keeps the full traceback
        raise user_code_error(f"building MODEL '{spec}'", error) from error
    if not isinstance(module, torch.nn.Module):
        if inspect.iscoroutine(module) or inspect.isgenerator(module):
            module.close()  # never awaited or run: closed, so Python warns of nothing
        raise UsageError(f"'{spec}' returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _torchvision(name: str, num_classes: int | None) -> Any:
    """A torchvision model built without any download: ``weights=None`` and, for the builders that take one (the
    segmentation and detection models), ``weights_backbone=None``; weights come from ``--weights``."""
    from urllib.error import URLError

    import torchvision

    if name not in torchvision.models.list_models():
        raise UnknownNameError("torchvision model", name, torchvision.models.list_models())
    builder = torchvision.models.get_model_builder(name)
    kwargs: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    if num_classes:
        kwargs["num_classes"] = num_classes
    try:
        return builder(**kwargs)
    except (URLError, OSError) as error:  # a builder that still downloads: never let it reach the network
        raise UsageError(
            f"torchvision:{name} tried to download weights ({type(error).__name__}); edgecnn builds torchvision "
            "models with weights=None and takes weights from --weights only"
        ) from None
    except (TypeError, ValueError) as error:  # e.g. a builder without num_classes
        raise UsageError(f"torchvision:{name} cannot be built with {kwargs}: {str(error).splitlines()[0]}") from None


def _timm(name: str, num_classes: int | None, in_chans: int | None) -> tuple[Any, dict[str, Any]]:
    """A timm model, random-initialised (``pretrained=False``: weights come from ``--weights``), and its data
    config (``timm.data.resolve_data_config``: input size, mean/std, interpolation, crop)."""
    try:
        import timm
        import timm.data
    except ImportError:
        raise UsageError(f"MODEL '{TIMM_PREFIX}{name}' needs timm: pip install 'edgecnn[timm]'") from None
    if not timm.is_model(name):
        raise UnknownNameError("timm model", name, timm.list_models())
    kwargs = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
    try:
        module = timm.create_model(name, pretrained=False, **kwargs)
    except Exception as error:  # timm raises RuntimeError/ValueError/TypeError for arguments a model refuses
        raise UsageError(f"timm cannot build '{name}' with {kwargs}: {str(error).splitlines()[0][:200]}") from None
    config = timm.data.resolve_data_config({}, model=module)
    keep = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")
    return module, {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if k in keep}


def source_recipe(source: ModelSource, recipe: str | None = None) -> Recipe:
    """How to preprocess and quantize for ``source``: the recipe named, else the model's own data config (timm) on
    the default recipe, else its family's recipe. Records where the preprocessing came from in the source."""
    if recipe is not None:
        chosen = load_recipe(recipe)
        source.preprocessing_origin = f"recipe {chosen.path}"
        return chosen
    base = recipe_for_family(source.family)
    config = source.preprocessing
    if not config:
        source.preprocessing_origin = f"recipe {base.path}"
        return base
    interpolation = config["interpolation"] if config["interpolation"] in TIMM_INTERPOLATIONS else "bicubic"
    source.preprocessing_origin = f"{source.kind} data config of {source.name} (mean, std, interpolation, crop_pct)"
    return dataclasses.replace(
        base,
        mean=tuple(map(float, config["mean"])),
        std=tuple(map(float, config["std"])),
        crop_fraction=min(1.0, float(config.get("crop_pct", base.crop_fraction))),
        interpolation=interpolation,
    )


def resolve_source(
    spec: str | Any,
    *,
    scaling: dict[str, Any] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_shape: InputShapes | None = None,
    weights: str | Path | None = None,
    profile: Profile | None = None,
    batch: int = 1,
    seed: int = 0,
) -> ModelSource:
    """Resolve MODEL to a module (built, weights loaded) or an ONNX file, with its traced input shape(s).

    A module built here starts from torch's generator seeded with ``seed`` (the caller's generator is left as it
    was): two exports of a model without weights get the same random weights, and the same artifacts."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _resolve_source(spec, scaling, num_classes, in_chans, input_shape, weights, profile, batch)


def _resolve_source(
    spec: str | Any,
    scaling: dict[str, Any] | None,
    num_classes: int | None,
    in_chans: int | None,
    input_shape: InputShapes | None,
    weights: str | Path | None,
    profile: Profile | None,
    batch: int,
) -> ModelSource:
    import torch

    scaling = {k: v for k, v in (scaling or {}).items() if v is not None}
    named = input_shape if isinstance(input_shape, dict) else None
    if named is not None:
        input_shape = next(iter(named.values()))
    if isinstance(spec, torch.nn.Module):
        source = ModelSource("module", type(spec).__name__, (), module=spec)
    elif str(spec).lower().endswith(".onnx") or (Path(str(spec)).is_file() and ":" not in str(spec)):
        return _onnx_source(Path(str(spec)), scaling, num_classes, in_chans, weights, named or input_shape)
    elif str(spec).startswith(TORCHVISION_PREFIX):
        if scaling:
            raise UsageError(f"torchvision models take no scaling options; got {', '.join(scaling)}")
        source = ModelSource("torchvision", spec, (), module=_torchvision(spec[len(TORCHVISION_PREFIX) :], num_classes))
    elif str(spec).startswith(TIMM_PREFIX):
        if scaling:
            raise UsageError(f"timm models take no scaling options; got {', '.join(scaling)}")
        module, config = _timm(spec[len(TIMM_PREFIX) :], num_classes, in_chans)
        source = ModelSource("timm", spec, (), module=module, preprocessing=config)
    elif ":" in str(spec) and "/" not in str(spec):
        target = _import(str(spec))
        kwargs = {}
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if in_chans is not None:
            kwargs["in_chans"] = in_chans
        source = ModelSource("import", str(spec), (), module=_build(str(spec), target, kwargs))
    else:
        source = _zoo(str(spec), scaling, profile)
        from edgecnn.models.registry import create_model

        kwargs = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
        source.module = create_model(source.name, **kwargs, **source.scaling)
        source.scaling = dict(source.module.scaling)
    if source.kind != "zoo" and scaling and source.kind not in ("torchvision", "timm"):
        raise UsageError(f"scaling options ({', '.join(scaling)}) apply to zoo models only")
    if weights is not None:
        source.weights = load_weights(source.module, weights)
    if named is not None and len(named) > 1:
        if source.kind not in ("import", "module"):
            raise UsageError(f"MODEL '{source.name}' takes one input; give --input-shape N,C,H,W once")
        source.inputs = _forward_inputs(source, named)
        input_shape = next(iter(source.inputs.values()))
    else:
        if named is not None and set(named) != {INPUT_NAME} and _forward_params(source.module):
            _forward_inputs(source, named)  # one input named: forward's first argument (or the ONNX input's name)
        required = [p.name for p in _forward_params(source.module) if p.default is p.empty]
        if source.kind in ("import", "module") and len(required) > 1:
            raise UsageError(
                f"the forward of MODEL '{source.name}' takes {len(required)} inputs ({', '.join(required)}): give "
                f"--input-shape NAME=N,C,H,W once per input, e.g. "
                + " ".join(f"--input-shape {name}=1,3,224,224" for name in required)
            )
    if input_shape is not None:
        _check_given_shape(source, input_shape, in_chans, "resolution" in scaling)
    source.input_shape = _input_shape(source, input_shape, in_chans, batch)
    return source


def _check_given_shape(source: ModelSource, given: tuple[int, ...], in_chans: int | None, resolution: bool) -> None:
    """--input-shape must agree with --in-chans and a zoo model's --resolution: one of two answers would be lost."""
    shown = ",".join(map(str, given))
    if in_chans is not None and given[1] != in_chans:
        raise UsageError(f"--input-shape {shown} has C={given[1]}, but --in-chans is {in_chans}: give one of them")
    size = tuple(getattr(source.module, "input_size", ())[1:])
    if resolution and size and tuple(given[2:]) != size:
        raise UsageError(
            f"--input-shape {shown} is {given[2]}×{given[3]}, but --resolution makes MODEL '{source.name}' "
            f"{size[0]}×{size[1]}: give one of them"
        )


def _input_shape(
    source: ModelSource, given: tuple[int, ...] | None, in_chans: int | None, batch: int
) -> tuple[int, ...]:
    if given is not None:
        return given
    size = getattr(source.module, "input_size", None)
    if source.preprocessing and "input_size" in source.preprocessing:
        size = tuple(source.preprocessing["input_size"])
        size = (in_chans or size[0], *size[1:])
    if size is None and source.kind == "torchvision":
        size = (in_chans or 3, 224, 224)
    if size is None:
        raise UsageError(f"MODEL '{source.name}' has no default input size; give --input-shape N,C,H,W")
    return (batch, *size)


def _refuse_known_format(path: Path) -> None:
    """A one-line error for a MODEL file that is a PyTorch checkpoint or a ``.tflite`` rather than an ONNX model."""
    import zipfile

    from edgecnn.lowering.tflite.flatbuffer import FILE_IDENTIFIER

    with path.open("rb") as file:
        head = file.read(8)
    names = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    if head[:1] == b"\x80" or any(n.endswith("data.pkl") for n in names):  # a pickle, or torch.save's archive
        raise UsageError(
            f"{path} is a PyTorch checkpoint, not a model: MODEL names the architecture (a zoo name, "
            "torchvision:NAME, timm:NAME or package.module:factory) and the checkpoint goes in --weights"
        )
    if names and all(n.endswith(".npy") for n in names):
        raise UsageError(f"{path} is a NumPy .npz of arrays, not a model: give it as --calib (or drift's --data)")
    if head[4:8] == FILE_IDENTIFIER:
        raise UsageError(f"{path} is a .tflite: edgecnn exports from PyTorch or ONNX; give the .onnx or the module")


def _onnx_source(
    path: Path,
    scaling: dict[str, Any],
    num_classes: int | None,
    in_chans: int | None,
    weights: str | Path | None,
    input_shape: InputShapes | None,
) -> ModelSource:
    import onnx

    check_file(path, "ONNX file")
    if scaling or num_classes or in_chans or weights:
        raise UsageError(
            "an ONNX MODEL is exported already: scaling, --num-classes, --in-chans and --weights do not apply"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and others for files that are not ONNX
        _refuse_known_format(path)
        raise UsageError(
            f"{path} is not an ONNX model: {str(error).splitlines()[0][:160] or type(error).__name__}; give the .onnx "
            "file as the exporter wrote it (this one is cut short or of another format)"
        ) from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = {  # None: the file gives the input no shape (not even its rank)
        i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.HasField("shape")
        else None
        for i in model.graph.input
        if i.name not in initializers
    }
    if not inputs:
        raise UsageError(
            f"{path} is not an ONNX model with inputs (its graph takes none): give the .onnx the exporter wrote"
        )
    given = _given_onnx_shapes(path, list(inputs), input_shape)
    batch = next(iter(given.values()))[0] if given else 1  # a free batch dim follows a given shape's
    shapes = {
        name: _onnx_input_shape(path, name, dims, given.get(name), len(inputs), batch) for name, dims in inputs.items()
    }
    if len({shape[0] for shape in shapes.values()}) > 1:
        raise UsageError(f"the inputs of {path} have different batch sizes: give each the same N")
    return ModelSource(
        "onnx",
        path.stem,
        next(iter(shapes.values())),
        onnx_path=path,
        weights={"path": str(path), "sha256": sha256_file(path)},
        inputs=shapes if len(shapes) > 1 else {},
    )


def _given_onnx_shapes(path: Path, names: list[str], given: InputShapes | None) -> dict[str, tuple[int, ...]]:
    """``--input-shape`` by input name: one unnamed shape is the single input's; named shapes must name inputs."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        if len(names) > 1:
            raise UsageError(
                f"{path} has {len(names)} inputs ({', '.join(names)}): name the one(s) --input-shape sets, "
                f"e.g. --input-shape {names[0]}=N,C,H,W"
            )
        return {names[0]: given}
    unknown = [name for name in given if name not in names]
    if unknown:
        raise UsageError(f"--input-shape names {', '.join(unknown)}, but the inputs of {path} are {', '.join(names)}")
    return dict(given)


def _onnx_input_shape(
    path: Path, name: str, dims: list[int | None] | None, given: tuple[int, ...] | None, count: int, batch: int
) -> tuple[int, ...]:
    """One input's N,C,H,W: ``given`` where it fits the file's dims (any, when the file gives none), else the
    file's own (a free batch as ``batch``)."""
    label = f"input '{name}' of {path}" if count > 1 else str(path)
    flag = f"--input-shape {name}=N,C,H,W" if count > 1 else "--input-shape N,C,H,W"
    if dims is None:
        if given is None:
            raise UsageError(f"{label} has no shape (the file gives none, not even its rank); give {flag}")
        return given
    if given is not None and (
        len(dims) != len(given) or any(d is not None and d != g for d, g in zip(dims, given, strict=False))
    ):
        shown = ",".join("?" if d is None else str(d) for d in dims)
        whose = "shape" if count > 1 else "input"
        raise UsageError(
            f"--input-shape {','.join(map(str, given))} does not fit {label}, whose {whose} is {shown} "
            "(? marks a free dimension): give those sizes or leave --input-shape out"
        )
    if given is not None:
        return given
    if len(dims) != 4:
        raise UsageError(
            f"{label} has shape {dims}, not N,C,H,W: edgecnn exports image models (non-image inputs are not "
            "supported yet)"
        )
    if any(d is None for d in dims[1:]):
        raise UsageError(f"{label} has shape {dims} with free dimensions; give {flag}")
    return (dims[0] or batch, *dims[1:])
