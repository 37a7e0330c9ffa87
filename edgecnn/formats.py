"""The table of deployable formats: one row each, and every other list of formats is read from it.

A row owns the file suffixes a runtime loads, the runtime that runs them, the export stages that make
them, the manifest's artifact keys and the export options that apply only to it. The CLI's ``--format``
choices, option validation, the profile schema, the runtime loader, ``edgecnn bench`` and the manifest
read this table (the standalone ``bench/harness.py`` keeps a literal copy, tested equal). Adding a format
is a row here plus the stage that makes it (``pipeline/stages.py``).

Standard library only: every layer of edgecnn may import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UnknownNameError, UsageError


@dataclass(frozen=True)
class Format:
    """One deployable format."""

    name: str
    description: str
    suffixes: tuple[str, ...]  # what a runtime loads; the first is the artifacts' suffix
    runtime: str  # onnxruntime | tflite: which loader runs it (runtime/loader.py, bench/harness.py)
    stages: tuple[str, ...]  # the export stages that check and make its artifacts (run only when it is chosen;
    # a failure in one of them drops this format, not the export, unless it is ALWAYS)
    artifacts: tuple[str, ...]  # manifest keys of the artifacts it adds
    options: tuple[str, ...] = ()  # export options that apply only to this format (ExportOptions fields)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "onnx",
            "ONNX fp32 and QDQ int8, for ONNX Runtime",
            (".onnx",),
            "onnxruntime",
            ("simplify", "quantize"),
            ("fp32_onnx", "int8_onnx"),
        ),
        Format(
            "ort",
            "ONNX Runtime mobile format (fp32, int8) + reduced-operator config",
            (".ort",),
            "onnxruntime",
            ("ort",),
            ("fp32_ort", "int8_ort", "fp32_ort_config", "int8_ort_config"),
        ),
        Format(
            "tflite",
            "TFLite flatbuffer for LiteRT (fp32, full int8), lowered without TensorFlow",
            (".tflite",),
            "tflite",
            ("tflite_ops", "tflite"),
            ("fp32_tflite", "int8_tflite"),
            ("nchw_io", "tflite_io"),
        ),
    )
}
ALWAYS = "onnx"  # every export makes the ONNX artifacts: the other formats are made from them
RUNTIMES: tuple[str, ...] = tuple(dict.fromkeys(f.runtime for f in FORMATS.values()))
SUFFIXES: dict[str, Format] = {suffix: f for f in FORMATS.values() for suffix in f.suffixes}


def known_suffixes() -> str:
    """'.onnx, .ort, .tflite' (for messages)."""
    return ", ".join(SUFFIXES)


def format_of(path: str | Path) -> Format | None:
    """The format of an artifact file by its suffix (case-insensitive), None when it is none of ours."""
    return SUFFIXES.get(Path(path).suffix.lower())


def require_format(path: str | Path) -> Format:
    """The format of ``path``; a one-line error naming the known suffixes otherwise."""
    found = format_of(path)
    if found is None:
        raise UsageError(
            f"cannot run {path}: unknown artifact format '{Path(path).suffix}' (known: {known_suffixes()}); "
            "name the file for its format"
        )
    return found


def parse_formats(text: str | None, profile_formats: Iterable[str]) -> tuple[str, ...]:
    """'onnx,ort' → ('onnx', 'ort'); default: the profile's formats. ONNX always comes first."""
    if text is None:
        chosen = [f for f in profile_formats if f in FORMATS]
    else:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        if not chosen:
            raise UsageError("--format needs at least one format")
        for name in chosen:
            if name not in FORMATS:
                raise UnknownNameError("format", name, FORMATS)
    return tuple(dict.fromkeys([ALWAYS, *chosen]))


def stage_formats() -> dict[str, tuple[str, ...]]:
    """Stage name → the formats whose artifacts it makes (a stage runs when one of them is chosen)."""
    made: dict[str, tuple[str, ...]] = {}
    for fmt in FORMATS.values():
        for stage in fmt.stages:
            made[stage] = (*made.get(stage, ()), fmt.name)
    return made
