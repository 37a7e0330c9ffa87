"""Fit a device profile's latency coefficients to the published measurements it lists (maintainers' tool).

A device with only a handful of published figures (XNNPACK's Raspberry Pi 4 table, TFLite's Pixel 4 page …)
cannot support a full fit of every op class. This tool keeps the *shape* of a fully fitted base profile
(``x86-avx2``, fitted by ``benchmarks/latency_fidelity.py`` on 34 measured probes) and fits two factors per
dtype — how much slower the device is in arithmetic and in memory/overhead — to the measurements listed
under ``latency.<dtype>.fitted_to`` (entries with ``model``, ``config``, ``ms``). With ``--write`` the
profile's ``latency:`` block is replaced in place (the rest of the file, comments included, is kept).

    python tools/fit_published_latency.py raspberrypi4 android-arm64 [--base x86-avx2] [--write]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace

import yaml

from edgecnn.config.profiles import load_profile, profiles_dir
from edgecnn.costs.latency_model import Coefficients, LatencyModel, Sample, channel_block, fit_scale, scale
from edgecnn.costs.op_costs import DTYPES


def measured_samples(entries: list[dict], dtype: str) -> list[Sample]:
    """The entries with a model and a latency, costed on the meta device at ``dtype``."""
    from edgecnn.costs.torch_op_costs import zoo_op_costs

    return [
        Sample(zoo_op_costs(e["model"], dtype, **(e.get("config") or {}))[0], float(e["ms"]), e["model"])
        for e in entries
        if "model" in e and "ms" in e
    ]


def fit_profile(name: str, base: LatencyModel) -> tuple[dict, list[str]]:
    """The new ``latency:`` block of profile ``name`` and one report line per measurement."""
    path = profiles_dir() / f"{name}.yaml"
    latency = load_profile(str(path)).latency  # vector_bytes as given, or from the CPU's ISA features
    entries = {dtype: list(latency.coefficients[dtype].fitted_to) for dtype in DTYPES}
    lines, coefficients, factors, measured = [], {}, {}, {}
    for dtype in DTYPES:
        measured[dtype] = measured_samples(entries[dtype], dtype)
        if measured[dtype]:
            channels = channel_block(latency.vector_bytes, dtype)  # the device's own SIMD width
            factors[dtype] = fit_scale(base.coefficients[dtype], measured[dtype], channels)
    if not factors:
        raise SystemExit(f"{path}: no latency.<dtype>.fitted_to entry has a model and ms")
    for dtype in DTYPES:  # a dtype without figures of its own borrows the other's factors
        compute, memory = factors.get(dtype) or next(iter(factors.values()))
        coefficients[dtype] = scale(base.coefficients[dtype], compute, memory, entries[dtype])
        model = replace(latency, coefficients={dtype: coefficients[dtype]})
        borrowed = "" if dtype in factors else " (borrowed)"
        lines.append(f"{name} {dtype}: compute ×{compute:.3g}, memory ×{memory:.3g}{borrowed}")
        for sample in measured[dtype]:
            predicted = model.predict(sample.costs).total_ms
            error = (predicted / sample.measured_ms - 1) * 100
            figures = f"measured {sample.measured_ms:7.1f} ms  fit {predicted:7.1f} ms  {error:+.0f}%"
            lines.append(f"  {sample.name:<22} {figures}")
    return replace(latency, coefficients=coefficients).to_dict(), lines


def replace_block(text: str, block: dict) -> str:
    """``text`` with its top-level ``latency:`` mapping replaced by ``block`` (other lines untouched)."""
    dumped = yaml.safe_dump({"latency": block}, sort_keys=False, allow_unicode=True, width=110)
    match = re.search(r"^latency:\n(?:^(?:[ #].*)?\n)*", text, flags=re.MULTILINE)
    if match is None:
        raise SystemExit("no top-level 'latency:' block to replace")
    return text[: match.start()] + dumped + text[match.end() :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--base", default="x86-avx2", help="the fully fitted profile whose shape is kept")
    parser.add_argument("--write", action="store_true", help="replace the latency block in the YAML files")
    args = parser.parse_args(argv)
    base = load_profile(args.base).latency
    if base is None or not all(isinstance(base.coefficients.get(d), Coefficients) for d in DTYPES):
        raise SystemExit(f"base profile {args.base} has no fitted latency model")
    for name in args.profiles:
        block, lines = fit_profile(name, base)
        print("\n".join(lines))
        if args.write:
            path = profiles_dir() / f"{name}.yaml"
            path.write_text(replace_block(path.read_text(encoding="utf-8"), block), encoding="utf-8")
            load_profile(str(path))  # the new file validates
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
