"""The SPEC.yaml of ``edgecnn sweep``: validated on load (config.schema), expanded into cells, each keyed by a hash.

A list is a grid axis: in a model entry (its knobs), in ``profiles`` and in ``export`` (export()'s options).
``exclude`` rules drop the cells whose values all match. Relative paths are read from the spec's folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn.applies import Rules, check_applies
from edgecnn.config.schema import Field, load_yaml, positive, validate
from edgecnn.errors import UsageError, check_file
from edgecnn.models.knobs import KNOBS
from edgecnn.pipeline.source import code_identity, sha256_file

# export() options a spec's `export:` may not set: each cell's model, profile and output are the sweep's.
NOT_EXPORT_OPTIONS = {
    "given",
    "model",
    "profile",
    "out",
    "force",
    "scaling",
    "weights",
    "num_classes",
    "in_chans",
    "input_shape",
}
MODEL_ONLY = {"weights": str, "calib": str, "num_classes": int, "in_chans": int, "input_shape": str}
PATH_OPTIONS = ("calib", "weights", "recipe")  # read from files: resolved against the spec's folder, hashed
LOCAL = "local"  # where a bench runs when the spec names no hosts: this machine
BENCH_ARTIFACTS = ("int8_onnx", "fp32_onnx", "int8_ort", "fp32_ort", "int8_tflite", "fp32_tflite")


def _option_kinds() -> dict[str, Any]:
    """export()'s options with the type a spec value must have, read from ExportOptions' annotations."""
    from edgecnn.pipeline.context import ExportOptions

    kinds = {"bool": bool, "int": int, "float": (int, float), "str": str, "Path": str}
    found = {}
    for option in fields(ExportOptions):
        if option.name in NOT_EXPORT_OPTIONS:
            continue
        first = str(option.type).split("|")[0].strip()
        found[option.name] = kinds.get(first)
    return found


def _host_schema() -> dict[str, Field]:
    return {
        "host": Field(str),
        "port": Field(int, required=False, check=positive),
        "identity": Field(str, required=False),
        "known_hosts": Field(str, required=False),
        "python": Field(str, required=False),
    }


BENCH_SCHEMA: dict[str, Field] = {
    "artifacts": Field(items=str, required=False, choices=BENCH_ARTIFACTS),
    "hosts": Field(items=None, required=False),  # each a [USER@]HOST string or a mapping (_host_schema)
    "runs": Field(int, required=False, check=positive),
    "warmup": Field(int, required=False),
    "threads": Field(int, required=False, check=positive),
    "budget_s": Field(float, required=False, check=positive),
    "timeout": Field(float, required=False, check=positive),
}


def _spec_schema() -> dict[str, Field]:
    return {
        "models": Field(items=dict),
        "profiles": Field(items=str),
        "export": Field(dict, required=False),
        "bench": Field(BENCH_SCHEMA, required=False),
        "exclude": Field(items=dict, required=False),
    }


@dataclass(frozen=True)
class Cell:
    """One export of the grid: its model, scaling, profile and options, and the hash that names it."""

    key: str
    model: str
    profile: str
    scaling: dict[str, Any]
    options: dict[str, Any]  # export() keyword arguments (paths absolute), the model's own ones included
    axes: dict[str, Any]  # the grid values that vary or were given: for labels, exclude rules and the summary

    @property
    def label(self) -> str:
        """A short human name: model, knobs, profile, and the options that are grid axes."""
        parts = [self.axes["model"], *(f"{k}={v}" for k, v in self.scaling.items()), self.profile]
        parts += [f"{k}={v}" for k, v in self.axes.items() if k not in ("model", "profile", *self.scaling)]
        return " ".join(str(p) for p in parts)


@dataclass
class Spec:
    """A loaded SPEC: its cells in grid order, the bench settings (or None) and where it came from."""

    path: str
    cells: list[Cell]
    bench: dict[str, Any] | None = None
    hosts: list[dict[str, Any]] = field(default_factory=list)
    # where an import-path MODEL is found after a worker's own sys.path: the spec's folder, the driver's directory
    search: tuple[str, ...] = ()


def _axis(value: Any, many: bool = False) -> list[Any]:
    """A value as a grid axis: a list is one (for a list-valued knob, a list of lists is), anything else one value."""
    if many:
        return value if isinstance(value, list) and value and all(isinstance(v, list) for v in value) else [value]
    return value if isinstance(value, list) else [value]


def _resolve(value: str, base: Path, what: str, where: str) -> str:
    """A file or folder path of the spec, made absolute against the spec's folder; it must exist."""
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise UsageError(f"{where}: {what} {value} does not exist (relative paths are read from {base})")
    return str(path)


