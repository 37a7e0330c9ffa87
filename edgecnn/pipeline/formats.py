"""The table of export formats: it drives the CLI's --format, validation, the report and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UnknownNameError, UsageError


@dataclass(frozen=True)
class Format:
    """One deployable format: its files, the stages that make it, the runtime that runs it."""

    name: str
    suffix: str
    description: str
    stages: tuple[str, ...]
    runtime: str
    available: bool = True
    note: str = ""


FORMATS: dict[str, Format] = {
    "onnx": Format(
        "onnx",
        ".onnx",
        "ONNX fp32 and QDQ int8, for ONNX Runtime",
        ("export", "parity", "simplify", "quantize", "agreement"),
        "onnxruntime",
    ),
    "ort": Format(
        "ort",
        ".ort",
        "ONNX Runtime mobile format (fp32, int8) + reduced-operator config",
        ("export", "parity", "simplify", "quantize", "ort", "agreement"),
        "onnxruntime",
    ),
    "tflite": Format(
        "tflite",
        ".tflite",
        "TFLite flatbuffer for LiteRT (fp32), lowered without TensorFlow",
        ("export", "parity", "simplify", "tflite"),
        "tflite",
    ),
}


def parse_formats(text: str | None, profile_formats: tuple[str, ...]) -> tuple[str, ...]:
    """'onnx,ort' → ('onnx', 'ort'); default: the profile's formats that edgecnn can write. ONNX always comes."""
    if text is None:
        chosen = [f for f in profile_formats if f in FORMATS and FORMATS[f].available]
    else:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        if not chosen:
            raise UsageError("--format needs at least one format")
        for name in chosen:
            if name not in FORMATS:
                raise UnknownNameError("format", name, FORMATS)
            if not FORMATS[name].available:
                raise UsageError(f"format '{name}' is {FORMATS[name].note}")
    return tuple(dict.fromkeys(["onnx", *chosen]))
