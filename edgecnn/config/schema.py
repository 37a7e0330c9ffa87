"""A small schema checker for the project's YAML files: every error names the file and the field."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgecnn.errors import UsageError, check_file, reading


@dataclass(frozen=True)
class Field:
    """One key of a mapping: its type (or nested schema), whether it is required, extra checks."""

    kind: type | tuple[type, ...] | dict[str, Field] | None = None
    required: bool = True
    choices: Sequence[Any] | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error message or None
    items: type | tuple[type, ...] | dict[str, Field] | None = None  # for lists
    values: dict[str, Field] | type | None = None  # for free-keyed mappings (family → options)


def positive(value: Any) -> str | None:
    """A check: the value must be finite and > 0."""
    if 0 < value < math.inf:
        return None
    return f"must be finite, got {value}" if value > 0 else f"must be > 0, got {value}"


def non_negative(value: Any) -> str | None:
    """A check: the value must be finite and ≥ 0."""
    if 0 <= value < math.inf:
        return None
    return f"must be finite, got {value}" if value >= 0 else f"must be ≥ 0, got {value}"


def _type_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return "a mapping" if isinstance(kind, dict) else kind.__name__


def _check_value(value: Any, kind: Any, where: str) -> None:
    if isinstance(kind, dict):
        validate(value, kind, where)
    elif kind is not None:
        numeric = kind in (float, (int, float)) and isinstance(value, int) and not isinstance(value, bool)
        if not numeric and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
            hint = ""
            if isinstance(value, str) and kind in (float, (int, float)) and _is_number(value):
                hint = f"; YAML reads {value} as text: write {float(value):.1e} (a dot and a signed exponent)"
            raise UsageError(f"{where}: expected {_type_name(kind)}, got {type(value).__name__} {value!r}{hint}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(data: Any, schema: dict[str, Field], where: str) -> None:
    """Raise a UsageError naming ``where`` and the field for any unknown, missing or bad value."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise UsageError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(schema)})")
    for key, field in schema.items():
        path = f"{where}.{key}" if ":" in where else f"{where}: {key}"
        if key not in data or data[key] is None:
            if field.required:
                raise UsageError(f"{path}: missing")
            continue
        value = data[key]
        if field.items is not None:
            if not isinstance(value, list):
                raise UsageError(f"{path}: expected a list, got {type(value).__name__}")
            for i, item in enumerate(value):
                _check_value(item, field.items, f"{path}[{i}]")
        elif field.values is not None:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: expected a mapping, got {type(value).__name__}")
            for sub, item in value.items():
                _check_value(item, field.values, f"{path}.{sub}")
        else:
            _check_value(value, field.kind, path)
        if field.choices is not None:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in field.choices]
            if bad:
                raise UsageError(f"{path}: '{bad[0]}' is not one of {', '.join(map(str, field.choices))}")
        if field.check is not None:
            message = field.check(value)
            if message:
                raise UsageError(f"{path}: {message}")


class _StrictLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses a mapping with the same key twice (the later one would win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def load_yaml(path: Path) -> Any:
    """Read a YAML file safely; a syntax error, non-UTF-8 or unreadable file is a UsageError naming it."""
    try:
        with reading(path, "YAML file", "save it as UTF-8 YAML"):
            text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: as safe as yaml.safe_load
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a profile or recipe") from None
    except ValueError:  # an integer of thousands of digits
        raise UsageError(f"{path} holds a number too long to read; write it with fewer digits") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}:{line} is not valid YAML: {getattr(error, 'problem', error)}") from None


def project_dir(name: str) -> Path:
    """The folder ``name`` (export_recipes, device_profiles): ``$EDGECNN_<NAME>`` if set, else the one of the
    checkout this package runs from, else the one a wheel installed under ``<prefix>/share/edgecnn/`` (a venv,
    ``--user`` or ``--prefix`` install: found from where the package sits)."""
    import os

    variable = f"EDGECNN_{name.upper()}"
    override = os.environ.get(variable)
    if override:
        if not os.path.isdir(override):
            fix = "point it at a folder of YAML files, or unset it"
            raise UsageError(f"{variable}={override} is not a directory: {fix}")
        return Path(override)
    here = Path(__file__).resolve()
    checkout = here.parents[2] / name
    if checkout.is_dir():
        return checkout
    for prefix in here.parents[2:6]:  # <prefix>/lib/pythonX.Y/site-packages/edgecnn/config/schema.py
        installed = prefix / "share" / "edgecnn" / name
        if installed.is_dir():
            return installed
    return checkout


def yaml_path(kind: str, name_or_path: str, folder: Path) -> Path:
    """The YAML file for ``name_or_path``: a path as given, or ``folder/<name>.yaml`` (did-you-mean when unknown)."""
    from edgecnn.errors import UnknownNameError

    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return check_file(name_or_path, f"{kind} file")
    known = yaml_names(folder)
    if name_or_path not in known:
        raise UnknownNameError(kind, name_or_path, known)
    return folder / f"{name_or_path}.yaml"


def yaml_names(folder: Path) -> list[str]:
    """The names of the regular ``*.yaml`` files in ``folder`` (FIFOs, sockets and directories are not ones)."""
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())