def _is_path(option: str, value: Any) -> bool:
    """Whether an option's value names a file or folder (a recipe may also be a family's name)."""
    if option not in PATH_OPTIONS or not isinstance(value, str):
        return False
    return option != "recipe" or value.endswith((".yaml", ".yml")) or "/" in value


def _is_file_source(name: str) -> bool:
    return name.lower().endswith(".onnx")


def _check_model(name: str, knobs: list[str], own: dict[str, Any], at: str) -> None:
    """What export would refuse of a model entry, said on load rather than by every cell after it started: knobs or
    model options for a .onnx file, an unknown zoo name, a knob the zoo model lacks."""
    if _is_file_source(name):
        if knobs or any(own.get(k) is not None for k in ("weights", "num_classes", "in_chans")):
            raise UsageError(
                f"{at}: an ONNX MODEL is exported already: scaling, num_classes, in_chans and weights do not apply"
            )
        return
    if ":" in name:  # torchvision:NAME, timm:NAME, package.module:factory: known once imported, by the cell
        return
    from edgecnn.models.registry import get_model_info

    try:
        info = get_model_info(name)
    except UsageError as error:
        raise UsageError(f"{at}.name: {error}") from None
    lacks = [knob for knob in knobs if knob not in info.knobs]
    if lacks:
        takes = ", ".join(info.knobs) or "no scaling options"
        raise UsageError(f"{at}: model '{info.name}' has no option {', '.join(lacks)}; it takes: {takes}")


def _models(
    entries: list[dict[str, Any]], base: Path, where: str
) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """Each model entry as (name as written, source, its scaling combinations, its own export options)."""
    schema = {"name": Field(str), **{k: Field(t, required=False) for k, t in MODEL_ONLY.items()}}
    schema |= {name: Field(None, required=False) for name in KNOBS}
    models = []
    for i, entry in enumerate(entries):
        at = f"{where}: models[{i}]"
        validate(entry, schema, at)
        name = source = entry["name"]
        if _is_file_source(name):
            source = _resolve(name, base, "model", at)
            check_file(source, "model")
        grids = []
        for knob_name, knob in KNOBS.items():
            if entry.get(knob_name) is None:
                continue
            values = _axis(entry[knob_name], knob.many)
            for value in values:
                problem = knob.problem(value)
                if problem:
                    raise UsageError(f"{at}.{knob_name}: {problem}")
            grids.append([(knob_name, v) for v in values])
        own = {k: entry[k] for k in MODEL_ONLY if entry.get(k) is not None}
        _check_model(name, [knob for knob, _ in (combo[0] for combo in grids)], own, at)
        for key in PATH_OPTIONS:
            if _is_path(key, own.get(key)):
                own[key] = _resolve(own[key], base, key, f"{at}.{key}")
        models.append((name, source, [dict(combo) for combo in itertools.product(*grids)], own))
    return models


def _export_axes(section: dict[str, Any] | None, base: Path, where: str) -> dict[str, list[Any]]:
    """The `export:` section: each option validated by its type and turned into an axis (paths absolute)."""
    section = section or {}
    kinds = _option_kinds()
    at = f"{where}: export"
    validate(section, {name: Field(None, required=False) for name in kinds}, at)
    axes = {}
    for name, value in section.items():
        if value is None:
            continue
        values = _axis(value)
        if not values:
            raise UsageError(f"{at}.{name}: an empty list makes no cells")
        for index, item in enumerate(values):
            validate({name: item}, {name: Field(kinds[name])}, f"{at}[{index}]" if len(values) > 1 else at)
            if _is_path(name, item):
                values[index] = _resolve(item, base, name, f"{at}.{name}")
        axes[name] = values
    return axes


