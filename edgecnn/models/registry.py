"""One registry for every network of the zoo, in the style of timm and torchvision.

A family module declares each of its families once with :func:`declare_family` (knob ranges of its own,
the planner's grid, how a candidate's accuracy is expected, its published top-1 table) and registers one
builder per network with :func:`register_model`; :func:`create_model` and :func:`list_models` are the
public entry points. Neither importing nor reading the registry imports torch: the family modules are
imported the first time it is read (the families they declare are listed in ``FAMILY_MODULES``), and import
their torch modules (``edgecnn/models/nets/``) only when a builder is called.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecnn.errors import UnknownNameError, UsageError
from edgecnn.models.knobs import KNOBS, RESOLUTION, Knob, input_size

if TYPE_CHECKING:
    from edgecnn.models.accuracy import Expectation, Table

# Adding a family: write edgecnn/models/<module>.py (declare_family, then its @register_model builders, which
# import the network from edgecnn/models/nets/<module>.py when called: no torch at module level) and add its line
# here, module → the families it declares.
FAMILY_MODULES: dict[str, tuple[str, ...]] = {
    "resnet": ("resnet",),
    "densenet": ("densenet",),
    "mobilenet": ("mobilenet", "mobilenet_v2", "mobilenet_v3"),
    "efficientnet": ("efficientnet", "efficientnet_lite"),
    "dcn": ("dcn",),
}


def family_names() -> tuple[str, ...]:
    """Every family of the zoo, in ``FAMILY_MODULES`` order, without importing a family module."""
    return tuple(family for families in FAMILY_MODULES.values() for family in families)


@dataclass(frozen=True)
class Reference:
    """A published figure for a network, with where it was published."""

    params_m: float | None = None
    macs_m: float | None = None
    top1: float | None = None
    source: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network before it is built."""

    name: str
    family: str
    builder: Callable[..., Any]
    resolution: int
    knobs: tuple[str, ...]
    reference: Reference = field(default_factory=Reference)
    description: str = ""


Candidate = tuple[str, dict[str, float]]  # a zoo model and the scaling it is built with
DEFAULT_NUM_CLASSES = 1000  # a zoo network's classes unless num_classes says otherwise (ImageNet's)


@dataclass(frozen=True)
class Family:
    """What a family module declares about a family besides its builders."""

    name: str
    knobs: dict[str, Knob] = field(default_factory=dict)  # knobs whose valid values differ from the table's
    grid: tuple[Candidate, ...] = ()  # the candidates the planner weighs; none: the family is not plannable
    # The expected top-1 of a candidate: (model, scaling, MACs) → Expectation.
    accuracy: Callable[[str, dict[str, float], float], Expectation] | None = None
    table: Table | None = None  # its published top-1 table

    def knob(self, name: str) -> Knob:
        """The knob ``name`` with the values this family takes."""
        return self.knobs.get(name, KNOBS[name])


_REGISTRY: dict[str, ModelInfo] = {}
_FAMILIES: dict[str, Family] = {}
_ALIASES: dict[str, str] = {"mobilenet": "mobilenet_v1"}
_loaded = False


def declare_family(
    name: str,
    *,
    knobs: Iterable[Knob] = (),
    grid: Iterable[Candidate] = (),
    accuracy: Callable[[str, dict[str, float], float], Expectation] | None = None,
    table: Table | None = None,
) -> Family:
    """Declare a family listed in ``FAMILY_MODULES``, once, before registering its models.

    ``knobs`` are knobs of the table with this family's own valid values; ``grid`` the candidates the
    planner weighs, ``accuracy`` the expected top-1 of one of them (model, scaling, MACs); ``table`` the
    published top-1 table the family reads (:mod:`edgecnn.models.accuracy`).
    """
    if name not in family_names():
        raise ValueError(f"family '{name}' is not listed in FAMILY_MODULES")
    if name in _FAMILIES:
        raise ValueError(f"family '{name}' declared twice")
    own = {knob.name: knob for knob in knobs}
    if set(own) - set(KNOBS):
        raise ValueError(f"family '{name}': no knob {', '.join(sorted(set(own) - set(KNOBS)))} in the knob table")
    grid = tuple(grid)
    if grid and accuracy is None:
        raise ValueError(f"family '{name}' has a planner grid but no accuracy")
    family = Family(name, own, grid, accuracy, table)
    _FAMILIES[name] = family
    return family


