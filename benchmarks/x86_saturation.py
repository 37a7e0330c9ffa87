"""int8 on x86 without VNNI, computed: does an int8 graph keep its predictions on the x86-avx2 target's kernels?

ONNX Runtime's x86 int8 convolutions without VNNI multiply uint8 activations by int8 weights with ``vpmaddubsw``,
whose 16-bit pair sums saturate (255 × 127 × 2 > 32767); ``reduce_range`` (7-bit weights) is the usual guard, and
edgecnn's x86-avx2 profile sets it. This host has VNNI, whose kernels do not saturate, so its own runs cannot show
what the target computes. An x86 emulator can: qemu-user's ``qemu-x86_64 -cpu Haswell`` (AVX2, no AVX-512, no VNNI)
runs the same Python and ONNX Runtime with the CPU features that make ONNX Runtime pick the AVX2 kernels
(``_x86_kernels_run.py``; its ``--probe``, a 1×1 conv whose every pair sum saturates, is checked first and
recorded: exact natively, about half under the emulator). Emulated timing means nothing; the numerics are the
target's.

Each model is trained on the digits as in quant_peers (``fp32_model``, same held-out digits and calibration set)
and quantized six ways: ORT's ``quantize_static`` defaults and per-channel + reduce_range, and edgecnn's Quantizer
per channel and per tensor (equalized first), each with 8-bit weights, 7-bit weights, and — as edgecnn quantizes
for such a target — 8-bit except in the layers whose u8s8 pair sums saturate on the calibration samples
(``mixed``: ``pipeline.weight_bits``; the row's ``seven_bit_layers`` of ``layers``). Figures on the held-out
digits, against fp32: top-1 disagreements and logits cosine on the exact QDQ arithmetic (``qdq_*``), on this host's
kernels (``host_*``) and on the emulated AVX2-without-VNNI kernels (``avx2_*``), and the accuracy there.

The emulator is benchmark-only: ``--emulator PATH`` (else ``$EDGECNN_X86_EMULATOR``), a ``qemu-x86_64`` of
qemu-user ≥ 7.2 (TCG with AVX2). Without one, Debian's: ``apt-get download qemu-user libcapstone4 liburing2`` and
``dpkg-deb -x`` each into one ROOT; ``ROOT/usr/bin/qemu-x86_64`` then finds its libraries in
``ROOT/usr/lib/x86_64-linux-gnu``. Without an emulator the ``avx2_*`` figures say why they are missing. Run by
``make bench``; alone: ``python benchmarks/x86_saturation.py [--only NAME ...] [--emulator PATH]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import BENCH_DIR, write_result
from quant_peers import MODELS, Data, fp32_model, ort_quantize

from edgecnn.analysis.drift import figures
from edgecnn.errors import first_line
from edgecnn.runtime.loader import load

NAME = "x86_saturation"
RUNNER = BENCH_DIR / "_x86_kernels_run.py"
CPU = "Haswell"  # AVX2 and FMA, no AVX-512 and no VNNI: the x86-avx2 profile's CPU
DEFAULT_MODELS = ("mobilenet", "mobilenet_v2", "resnet", "efficientnet_b0", "mobilenet_v1_w025", "densenet", "dcn")
VARIANTS = (
    "ort_default",
    "ort_per_channel_reduce_range",
    "edgecnn_per_channel_8bit",
    "edgecnn_per_channel_7bit",
    "edgecnn_per_channel_mixed",
    "edgecnn_per_tensor_8bit",
    "edgecnn_per_tensor_7bit",
    "edgecnn_per_tensor_mixed",
)


def emulator(given: str | None) -> tuple[list[str] | None, dict[str, str], str | None]:
    """The command prefix that runs a program on the emulated CPU, its environment, and why there is none."""
    path = given or os.environ.get("EDGECNN_X86_EMULATOR")
    if not path:
        return None, {}, "not run (no emulator: --emulator or $EDGECNN_X86_EMULATOR)"
    if not Path(path).is_file():
        return None, {}, f"not run (no emulator at {path})"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    libs = Path(path).resolve().parents[1] / "lib" / "x86_64-linux-gnu"  # an unpacked .deb's ROOT/usr/lib
    if libs.is_dir():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    return [path, "-cpu", CPU], env, None


def run_kernels(args: list[str], prefix: list[str] | None = None, env: dict[str, str] | None = None) -> str:
    """``_x86_kernels_run.py`` with ``args``, natively or under the emulator ``prefix``; its stdout."""
    command = [*(prefix or []), sys.executable, str(RUNNER), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{RUNNER.name} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout


def quantizers(calib: np.ndarray, method: str) -> dict[str, Callable[[Path, Path], Any]]:
    """Each variant: (fp32, dst) → writes dst (and returns the row's extra figures, if any)."""
    from edgecnn.pipeline.quantize import Quantizer

    def edgecnn(per_channel: bool, bits: str) -> Callable[[Path, Path], dict[str, Any]]:
        def make(fp32: Path, dst: Path) -> dict[str, Any]:
            widen = bits == "mixed"  # 8-bit weights except where u8s8 saturates on the calibration samples
            with Quantizer(
                fp32, calib, per_channel=per_channel, equalize=not per_channel, widen_weights=widen
            ) as quantizer:
                info = quantizer.quantize(dst, method, reduce_range=bits != "8bit")
            chosen = info["weight_bits"]
            if not chosen:
                return {}
            seven = chosen["seven_bit"]
            return {"layers": chosen.get("layers"), "seven_bit_layers": seven if seven == "all" else len(seven)}

        return make

    return {
        "ort_default": lambda fp32, dst: ort_quantize(fp32, calib, dst),
        "ort_per_channel_reduce_range": lambda fp32, dst: ort_quantize(
            fp32, calib, dst, per_channel=True, reduce_range=True
        ),
        **{
            f"edgecnn_per_{granularity}_{bits}": edgecnn(granularity == "channel", bits)
            for granularity in ("channel", "tensor")
            for bits in ("8bit", "7bit", "mixed")
        },
    }


def _figures(prefix: str, reference: dict[str, np.ndarray], got: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    name = next(iter(reference))
    measured = figures(reference, {name: got}, labels)
    return {
        f"{prefix}_disagree": int(np.count_nonzero(got.argmax(1) != reference[name].argmax(1))),
        f"{prefix}_cosine": round(measured["cosine"], 4),
        f"{prefix}_accuracy": round(measured["target_accuracy"], 4),
    }


def measure(key: str, data: Data, work: Path, epochs: int, emulated: tuple) -> list[dict[str, Any]]:
    """One model's rows: per variant the figures on exact QDQ, this host's kernels and (emulator given) AVX2's."""
    from edgecnn.config.recipes import recipe_for_family

    prefix, env, missing = emulated
    fp32, family = fp32_model(key, data, work, epochs)
    reference = load(fp32).run_all(data.holdout)
    makers = quantizers(data.calib, recipe_for_family(family).method)
    rows, paths = [], {}
    for variant, make in makers.items():
        row: dict[str, Any] = {"model": key, "variant": variant}
        dst = work / f"{key}.{variant}.onnx"
        try:
            row.update(make(fp32, dst) or {})
            exact = next(iter(load(dst, optimization="disable").run_all(data.holdout).values()))
            host = next(iter(load(dst).run_all(data.holdout).values()))
            row.update(_figures("qdq", reference, exact, data.labels))
            row.update(_figures("host", reference, host, data.labels))
            paths[variant] = dst
        except Exception as error:  # a quantizer that fails on a graph is a finding, not a crash
            row["error"] = first_line(error)
        rows.append(row)
    if prefix is None:
        for row in rows:
            row.setdefault("avx2", missing)
        return rows
    inputs = work / "holdout.npy"
    np.save(inputs, data.holdout)
    run_kernels([str(inputs), *map(str, paths.values())], prefix, env)
    for row in rows:
        if row["variant"] in paths:
            got = np.load(str(paths[row["variant"]]) + ".out.npy")
            row.update(_figures("avx2", reference, got, data.labels))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure the models and write ``results/x86_saturation.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help=f"model keys (default: {', '.join(DEFAULT_MODELS)})")
    parser.add_argument("--emulator", default=None, help="qemu-x86_64 (qemu-user ≥ 7.2); else $EDGECNN_X86_EMULATOR")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs per model")
    args = parser.parse_args(argv)
    unknown = [k for k in args.only or () if k not in MODELS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    command = " ".join(["python benchmarks/x86_saturation.py", *(sys.argv[1:] if argv is None else argv)])
    emulated = emulator(args.emulator)
    probe: dict[str, Any] = {"native": float(run_kernels(["--probe"]))}
    if emulated[0] is not None:
        probe["emulated"] = float(run_kernels(["--probe"], emulated[0], emulated[1]))
        if abs(probe["emulated"] - probe["native"]) < 1:  # the emulated CPU's kernels do not saturate: no target
            emulated = None, {}, f"not run (the emulator's int8 kernels do not saturate: probe {probe['emulated']})"
    else:
        print(f"{NAME}: {emulated[2]}; the avx2 figures record that", file=sys.stderr)
    data = Data.make()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-x86-saturation-") as tmp:
        for key in args.only or DEFAULT_MODELS:
            start = time.perf_counter()
            try:
                rows += measure(key, data, Path(tmp), args.epochs, emulated)
            except Exception as error:  # one model that cannot be trained or run does not stop the others
                rows.append({"model": key, "variant": "fp32", "error": str(error)[:200]})
            print(f"{NAME}: {key} in {time.perf_counter() - start:.0f} s", flush=True)
            meta = {
                "description": (
                    f"{len(data.holdout)} held-out digits; `*_disagree`: digits whose int8 top-1 differs from fp32's; "
                    "`qdq_*` exact QDQ arithmetic (ORT, optimizations off), `host_*` this host's int8 kernels "
                    f"(its CPU has VNNI: no saturation), `avx2_*` ONNX Runtime's kernels on an emulated {CPU} CPU "
                    "(AVX2, no VNNI: the x86-avx2 target's). `*_8bit`/`*_7bit`: reduce_range off/on. "
                    "`probe`: a 1×1 conv whose u8s8 pair sums all saturate, exactly 64 without saturation."
                ),
                "emulator": " ".join(emulated[0]) if emulated[0] else emulated[2],
                "probe": probe,
                "command": command,
            }
            path = write_result(NAME, rows, meta)
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
