"""Device profiles: one YAML per device in ``device_profiles/``, validated on load."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgecnn.config.schema import Field, load_yaml, non_negative, positive, project_dir, validate, yaml_names, yaml_path
from edgecnn.costs.latency_model import LatencyModel
from edgecnn.costs.op_costs import OP_CLASSES
from edgecnn.errors import UsageError
from edgecnn.formats import FORMATS, RUNTIMES
from edgecnn.models.knobs import KNOBS, Knob
from edgecnn.models.registry import family_names

ARCHES = ("arm64", "armv7", "x86_64")
ISA_FEATURES = ("neon", "dotprod", "i8mm", "fp16", "sve", "sse4", "avx2", "avx512", "avx512_vnni", "avx_vnni")
DEFORM_LOWERINGS = ("native", "custom", "gather")  # how DeformConv reaches the device (see ExportOptions.deform)
TFLITE_DELEGATES = ("xnnpack", "nnapi")  # what runs the int8 .tflite on the device; xnnpack when not said


def _scaling_field(knob: Knob) -> Field:
    """A profile default for ``knob``: a number (a list of numbers for a list knob), valid as the knob table says."""
    numbers = (int, float)
    return Field(
        None if knob.many else numbers, required=False, items=numbers if knob.many else None, check=knob.problem
    )


def _all_positive(mapping: dict[str, float]) -> str | None:
    bad = [f"{k}={v}" for k, v in mapping.items() if not 0 < v < math.inf]
    return f"must all be finite and > 0, got {bad[0]}" if bad else None


MAX_BUDGET_MS = 3.6e6  # an hour per image: beyond any edge budget (and a chart's log axis overflows)


def _budget(value: float) -> str | None:
    """A latency budget: > 0 and at most MAX_BUDGET_MS."""
    return positive(value) or (
        None if value <= MAX_BUDGET_MS else f"must be at most {MAX_BUDGET_MS:g} ms, got {value:g}"
    )


_MEASUREMENT = {  # one measurement a latency coefficient was fitted to
    "source": Field(str),
    "model": Field(str, required=False),
    "config": Field(required=False, values=(int, float)),
    "threads": Field(int, required=False, check=positive),
    "ms": Field(float, required=False, check=positive),
}
_COEFFICIENTS = {
    "throughput_gops": Field(values=(int, float), check=_all_positive),  # per op class: G MACs or elements / s
    "bandwidth_gbps": Field(float, check=positive),
    "overhead_us": Field(float, check=non_negative),
    "fitted_to": Field(items=_MEASUREMENT),
}
LATENCY_SCHEMA = {
    "runtime": Field(str, choices=RUNTIMES),
    "threads": Field(int, check=positive),
    "vector_bytes": Field(
        int, required=False, choices=(8, 16, 32, 64)
    ),  # SIMD register bytes [default: from cpu.features]
    "fp32": Field(_COEFFICIENTS),
    "int8": Field(_COEFFICIENTS),
}

PROFILE_SCHEMA: dict[str, Field] = {
    "name": Field(str),
    "description": Field(str),
    "cpu": Field(
        {
            "arch": Field(str, choices=ARCHES),
            "model": Field(str),
            "cores": Field(int, check=lambda n: None if 1 <= n <= 1024 else f"must be from 1 to 1024, got {n}"),
            "clock_ghz": Field(float, check=positive),
            "features": Field(items=str, choices=ISA_FEATURES),
        }
    ),
    "memory_mb": Field(int, check=positive),
    "runtimes": Field(items=str, choices=RUNTIMES),
    "formats": Field(items=str, choices=tuple(FORMATS), check=lambda f: None if f else "must name at least one format"),
    "threads": Field(int, check=positive),
    "deform": Field(str, required=False, choices=DEFORM_LOWERINGS),
    "tflite_delegate": Field(str, required=False, choices=TFLITE_DELEGATES),
    "int8": Field(
        {
            "reduce_range": Field(bool),
            "reason": Field(str),
            "per_channel": Field(bool, required=False),
            "slower_op_types": Field(items=str, required=False),
            "slower_tflite_ops": Field(items=str, required=False),
        }
    ),
    "latency": Field(LATENCY_SCHEMA),
    "latency_budget_ms": Field(float, required=False, check=_budget),
    "memory_budget_mb": Field(float, required=False, check=positive),
    "defaults": Field(required=False, values={name: _scaling_field(knob) for name, knob in KNOBS.items()}),
    "sources": Field(items=str),
}


@dataclass(frozen=True)
class Profile:
    """A target device: CPU, runtimes and formats, threads, int8 kernel traits, per-family defaults."""

    name: str
    description: str
    arch: str
    cpu_model: str
    cores: int
    clock_ghz: float
    features: tuple[str, ...]
    memory_mb: int
    runtimes: tuple[str, ...]
    formats: tuple[str, ...]
    threads: int
    deform: str  # DeformConv lowering this device runs: native (ORT ≥ 1.25), custom (mmdeploy) or gather
    tflite_delegate: str  # what runs its int8 .tflite: xnnpack (LiteRT's default CPU delegate) or nnapi
    reduce_range: bool
    reduce_range_reason: str
    per_channel: bool  # int8 weights per output channel (False: the target's kernels take one scale per tensor)
    int8_slower_op_types: tuple[str, ...]  # ONNX op types whose int8 ORT kernels are slower than fp32 here
    int8_slower_tflite_ops: tuple[str, ...]  # TFLite builtin ops that make its int8 LiteRT graph slower
    latency: LatencyModel
    latency_budget_ms: float | None
    memory_budget_mb: float | None
    defaults: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    path: str = ""

    @property
    def is_arm(self) -> bool:
        """True for ARM CPUs (what `.ort` conversion targets with --target_platform arm)."""
        return self.arch.startswith("arm")

    def scaling_for(self, family: str) -> dict[str, float]:
        """The profile's default scaling options for a model family (empty when it has none)."""
        return dict(self.defaults.get(family, {}))

    def summary(self) -> dict[str, Any]:
        """Everything ``edgecnn profiles --json`` shows."""
        measurements = sum(len(c.fitted_to) for c in self.latency.coefficients.values())
        latency = self.latency.to_dict() | {"measurements": measurements}
        return {
            "name": self.name,
            "description": self.description,
            "cpu": {
                "arch": self.arch,
                "model": self.cpu_model,
                "cores": self.cores,
                "clock_ghz": self.clock_ghz,
                "features": list(self.features),
            },
            "memory_mb": self.memory_mb,
            "runtimes": list(self.runtimes),
            "formats": list(self.formats),
            "threads": self.threads,
            "deform": self.deform,
            "tflite_delegate": self.tflite_delegate,
            "reduce_range": self.reduce_range,
            "per_channel": self.per_channel,
            "latency_budget_ms": self.latency_budget_ms,
            "memory_budget_mb": self.memory_budget_mb,
            "latency": latency,
            "sources": list(self.sources),
            "path": self.path,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for manifests."""
        return {
            "name": self.name,
            "arch": self.arch,
            "cpu": self.cpu_model,
            "cores": self.cores,
            "features": list(self.features),
            "threads": self.threads,
            "deform": self.deform,
            "tflite_delegate": self.tflite_delegate,
            "reduce_range": self.reduce_range,
            "per_channel": self.per_channel,
            "formats": list(self.formats),
        }


def profiles_dir() -> Path:
    """Where the device profiles live (``$EDGECNN_DEVICE_PROFILES`` overrides)."""
    return project_dir("device_profiles")


def list_profiles() -> list[str]:
    """Names of the profiles in ``device_profiles/``."""
    return yaml_names(profiles_dir())


def _check_latency(latency: dict[str, Any], cores: int, where: str) -> None:
    for dtype in ("fp32", "int8"):
        classes = set(latency[dtype]["throughput_gops"])
        if classes != set(OP_CLASSES):
            wrong = sorted(classes ^ set(OP_CLASSES))[0]
            state = "unknown op class" if wrong in classes else "missing op class"
            known = ", ".join(OP_CLASSES)
            raise UsageError(f"{where}: latency.{dtype}.throughput_gops.{wrong}: {state} (classes: {known})")
    if latency["threads"] > cores:
        raise UsageError(f"{where}: latency.threads: {latency['threads']} is more than the {cores} cores")


def _check_consistency(data: dict[str, Any], where: str) -> None:
    if data["name"] != Path(where).stem:
        raise UsageError(f"{where}: name: '{data['name']}' does not match the file name")
    for family in data.get("defaults") or {}:
        if family not in family_names():
            raise UsageError(f"{where}: defaults.{family}: unknown family (known: {', '.join(family_names())})")
    _check_latency(data["latency"], data["cpu"]["cores"], where)
    if data["threads"] > data["cpu"]["cores"]:
        raise UsageError(f"{where}: threads: {data['threads']} is more than the {data['cpu']['cores']} cores")


def load_profile_file(path: Path) -> Profile:
    """Load and validate one profile YAML."""
    return profile_from_data(load_yaml(path), str(path))


def simd_bytes(features: list[str] | tuple[str, ...]) -> int:
    """The SIMD register width of a CPU with these ISA features: 64 with AVX-512, 32 with AVX2, else 16
    (NEON, SSE4); a profile's ``latency.vector_bytes`` when it gives none."""
    if any(f.startswith("avx512") for f in features):
        return 64
    return 32 if "avx2" in features else 16


def profile_from_data(data: Any, where: str) -> Profile:
    """Validate a profile's parsed YAML (errors name ``where`` and the field) and build the Profile."""
    validate(data, PROFILE_SCHEMA, where)
    _check_consistency(data, where)
    cpu = data["cpu"]
    return Profile(
        name=data["name"],
        description=data["description"],
        arch=cpu["arch"],
        cpu_model=cpu["model"],
        cores=cpu["cores"],
        clock_ghz=float(cpu["clock_ghz"]),
        features=tuple(cpu["features"]),
        memory_mb=data["memory_mb"],
        runtimes=tuple(data["runtimes"]),
        formats=tuple(data["formats"]),
        threads=data["threads"],
        deform=data.get("deform") or ("native" if "onnxruntime" in data["runtimes"] else "gather"),
        tflite_delegate=data.get("tflite_delegate") or TFLITE_DELEGATES[0],
        reduce_range=data["int8"]["reduce_range"],
        per_channel=data["int8"].get("per_channel", True),
        reduce_range_reason=data["int8"]["reason"],
        int8_slower_op_types=tuple(data["int8"].get("slower_op_types") or ()),
        int8_slower_tflite_ops=tuple(data["int8"].get("slower_tflite_ops") or ()),
        latency=LatencyModel.from_dict({"vector_bytes": simd_bytes(cpu["features"]), **data["latency"]}),
        latency_budget_ms=data.get("latency_budget_ms"),
        memory_budget_mb=data.get("memory_budget_mb"),
        defaults=data.get("defaults") or {},
        sources=tuple(data["sources"]),
        path=where,
    )


@cache
def _load_cached(path: Path) -> Profile:
    return load_profile_file(path)


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (``raspberrypi4``) or by path to a YAML file."""
    return _load_cached(yaml_path("profile", name_or_path, profiles_dir()).resolve())