def _bench(section: dict[str, Any] | None, where: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The bench settings and the host pool (each host a mapping of bench()'s SSH options)."""
    if section is None:
        return None, []
    if not isinstance(section.get("hosts") or [], list):
        raise UsageError(f"{where}: bench.hosts: expected a list of [USER@]HOST or mappings")
    hosts = []
    for i, host in enumerate(section.get("hosts") or []):
        host = {"host": host} if isinstance(host, str) else host
        validate(host, _host_schema(), f"{where}: bench.hosts[{i}]")
        hosts.append(host)
    names = [h["host"] for h in hosts]
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: bench.hosts: a host is listed twice")
    settings = {k: v for k, v in section.items() if k != "hosts" and v is not None}
    from edgecnn.bench.api import check_timing

    try:  # now, not as each cell's bench error after its export
        check_timing(**{k: v for k, v in settings.items() if k != "artifacts"})
    except UsageError as error:
        raise UsageError(f"{where}: bench: {error}") from None
    settings.setdefault("artifacts", ["int8_onnx"])
    return settings, hosts


def _matches(rule: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether every key of an exclude rule matches (a list: any of its values; of a list-valued knob, a list of
    lists is)."""
    return all(values.get(key) in _axis(wanted, key in KNOBS and KNOBS[key].many) for key, wanted in rule.items())


def _key(
    cell: dict[str, Any], bench: dict[str, Any] | None, profile_path: str, search: tuple[str, ...], memo: dict[str, Any]
) -> str:
    """The hash of everything that determines a cell: source (a file's hash, a factory's code or library version),
    data hashes, options, profile, version. ``memo`` keeps each file's hash for the other cells of this load."""

    def once(what: str, value: str, make: Any) -> Any:
        if (what, value) not in memo:
            memo[what, value] = make(value)
        return memo[what, value]

    options = dict(cell["options"])
    hashed = {k: once("sha256", options[k], sha256_file) for k in PATH_OPTIONS if _is_path(k, options.get(k))}
    source = cell["model"]
    if _is_file_source(source):
        identity: Any = {"file": Path(source).name, "sha256": once("sha256", source, sha256_file)}
    else:
        found = ":" in source and "/" not in source
        identity = once("code", source, lambda spec: code_identity(spec, search)) if found else source
    what = {
        "source": identity,
        "scaling": cell["scaling"],
        "profile": {
            "name": cell["profile"],
            "sha256": once("sha256", profile_path, sha256_file) if profile_path else None,
        },
        "options": {k: (hashed.get(k) if k in hashed else v) for k, v in sorted(options.items())},
        "bench": {k: v for k, v in (bench or {}).items()},
        "edgecnn": __version__,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


@cache
def _bench_rules() -> Rules:
    """Each artifact `bench: artifacts:` may name needs its format, an int8 one the int8 artifacts too."""
    from edgecnn.formats import FORMATS

    needs = {
        artifact: (*(("int8",) if artifact.startswith("int8") else ()), f"format:{fmt.name}")
        for fmt in FORMATS.values()
        for artifact in fmt.artifacts
        if artifact in BENCH_ARTIFACTS
    }
    return Rules("sweep", needs, flags={artifact: f"bench: artifacts: {artifact}" for artifact in needs})


def _check_cell(
    source: str,
    options: dict[str, Any],
    profile_formats: tuple[str, ...],
    where: str,
    benched: tuple[str, ...] = (),
) -> None:
    """A cell's options held to the export's checks and option rules now (values, int8, formats, an ONNX MODEL),
    not on a worker later; so are the artifacts its bench times (a cell that does not make one would time nothing,
    unsaid)."""
    from edgecnn.formats import parse_formats
    from edgecnn.pipeline.context import check_static_options, given_options, static_scopes
    from edgecnn.pipeline.export import check_options

    try:
        check_options(source, options)
        formats = parse_formats(options.get("formats"), profile_formats)
        quantize = options.get("quantize", True)
        check_static_options(given_options(options), quantize, formats)
        check_applies(_bench_rules(), benched, static_scopes(quantize, formats))
    except UsageError as error:
        raise UsageError(f"{where}: {error} (an exclude: rule leaves such cells out)") from None


def load_spec(spec: str | Path | dict[str, Any]) -> Spec:
    """Load and validate SPEC (a YAML path or an already-read mapping) and expand it into its cells."""
    from edgecnn.config.profiles import load_profile

    if isinstance(spec, dict):
        data, where, base = spec, "spec", Path.cwd()
    else:
        path = check_file(spec, "sweep spec")
        data, where, base = load_yaml(path), str(path), path.resolve().parent
    validate(data, _spec_schema(), where)
    models = _models(data["models"], base, where)
    profiles = list(dict.fromkeys(data["profiles"]))
    profile_paths, profile_formats = {}, {}
    for i, name in enumerate(profiles):
        try:
            profile_paths[name] = str(load_profile(name).path or "")
            profile_formats[name] = load_profile(name).formats
        except UsageError as error:
            raise UsageError(f"{where}: profiles[{i}]: {error}") from None
    axes = _export_axes(data.get("export"), base, where)
    bench, hosts = _bench(data.get("bench"), where)
    rules = data.get("exclude") or []
    known = {"model", "profile", *KNOBS, *axes}
    for i, rule in enumerate(rules):
        unknown = sorted(set(rule) - known)
        if unknown:
            raise UsageError(f"{where}: exclude[{i}]: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    names = list(axes)
    cells, seen, used, memo = [], set(), set(), {}
    search = tuple(dict.fromkeys([str(base.resolve()), os.getcwd()]))
    benched = tuple((bench or {}).get("artifacts", ()))
    for name, source, scalings, own in models:
        for scaling in scalings:
            for profile in profiles:
                for combo in itertools.product(*(axes[n] for n in names)):
                    options = {**dict(zip(names, combo, strict=True)), **own}
                    shown = {"model": name, "profile": profile, **scaling}
                    shown |= {n: v for n, v in zip(names, combo, strict=True) if len(axes[n]) > 1}
                    values = {"model": name, "profile": profile, **scaling, **options}
                    matched = {i for i, rule in enumerate(rules) if _matches(rule, values)}
                    if matched:
                        used |= matched
                        continue
                    _check_cell(source, options, profile_formats[profile], f"{where}: cell {shown}", benched)
                    raw = {"model": source, "profile": profile, "scaling": scaling, "options": options}
                    key = _key(raw, bench, profile_paths[profile], search, memo)
                    if key in seen:
                        continue
                    seen.add(key)
                    cells.append(Cell(key, source, profile, scaling, options, shown))
    unused = [i for i in range(len(rules)) if i not in used]
    if unused:  # a misspelt value would leave in the cells it was meant to take out, unsaid
        raise UsageError(
            f"{where}: exclude[{unused[0]}] matches no cell of the grid, so it leaves nothing out: give values of "
            "the grid (model names as written, profiles, knob and export values), or drop the rule"
        )
    if not cells:
        raise UsageError(f"{where}: the grid has no cells (every one is excluded?)")
    return Spec(where, _told_apart(cells), bench, hosts, search)


def _told_apart(cells: list[Cell]) -> list[Cell]:
    """``cells`` with the options that tell apart cells of one label (model entries that differ only in weights,
    calib or input_shape) added to their axes, so that the progress, the summary and the charts name each."""
    groups: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        groups.setdefault(cell.label, []).append(index)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        keys = sorted({k for i in indices for k in cells[i].options})
        differing = [k for k in keys if len({repr(cells[i].options.get(k)) for i in indices}) > 1]
        for i in indices:
            shown = {k: _short(cells[i].options.get(k)) for k in differing}
            cells[i] = replace(cells[i], axes={**cells[i].axes, **shown})
    return cells


def _short(value: Any) -> Any:
    """A path option as its file name (the label's, not the path's, job)."""
    return Path(value).name if isinstance(value, str) and os.sep in value else value