def register_model(
    family: str,
    resolution: int = 224,
    reference: Reference | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder under its function name, in a family declared before (:func:`declare_family`).

    The builder must take ``num_classes`` and ``in_chans``; its other keyword arguments named in the
    knob table (:mod:`edgecnn.models.knobs`) become the model's scaling options, with the resolution,
    which every model takes.
    """

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        name = builder.__name__
        if family not in _FAMILIES:
            raise ValueError(f"family '{family}' of '{name}' is not declared (declare_family, FAMILY_MODULES)")
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        params = inspect.signature(builder).parameters
        for required in ("num_classes", "in_chans"):
            if required not in params:
                raise TypeError(f"builder '{name}' must take '{required}'")
        knobs = (*(k for k in KNOBS if k in params and k != RESOLUTION.name), RESOLUTION.name)
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelInfo(
            name=name,
            family=family,
            builder=builder,
            resolution=resolution,
            knobs=knobs,
            reference=reference or Reference(),
            description=doc[0] if doc else "",
        )
        return builder

    return decorator


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in FAMILY_MODULES:
            importlib.import_module(f"edgecnn.models.{module}")
        missing = [family for family in family_names() if family not in _FAMILIES]
        if missing:
            raise ValueError(f"families listed in FAMILY_MODULES but never declared: {', '.join(missing)}")
        _loaded = True


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Names of the registered models, sorted, filtered by a glob pattern or family."""
    _load()
    names = sorted(_REGISTRY)
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob) or _REGISTRY[n].family == pattern]
    if family:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


def list_families() -> list[str]:
    """The model families, sorted."""
    _load()
    return sorted({info.family for info in _REGISTRY.values()})


def get_family(name: str) -> Family:
    """What the family ``name`` declares."""
    _load()
    if name not in _FAMILIES:
        raise UnknownNameError("family", name, _FAMILIES)
    return _FAMILIES[name]


def plannable_families() -> tuple[str, ...]:
    """The families with a planner grid, in ``FAMILY_MODULES`` order."""
    _load()
    return tuple(family for family in family_names() if _FAMILIES[family].grid)


def accuracy_tables() -> dict[str, Table]:
    """The published top-1 tables the families declare, by name."""
    _load()
    return {family.table.name: family.table for family in _FAMILIES.values() if family.table is not None}


def unalias(name: str) -> str:
    """The model an alias stands for; any other name unchanged."""
    return _ALIASES.get(name, name)


def resolve_name(name: str) -> str:
    """The registered name for ``name`` or one of its aliases; a did-you-mean error otherwise."""
    _load()
    name = unalias(name)
    if name not in _REGISTRY:
        raise UnknownNameError("model", name, list(_REGISTRY) + list(_ALIASES))
    return name


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of a model (aliases allowed)."""
    return _REGISTRY[resolve_name(name)]


def create_model(name: str, num_classes: int = DEFAULT_NUM_CLASSES, in_chans: int = 3, **scaling: Any) -> Any:
    """Build a zoo network by name with its scaling options (width, depth, phi, resolution …).

    The returned ``torch.nn.Module`` carries ``model_name``, ``family``,
    ``scaling`` and ``input_size`` (C, H, W) attributes.
    """
    info = get_model_info(name)
    unknown = sorted(set(scaling) - set(info.knobs))
    if unknown:
        takes = ", ".join(k for k in info.knobs) or "no scaling options"
        raise UsageError(f"model '{info.name}' has no option {', '.join(unknown)}; it takes: {takes}")
    family = _FAMILIES[info.family]
    for key, value in scaling.items():
        if value is not None:
            family.knob(key).check(value)
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(in_chans, int) and in_chans >= 1):
        raise UsageError(f"in_chans must be a positive integer, got {in_chans!r}")
    resolution = scaling.pop(RESOLUTION.name, None)
    knobs = {k: v for k, v in scaling.items() if v is not None}
    model = info.builder(num_classes=num_classes, in_chans=in_chans, **knobs)
    size = input_size(resolution, getattr(model, "default_resolution", info.resolution))
    model.model_name = info.name
    model.family = info.family
    model.scaling = {**knobs, RESOLUTION.name: size}
    model.input_size = (in_chans, size, size)
    return model
