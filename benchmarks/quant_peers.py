"""int8 post-training quantizers side by side: ORT's quantize_static, NNCF and edgecnn on the same fp32 ONNX.

Each model is trained here on scikit-learn's digits (32×32, 1 channel, 10 classes; ``tests/fixtures/digits.py``),
exported once to fp32 ONNX (``export_onnx`` + ``simplify``, dynamic batch) and quantized by every quantizer with
per-channel and with per-tensor weights, all calibrated on the same ``CALIB`` training digits and judged on
``HELD_OUT`` digits no model was trained on. Figures: top-1 agreement with fp32 and accuracy, on the exact QDQ
arithmetic (ORT, graph optimizations off) and on this host's int8 kernels (optimizations on), from
``int8_computations``; the mean cosine of the logits (exact QDQ); ORT latency at 1 thread, batch 1, min and p50 over
interleaved rounds of every quantizer of a model (``time_callable`` per round) in ``LOADS`` loads (each in another
order, a ballast session loaded last, as ``host_timing.warm_calls`` does), with a byte-identical copy of the export's
graph timed among them (``identical_copy_ratio``: the run's spread); the file's size. NNCF runs in its
own venv (``_nncf_peer_quantize.py``): ``--peer-python``, else ``$EDGECNN_NNCF_PYTHON``, else
``../venv-nncf/bin/python`` beside the repo, made by ``python3.11 -m venv V && V/bin/pip install nncf onnx
onnxruntime numpy`` (no torch). Run by ``make bench``; alone: ``python benchmarks/quant_peers.py [--quick]
[--peer-python PATH] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import BENCH_DIR, REPO_ROOT, RESULTS_DIR, interleaved, write_result

sys.path.insert(0, str(REPO_ROOT))  # the digits helpers live with the test fixtures

from edgecnn.analysis.drift import HOST_KERNELS, figures, int8_computations
from edgecnn.analysis.metrics import sign_p
from edgecnn.errors import first_line
from edgecnn.runtime.loader import load
from tests.fixtures.digits import MEAN, STD, TRAINED_FAMILIES, digits, normalise, train

NAME = "quant_peers"
CALIB = 128  # calibration digits: the first of the training digits (post-training quantization's usual source)
HELD_OUT = 1000  # judged on these digits (of the 1,797), trained on the other 797
PEER_SCRIPT = BENCH_DIR / "_nncf_peer_quantize.py"
DEFAULT_PEER = REPO_ROOT.parent / "venv-nncf" / "bin" / "python"
GRANULARITIES = ("per_channel", "per_tensor")
DISAGREE = "_qdq_disagree"  # a row's held-out digits whose int8 top-1 differs from fp32's (in meta.qdq_disagree)
LOADS = 3  # latency: every model of a row set loaded this many times (a session's placement moves its time)
USABLE_PTS = 1.0  # a peer counts in the latency race when its agreement is within this many points of edgecnn's
HARDER = {
    "mobilenet_v1_w025": ("mobilenet_v1", {"width": 0.25}),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}),
    "efficientnet_b0": ("efficientnet_b0", {}),
    "efficientnet_lite0": ("efficientnet_lite0", {}),
    "densenet121": ("densenet121", {}),
}
MODELS = {**HARDER, **TRAINED_FAMILIES}  # the harder ones first: the trained families mostly agree 100%
QUICK = ("mobilenet", "mobilenet_v1_w025")
QUANTIZERS = (
    "ort_default",
    "ort_reduce_range",
    "nncf",
    "edgecnn",
    "edgecnn_export",
    "edgecnn_export_minmax",
    "edgecnn_export_per_channel",
    "edgecnn_auto",
)
NAMED_PEERS = ("nncf", "ort_default", "ort_reduce_range")  # the pooled comparison's peers (the issue names two)
ROW_OPTIONS = {
    "ort_default": {
        "per_channel": "quant_pre_process, then quantize_static(fp32, out, reader) with ORT's defaults (`ort_defaults` "
        "in the meta; per_channel=False: per-tensor weights even in this row)",
        "per_tensor": "the same call: ORT's defaults are per-tensor weights",
    },
    "ort_reduce_range": {
        "per_channel": "quant_pre_process, quantize_static(..., per_channel=True, reduce_range=True), else defaults",
        "per_tensor": "quant_pre_process, quantize_static(..., per_channel=False, reduce_range=True), else defaults",
    },
    "nncf": {
        "per_channel": "nncf.quantize(onnx_model, Dataset, subset_size=CALIB): NNCF's defaults (per-channel weights)",
        "per_tensor": "nncf.quantize(..., advanced_parameters=AdvancedQuantizationParameters("
        "weights_quantization_params=QuantizationParameters(per_channel=False)))",
    },
    "edgecnn": {
        "per_channel": "Quantizer(fp32, calib).quantize(dst, recipe method, reduce_range=False, per_channel=True): "
        "QDQ, QUInt8 activations, QInt8 weights, ranges calibrated by edgecnn and passed as ORT's calibration cache",
        "per_tensor": "Quantizer(fp32, calib).quantize(dst, recipe method, reduce_range=False, per_channel=False)",
    },
    "edgecnn_export": {
        "per_channel": "as `edgecnn export` (x86-avx2 profile) calls it (`quantize_for_target`): recipe method, "
        "bins, percentile and keep_float, the profile's reduce_range, per_channel=True, the profile's slower-in-int8 "
        "op types kept float where timing here finds the graph faster, and an equalized per-tensor twin (or a mixed "
        "one: per channel in the layers whose channels' weight ranges spread > 12 dB) shipped "
        "instead when timed faster and as good on the calibration digits (`weights_chosen`; the export judges it on "
        "its drift samples and the moved calibration digits), the biases corrected (the recipe's bias_correction, "
        "on; weight_rounding off), min-max, "
        "mean-of-extremes or auto activation ranges, whichever keeps the most top-1 decisions on the calibration "
        "digits "
        "moved 1, 2 and 3 px (`range_choice`; `ranges_chosen`); no drift repair",
        "per_tensor": "as `edgecnn export --profile android-nnapi-api28` calls it: per_channel=False, cross-layer "
        "equalization first, the profile's reduce_range (off), the biases corrected, the range choice",
    },
    "edgecnn_export_minmax": {
        "per_channel": "edgecnn_export with min-max ranges pinned (`--method minmax`: no range choice, the export's "
        "default before it; its weights choice still counts the moved calibration digits)",
        "per_tensor": "edgecnn_export (equalized) with min-max ranges pinned",
    },
    "edgecnn_export_per_channel": {
        "per_channel": "edgecnn_export without its weights choice: the per-channel graph it starts from (what the "
        "choice gained or cost)",
        "per_tensor": "the same as edgecnn_export (a per-tensor target makes no choice)",
    },
    "edgecnn_auto": {
        "per_channel": "edgecnn_export with method auto (`--method auto`): per activation tensor, the minmax, "
        "percentile or entropy range of the best uint8 SQNR on the calibration digits",
        "per_tensor": "edgecnn_export (equalized) with method auto",
    },
}
TFLITE_ROWS = {
    "tflite_fp32": "edgecnn.lowering.tflite.convert(fp32 ONNX with batch 1): the reference of the tflite rows",
    "tflite_edgecnn": "TfliteQuantizer(fp32_tflite, calib, layout).quantize_bytes(): static_wi8_ai8, int8 I/O; "
    "per_tensor: per_channel=False on the equalized graph's lowering (pipeline.stages.equalized_tflite), as the "
    "export makes it for a per-tensor profile",
    "tflite_edgecnn_bias_corrected": "tflite_edgecnn with bias_correct=True: the biases corrected for the mean shift "
    "of the int8 weights over the calibration digits (on in the export: tflite_edgecnn_export)",
    "tflite_edgecnn_rounded": "tflite_edgecnn_bias_corrected with round_weights=True as well: the int8 weights "
    "rounded with error compensation on the calibration digits (`--weight-rounding`; off in the export)",
    "tflite_edgecnn_export": "tflite_edgecnn with the ops the x86-avx2 export times in LiteRT and keeps float when "
    "faster (pipeline.float_choice.choose_tflite_float_ops over the profile's int8.slower_tflite_ops present and "
    "the ops XNNPACK leaves to LiteRT: `float_ops`) and its biases corrected, as `edgecnn export --profile "
    "x86-avx2` ships it",
    "tflite_aeq_static_wi8_ai8": "Quantizer(fp32_tflite) + recipe.static_wi8_ai8(), calibrate, quantize; "
    "per_tensor: its weight granularity set to TENSORWISE",
}


@dataclass
class Data:
    """The digits: training set, calibration images (the first of it), held-out images and labels (normalised)."""

    train_x: np.ndarray
    train_y: np.ndarray
    calib: np.ndarray
    holdout: np.ndarray
    labels: np.ndarray

    @classmethod
    def make(cls, calib: int = CALIB, held_out: int = HELD_OUT) -> Data:
        train_x, train_y, test_x, test_y = digits()  # a fixed shuffle, split 80/20: re-split for HELD_OUT
        x = normalise(np.concatenate([train_x, test_x]), MEAN, STD)
        y = np.concatenate([train_y, test_y])
        cut = len(x) - held_out
        return cls(x[:cut], y[:cut], x[:calib], x[cut:], y[cut:])


@dataclass
class Peer:
    """The NNCF venv's python, or why it is not run."""

    python: Path
    missing: str | None = None
    versions: dict[str, str] = field(default_factory=dict)


def peer_python(given: str | None) -> Peer:
    """The peer venv's python: the option, else $EDGECNN_NNCF_PYTHON, else DEFAULT_PEER; ``missing`` when absent."""
    python = Path(given or os.environ.get("EDGECNN_NNCF_PYTHON") or DEFAULT_PEER)
    return Peer(python, None if python.is_file() else f"not run (no peer python at {python})")


def model_options(parser: argparse.ArgumentParser, default: str) -> None:
    """The options every quantizer benchmark takes: ``--only`` (``default``: what it measures without it),
    ``--peer-python`` and ``--epochs``."""
    parser.add_argument("--only", nargs="*", default=None, help=f"model keys (default: {default})")
    parser.add_argument("--peer-python", default=None, help="python of the venv that has nncf")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs per model")


def checked_peer(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> Peer:
    """``--only``'s keys checked (a parser error names the unknown ones), and the peer ``--peer-python`` gives, or
    why it is missing (said on stderr)."""
    unknown = [k for k in args.only or () if k not in MODELS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    peer = peer_python(args.peer_python)
    if peer.missing:
        print(f"{name}: nncf: {peer.missing}; its rows record that", file=sys.stderr)
    return peer


def fp32_model(key: str, data: Data, work: Path, epochs: int = 12) -> tuple[Path, str]:
    """Train ``MODELS[key]`` on the digits (``epochs`` 0: not at all), export it once to a simplified fp32 ONNX;
    its path and family."""
    import torch

    from edgecnn.models import create_model, get_model_info
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify

    name, scaling = MODELS[key]
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, resolution=32, **scaling)
    if epochs:  # 0: untrained weights (the tests' fast path)
        model = train(model, data.train_x, data.train_y, epochs=epochs, lr=0.1)
    raw, path = work / f"{key}.raw.onnx", work / f"{key}.fp32.onnx"
    export_onnx(model, (1, 1, 32, 32), raw, dynamic_batch=True)
    simplify(raw, path)
    return path, get_model_info(name).family


class _Reader:
    """ORT's CalibrationDataReader over the calibration images, one sample at a time."""

    def __init__(self, name: str, images: np.ndarray) -> None:
        self.name, self.images, self.index = name, images, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.images):
            return None
        self.index += 1
        return {self.name: self.images[self.index - 1 : self.index]}

    def rewind(self) -> None:
        self.index = 0


def ort_quantize(fp32: Path, calib: np.ndarray, dst: Path, **options: Any) -> None:
    """``quantize_static`` as a user calls it: ORT's own pre-processing, then the options given (none: defaults)."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared))
    name = next(iter(load(fp32).inputs))
    quantize_static(str(prepared), str(dst), _Reader(name, calib), **options)
    prepared.unlink()


def nncf_quantize(peer: Peer, fp32: Path, calib: Path, dst: Path, granularity: str) -> None:
    """Run ``_nncf_peer_quantize.py`` in the peer venv; its versions go to ``peer.versions``."""
    done = subprocess.run(
        [str(peer.python), str(PEER_SCRIPT), str(fp32), str(calib), str(dst), granularity],
        capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    if done.returncode != 0 or not dst.is_file():
        raise RuntimeError(f"nncf failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    peer.versions = json.loads(done.stdout.strip().splitlines()[-1])["versions"]


def edgecnn_quantize(
    fp32: Path,
    calib: np.ndarray,
    dst: Path,
    per_channel: bool,
    family: str,
    export: bool,
    bias_correct: bool | None = None,
    method: str | None = None,
    choose: bool = True,
    round_weights: bool | None = None,
) -> dict[str, Any]:
    """edgecnn's Quantizer with the recipe's method (or ``method``): as is (``reduce_range=False``), or as the export
    calls it for a target of that granularity — x86-avx2 per channel (per-tensor weights when its timed choice
    takes them, judged on the calibration digits), android-nnapi-api28 per tensor (equalized first) — its biases
    corrected and its weights rounded as the recipe says unless ``bias_correct`` / ``round_weights`` say otherwise;
    without ``choose`` no weights choice; unless a ``method`` is given, min-max, mean-of-extremes or auto ranges as
    the export chooses them (``range_choice``, judged on the calibration digits moved). The row's extra figures: the
    weights and the ranges the export chose, and the op types its float-op choice kept float."""
    from edgecnn.analysis.drift import Thresholds, evaluator
    from edgecnn.config.profiles import load_profile
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.pipeline.quantize import Quantizer, quantize_for_target
    from edgecnn.pipeline.range_choice import flip_judge

    recipe = recipe_for_family(family)
    if not export:
        with Quantizer(fp32, calib) as quantizer:
            quantizer.quantize(dst, recipe.method, reduce_range=False, per_channel=per_channel)
        return {}
    profile = load_profile("x86-avx2" if per_channel else "android-nnapi-api28")
    corrected = recipe.bias_correction if bias_correct is None else bias_correct
    rounded = recipe.weight_rounding if round_weights is None else round_weights
    options = {"per_channel": profile.per_channel, "equalize": not profile.per_channel, "bias_correct": corrected}
    options["round_weights"] = rounded
    judge = None
    if choose and profile.per_channel:  # only a per-channel target weighs per-tensor weights
        evaluate = evaluator(calib, load(fp32).run_all(calib), None, HOST_KERNELS, Thresholds())

        def judge(path: Path) -> dict[str, Any]:
            return evaluate(path)[0]

    with Quantizer(fp32, calib, recipe.bins, recipe.percentile, **options) as quantizer:
        info, op_types, quantizer = quantize_for_target(
            quantizer, dst, method or recipe.method, recipe, profile, recipe.keep_float_nodes, quantizer.work / "float",
            judge=judge, flips=flip_judge(fp32, calib)[0] if method is None or judge else None,
            choose_ranges=method is None,
        )  # fmt: skip
        quantizer.close()  # the twin, when the choice took it (the with block closes the first)
    ranges = info.get("range_choice") or {}
    weights = (info.get("weights_choice") or {}).get("chosen")
    chosen = weights or ("per_channel" if info["per_channel"] else "per_tensor")
    timed_float = [t for t in op_types if t not in recipe.keep_float_op_types]  # the float-op choice's, timed here
    return {"weights_chosen": chosen, "ranges_chosen": ranges.get("chosen", info["method"]),
            "float_ops": ",".join(timed_float) or "none"}  # fmt: skip


def ort_defaults() -> dict[str, str]:
    """``quantize_static``'s default arguments in the installed ORT (what the `ort_default` rows used)."""
    import inspect

    from onnxruntime.quantization import quantize_static

    keep = ("quant_format", "per_channel", "reduce_range", "activation_type", "weight_type", "calibrate_method")
    parameters = inspect.signature(quantize_static).parameters
    return {name: str(parameters[name].default) for name in keep}


def quantizers(
    peer: Peer, family: str, calib: np.ndarray, calib_file: Path
) -> dict[str, Callable[..., dict[str, Any] | None]]:
    """Each row's quantizer: (fp32, dst, granularity) → writes dst (and returns the row's extra figures, if any)."""

    def ort_default(fp32: Path, dst: Path, granularity: str) -> None:
        ort_quantize(fp32, calib, dst)

    def ort_reduce_range(fp32: Path, dst: Path, granularity: str) -> None:
        ort_quantize(fp32, calib, dst, per_channel=granularity == "per_channel", reduce_range=True)

    def nncf(fp32: Path, dst: Path, granularity: str) -> None:
        if peer.missing:
            raise RuntimeError(f"nncf: {peer.missing}")
        nncf_quantize(peer, fp32, calib_file, dst, granularity)

    def edgecnn(fp32: Path, dst: Path, granularity: str) -> dict[str, Any]:
        return edgecnn_quantize(fp32, calib, dst, granularity == "per_channel", family, export=False)

    def edgecnn_export(fp32: Path, dst: Path, granularity: str) -> dict[str, Any]:
        return edgecnn_quantize(fp32, calib, dst, granularity == "per_channel", family, export=True)

    def edgecnn_export_minmax(fp32: Path, dst: Path, granularity: str) -> dict[str, Any]:  # min-max pinned
        return edgecnn_quantize(fp32, calib, dst, granularity == "per_channel", family, export=True, method="minmax")

    def edgecnn_export_per_channel(fp32: Path, dst: Path, granularity: str) -> dict[str, Any]:
        return edgecnn_quantize(fp32, calib, dst, granularity == "per_channel", family, export=True, choose=False)

    def edgecnn_auto(fp32: Path, dst: Path, granularity: str) -> dict[str, Any]:
        return edgecnn_quantize(fp32, calib, dst, granularity == "per_channel", family, export=True, method="auto")

    return {
        "ort_default": ort_default,
        "ort_reduce_range": ort_reduce_range,
        "nncf": nncf,
        "edgecnn": edgecnn,
        "edgecnn_export": edgecnn_export,
        "edgecnn_export_minmax": edgecnn_export_minmax,
        "edgecnn_export_per_channel": edgecnn_export_per_channel,
        "edgecnn_auto": edgecnn_auto,
    }


def quality(path: Path, data: Data, reference: np.ndarray) -> dict[str, Any]:
    """Agreement with fp32, accuracy and cosine on the held-out digits, exact QDQ and host kernels; under
    ``DISAGREE`` (kept out of the result file) the held-out digits whose exact-QDQ top-1 differs from fp32's."""
    exact_outputs = load(path, optimization="disable").run_all(data.holdout)  # what int8_computations' exact runs
    exact = figures(reference, exact_outputs, data.labels)
    host = int8_computations(path, data.holdout, reference, data.labels, kinds=(HOST_KERNELS,))[HOST_KERNELS]
    fp32_top1 = next(iter(reference.values())).argmax(1)
    int8_top1 = next(iter(exact_outputs.values())).argmax(1)
    return {
        "qdq_agreement": round(exact["top1_agreement"], 4),
        "host_agreement": round(host["top1_agreement"], 4),
        "qdq_accuracy": round(exact["target_accuracy"], 4),
        "host_accuracy": round(host["target_accuracy"], 4),
        "qdq_cosine": round(exact["cosine"], 4),
        "qdq_sqnr_db": round(exact["sqnr_db"], 2),
        DISAGREE: frozenset(np.flatnonzero(int8_top1 != fp32_top1).tolist()),
    }


def mcnemar_p(ours: frozenset[int], theirs: frozenset[int]) -> float:
    """Exact two-sided McNemar p-value of two quantizers' disagreements with fp32 on the same digits: the chance of
    a split at least this uneven of the digits only one of them gets wrong, were both equally good."""
    return sign_p(len(ours - theirs), len(theirs - ours))


def latency(
    paths: dict[str, Path], sample: np.ndarray, rounds: int, runs: int, layout: str | None = None, loads: int = LOADS
) -> dict[str, dict[str, float]]:
    """min and p50 ms of each model (ORT, or LiteRT fed ``layout``; 1 thread, batch 1): ``rounds`` interleaved rounds
    in each of ``loads`` loads, each load in another order (rotated) with a ballast session loaded last; the minimum
    of every round's minimum and the median of the loads' p50s."""
    keys = list(paths)
    mins: dict[str, list[float]] = {key: [] for key in keys}
    p50s: dict[str, list[float]] = {key: [] for key in keys}
    for attempt in range(loads):
        shift = attempt * len(keys) // loads
        order = keys[shift:] + keys[:shift]
        runners = {key: load(paths[key], threads=1, layout=layout) for key in order}
        ballast = load(paths[order[0]], threads=1, layout=layout)  # the last-loaded place (warm_calls)
        calls = {key: (lambda r=runner: r.run_all(sample)) for key, runner in runners.items()}
        timing = interleaved(calls, rounds, runs)
        for key, figures_ms in timing.items():
            mins[key].append(figures_ms["min_ms"])
            p50s[key].append(figures_ms["p50_ms"])
        del runners, calls, ballast  # freed before the next load's
    return {key: {"min_ms": min(mins[key]), "p50_ms": round(float(np.median(p50s[key])), 4)} for key in keys}


def timed_with_copy(
    paths: dict[str, Path],
    copied: tuple[str, ...],
    sample: np.ndarray,
    rounds: int,
    runs: int,
    layout: str | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """:func:`latency` of ``paths`` and of a byte-identical copy of each of ``copied`` (those present) timed among
    them; and each copied one's ``identical_copy_ratio``: the copy's min over the original's — how far apart this
    run times two graphs that are the same, the spread a latency ratio must stand above."""
    copies = {key: paths[key].with_name(f"{paths[key].stem}.copy{paths[key].suffix}") for key in copied if key in paths}
    for key, copy in copies.items():
        shutil.copyfile(paths[key], copy)
    timing = latency({**paths, **{f"{key}~copy": copy for key, copy in copies.items()}}, sample, rounds, runs, layout)
    ratios = {key: round(timing[f"{key}~copy"]["min_ms"] / timing[key]["min_ms"], 3) for key in copies}
    return {key: timing[key] for key in paths}, ratios


def static_batch(fp32: Path) -> Any:
    """The fp32 ONNX with batch 1 on its inputs and outputs (the TFLite lowering takes static shapes)."""
    import onnx

    model = onnx.load(str(fp32))
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    return onnx.shape_inference.infer_shapes(model)


def aeq_plain(fp32: bytes, calib: np.ndarray, layout: str, per_channel: bool = True) -> bytes:
    """ai-edge-quantizer's plain ``static_wi8_ai8`` recipe (its weight granularity TENSORWISE when not
    ``per_channel``), calibrated on ``calib``: as its README calls it."""
    from ai_edge_quantizer import quantizer, recipe

    from edgecnn.lowering.tflite.flatbuffer import SIGNATURE, parse
    from edgecnn.lowering.tflite.quantize import _quiet, signature_feeds

    rules = recipe.static_wi8_ai8()
    for rule in rules if not per_channel else ():
        rule["op_config"]["weight_tensor_config"]["granularity"] = "TENSORWISE"
    with _quiet():
        tool = quantizer.Quantizer(bytearray(fp32))
        tool.load_quantization_recipe(rules)
        statistics = tool.calibrate({SIGNATURE: signature_feeds(parse(fp32), calib, layout)})
        return bytes(tool.quantize(statistics).quantized_model)


def tflite_rows(
    key: str, fp32: Path, data: Data, work: Path, rounds: int, runs: int, ranges: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """fp32 `.tflite` (edgecnn's lowering), edgecnn's int8 (``TfliteQuantizer``) and ai-edge-quantizer's plain
    ``static_wi8_ai8``: agreement, accuracy and cosine in LiteRT (XNNPACK), latency interleaved, size. The export's
    row calibrates by ``ranges`` (granularity → method: the ORT export row's range choice, as the export's .tflite
    follows its ORT graph's; min-max when not given)."""
    from edgecnn.analysis.drift import figures
    from edgecnn.config.profiles import load_profile
    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from edgecnn.pipeline.float_choice import choose_tflite_float_ops
    from edgecnn.pipeline.stages import equalized_tflite, tflite_graph
    from edgecnn.pipeline.tflite_calibration import TfliteCalibration

    try:  # as the export lowers it: a DeformConv becomes its gather decomposition, its sampling path float
        graph, float_scopes = tflite_graph(static_batch(fp32))
        lowered = convert(graph)
    except Exception as error:  # an op without a lowering is a finding
        return [{"model": key, "granularity": "per_channel", "quantizer": "tflite_fp32", "error": first_line(error)}]
    layout = lowered.input_layout

    quantizers: dict[bool, TfliteQuantizer] = {}

    def edgecnn_int8(per_channel: bool, bias_correct: bool = False, rounded: bool = False) -> bytes:
        """As the export quantizes it (per tensor: the equalized graph's lowering), with the techniques asked."""
        if per_channel not in quantizers:
            source = lowered.data
            if not per_channel:
                source = equalized_tflite(graph, data.calib, work)[0] or source
            quantizers[per_channel] = TfliteQuantizer(
                source, data.calib, layout, keep_float_scopes=float_scopes, per_channel=per_channel,
                calibrator=TfliteCalibration,
            )  # fmt: skip
        return quantizers[per_channel].quantize_bytes(bias_correct=bias_correct, round_weights=rounded).data

    float_ops: dict[str, str] = {}
    calibrated: dict[str, str] = {}

    @functools.cache
    def fp32_split() -> Any:  # how XNNPACK splits the fp32 .tflite, counted once, as the export counts it
        from edgecnn.runtime.xnnpack import delegation

        path = work / "fp32.tflite"
        path.write_bytes(lowered.data)
        return delegation(path)

    def edgecnn_export_int8(per_channel: bool, granularity: str) -> bytes:  # with the export's timed float ops
        edgecnn_int8(per_channel)
        quantizer = quantizers[per_channel]
        present = set(quantizer.ops.values())
        candidates = tuple(op for op in load_profile("x86-avx2").int8_slower_tflite_ops if op in present)
        quantizer.bias_correct = True  # as the recipes export (bias_correction on)
        quantizer.method = (ranges or {}).get(granularity, "minmax")
        quantized, kinds, _ = choose_tflite_float_ops(
            quantizer, (), candidates, work / f"choice-{granularity}", measure=True, fp32=fp32_split()
        )
        quantizer.float_op_types, quantizer.bias_correct = (), False  # the other rows' quantizer as it was
        quantizer.method = "minmax"
        float_ops[granularity] = ",".join(kinds) or "none"
        calibrated[granularity] = quantized.method
        return quantized.data

    made: dict[tuple[str, str], Any] = {("per_channel", "tflite_fp32"): lambda: lowered.data}
    for granularity, per_channel in (("per_channel", True), ("per_tensor", False)):
        made[granularity, "tflite_edgecnn"] = lambda p=per_channel: edgecnn_int8(p)
        made[granularity, "tflite_edgecnn_bias_corrected"] = lambda p=per_channel: edgecnn_int8(p, True)
        made[granularity, "tflite_edgecnn_rounded"] = lambda p=per_channel: edgecnn_int8(p, True, True)
        made[granularity, "tflite_edgecnn_export"] = lambda p=per_channel, g=granularity: edgecnn_export_int8(p, g)
        made[granularity, "tflite_aeq_static_wi8_ai8"] = lambda p=per_channel: aeq_plain(
            lowered.data, data.calib, layout, p
        )
    paths, rows = {}, []
    reference: Any = None
    for (granularity, quantizer), make in made.items():
        row: dict[str, Any] = {"model": key, "granularity": granularity, "quantizer": quantizer}
        try:
            path = work / f"{key}.{granularity}.{quantizer}.tflite"
            path.write_bytes(make())
            outputs = load(path, layout=lowered.input_layout).run_all(data.holdout)
            reference = outputs if reference is None else reference
            figs = figures(reference, outputs, data.labels)
            row.update(host_agreement=round(figs["top1_agreement"], 4), host_accuracy=round(figs["target_accuracy"], 4))
            row["host_cosine"] = round(figs["cosine"], 4)
            paths[granularity, quantizer] = path
        except Exception as error:  # a lowering or quantizer failure is a finding
            row["error"] = first_line(error)
        rows.append(row)
    exported = tuple(f"{g}/tflite_edgecnn_export" for g in GRANULARITIES)
    labelled = {f"{g}/{q}": p for (g, q), p in paths.items()}
    timing, spread = timed_with_copy(labelled, exported, data.holdout[:1], rounds, runs, layout)
    for row in rows:
        label = f"{row['granularity']}/{row['quantizer']}"
        if label in labelled:
            row.update(timing[label], bytes=labelled[label].stat().st_size)
        if label in spread:
            row["identical_copy_ratio"] = spread[label]
        if row["quantizer"] == "tflite_edgecnn_export" and row["granularity"] in float_ops:
            row["float_ops"] = float_ops[row["granularity"]]
            row["ranges_chosen"] = calibrated[row["granularity"]]
    return rows


def measure(
    key: str, data: Data, peer: Peer, work: Path, rounds: int, runs: int, epochs: int, tflite: bool = True
) -> list[dict[str, Any]]:
    """One model's rows: fp32, then every (granularity, quantizer), then the `.tflite` rows (with ``tflite``)."""
    fp32, family = fp32_model(key, data, work, epochs)
    reference = load(fp32).run_all(data.holdout)
    calib_file = work / "calib.npy"
    np.save(calib_file, data.calib)
    makers = quantizers(peer, family, data.calib, calib_file)
    rows: list[dict[str, Any]] = []
    paths = {"fp32": fp32}
    fp32_acc = float(np.mean(next(iter(reference.values())).argmax(1) == data.labels))
    fp32_row = {"model": key, "granularity": "—", "quantizer": "fp32"}
    rows.append({**fp32_row, "qdq_accuracy": round(fp32_acc, 4), "host_accuracy": round(fp32_acc, 4)})
    for granularity in GRANULARITIES:
        for quantizer, make in makers.items():
            row: dict[str, Any] = {"model": key, "granularity": granularity, "quantizer": quantizer}
            dst = work / f"{key}.{granularity}.{quantizer}.onnx"
            try:
                row.update(make(fp32, dst, granularity) or {})
                row.update(quality(dst, data, reference))
                paths[f"{granularity}/{quantizer}"] = dst
            except Exception as error:  # a quantizer that fails on a graph is a finding, not a crash
                row["error"] = first_line(error)
            rows.append(row)
    exported = tuple(f"{g}/edgecnn_export" for g in GRANULARITIES)
    timing, spread = timed_with_copy(paths, exported, data.holdout[:1], rounds, runs)
    for row in rows:
        label = "fp32" if row["quantizer"] == "fp32" else f"{row['granularity']}/{row['quantizer']}"
        if label in paths:
            row.update(timing[label], bytes=paths[label].stat().st_size)
        if label in spread:
            row["identical_copy_ratio"] = spread[label]
    if not tflite:
        return rows
    ranges = {
        r["granularity"]: r["ranges_chosen"]
        for r in rows
        if "ranges_chosen" in r and r["quantizer"] == "edgecnn_export"
    }
    return rows + tflite_rows(key, fp32, data, work, rounds, runs, ranges)


def _fastest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return min((r for r in rows if r.get("min_ms")), key=lambda r: r["min_ms"], default=None)


def _ratio(ours: dict[str, Any], peer: dict[str, Any] | None) -> float | None:
    return round(ours["min_ms"] / peer["min_ms"], 3) if peer and ours.get("min_ms") else None


def gaps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, granularity): edgecnn's exact-QDQ agreement and accuracy minus the best peer's, in points —
    edgecnn as the export quantizes (``edgecnn_export``: what a user gets, before any drift repair) — its logits'
    cosine with fp32 minus the closest peer's, and its ORT
    latency over the fastest peer's, and over the fastest *usable* peer's (agreement within ``USABLE_PTS`` of
    edgecnn's: a faster model that has lost its predictions is no rival)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for granularity in GRANULARITIES:
            group = {r["quantizer"]: r for r in rows if r["model"] == model and r["granularity"] == granularity}
            peers = [r for q, r in group.items() if not q.startswith("edgecnn") and "qdq_agreement" in r]
            ours = group.get("edgecnn_export", {})
            if not peers or "qdq_agreement" not in ours:
                continue
            best = max(peers, key=lambda r: (r["qdq_agreement"], r["qdq_accuracy"]))
            fastest = _fastest(peers)
            closest = max(peers, key=lambda r: r["qdq_cosine"])
            # a peer whose int8 model is as good as edgecnn's (agreement within USABLE_PTS): the latency that counts
            usable = _fastest([r for r in peers if r["qdq_agreement"] >= ours["qdq_agreement"] - USABLE_PTS / 100])
            paired = DISAGREE in ours and DISAGREE in best
            out.append(
                {
                    "model": model,
                    "granularity": granularity,
                    "best_peer": best["quantizer"],
                    "agreement_gap_pts": round(100 * (ours["qdq_agreement"] - best["qdq_agreement"]), 2),
                    # the digits only one of the two gets wrong (edgecnn's, the peer's) and McNemar's p of that
                    # split: a gap whose p is large is not a difference these held-out digits can show
                    "only_ours_wrong": len(ours[DISAGREE] - best[DISAGREE]) if paired else None,
                    "only_peer_wrong": len(best[DISAGREE] - ours[DISAGREE]) if paired else None,
                    "agreement_gap_p": mcnemar_p(ours[DISAGREE], best[DISAGREE]) if paired else None,
                    "accuracy_gap_pts": round(100 * (ours["qdq_accuracy"] - best["qdq_accuracy"]), 2),
                    # the logits' SQNR against fp32 minus the best peer's: how near each side's outputs are, beyond
                    # which class wins (> 0: edgecnn's are nearer)
                    "sqnr_gap_db": round(ours["qdq_sqnr_db"] - best["qdq_sqnr_db"], 2),
                    # the logits' mean cosine with fp32 (every output, not only its top-1) minus the closest peer's
                    "closest_peer": closest["quantizer"],
                    "cosine_gap": round(ours["qdq_cosine"] - closest["qdq_cosine"], 4),
                    "fastest_peer": fastest and fastest["quantizer"],
                    # edgecnn's ORT min latency over the fastest peer's (its agreement aside): ≤ 1 is as fast
                    "latency_ratio": _ratio(ours, fastest),
                    "fastest_usable_peer": usable and usable["quantizer"],
                    "usable_latency_ratio": _ratio(ours, usable),
                    # a byte-identical copy of edgecnn's graph timed among them, over the original: the spread of
                    # this run's timing, which a latency ratio must stand above to mean anything
                    "identical_copy_ratio": ours.get("identical_copy_ratio"),
                }
            )
    return out


def pooled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per granularity and named peer, over every model both quantized: the held-out digits only
    ``edgecnn_export`` gets wrong (against fp32's top-1) and only the peer does, summed, with the exact McNemar p
    of the totals — one model's few discordant digits say little, eleven models' say more — and the models where
    either is ahead at p < 0.05."""
    out = []
    for granularity in GRANULARITIES:
        for peer in NAMED_PEERS:
            ours_wrong, peer_wrong, models, ahead, behind = 0, 0, 0, [], []
            for model in dict.fromkeys(r["model"] for r in rows):
                group = {r["quantizer"]: r for r in rows if r["model"] == model and r["granularity"] == granularity}
                ours, theirs = group.get("edgecnn_export", {}), group.get(peer, {})
                if DISAGREE not in ours or DISAGREE not in theirs:
                    continue
                models += 1
                only_ours, only_peer = ours[DISAGREE] - theirs[DISAGREE], theirs[DISAGREE] - ours[DISAGREE]
                ours_wrong, peer_wrong = ours_wrong + len(only_ours), peer_wrong + len(only_peer)
                if mcnemar_p(ours[DISAGREE], theirs[DISAGREE]) < 0.05:
                    (ahead if len(only_peer) > len(only_ours) else behind).append(model)
            if models:
                out.append(
                    {
                        "granularity": granularity,
                        "peer": peer,
                        "models": models,
                        "only_ours_wrong": ours_wrong,
                        "only_peer_wrong": peer_wrong,
                        "p": sign_p(ours_wrong, peer_wrong),
                        "ahead_p05": ", ".join(ahead) or "—",
                        "behind_p05": ", ".join(behind) or "—",
                    }
                )
    return out


def disagreements(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each row's held-out digits whose exact-QDQ top-1 differs from fp32's, by model/granularity/quantizer (the
    paired tests' data, kept in the meta so that they can be recomputed from the file)."""
    return {f"{r['model']}/{r['granularity']}/{r['quantizer']}": sorted(r[DISAGREE]) for r in rows if DISAGREE in r}


def describe(peer: Peer, rounds: int, runs: int, holdout: int, epochs: int) -> str:
    """The meta's description: what was measured and how."""
    nncf = f"NNCF {peer.versions.get('nncf', '?')} in its own venv" if not peer.missing else f"NNCF {peer.missing}"
    return (
        f"int8 post-training quantizers on the same fp32 ONNX: digits-trained models ({epochs} epochs, 32×32×1, "
        f"10 classes), calibrated on the same {CALIB} training digits, judged on {holdout} held-out digits. Rows: "
        "`ort_default` quantize_static with ORT's defaults (`meta.ort_defaults`); `ort_reduce_range` "
        "per_channel per the granularity + reduce_range=True; `nncf` nncf.quantize (ONNX backend, defaults; "
        f"per-tensor via weights_quantization_params) — {nncf}; `edgecnn` edgecnn's Quantizer (recipe method, "
        "reduce_range=False); `edgecnn_export` as the x86-avx2 export calls it (profile reduce_range, its timed "
        "float-op and weights choices: `float_ops`, `weights_chosen`; biases corrected), no drift repair; "
        "`edgecnn_export_per_channel` the same without the weights choice; `edgecnn_export` also chooses min-max, "
        "mean-of-extremes or auto activation ranges (`ranges_chosen`), `edgecnn_export_minmax` is it with min-max "
        "pinned; "
        "`edgecnn_auto` the same with "
        "`--method auto`. `qdq_*`: exact QDQ arithmetic "
        "(ORT, optimizations off); `host_*`: this host's int8 kernels; "
        "`*_agreement`: top-1 agreement with fp32; `qdq_cosine`: mean cosine of logits; `qdq_sqnr_db`: SQNR of the "
        "logits against fp32's, dB; latency: ORT, 1 thread, "
        f"batch 1, min of every round and median of the loads' median-of-round-p50 over {LOADS} loads of {rounds} "
        f"interleaved rounds of {runs} runs (each load in another order with a ballast session loaded after them: "
        "a session's placement moves its time, `timing_protocol`); `identical_copy_ratio` (on `edgecnn_export` and "
        "`tflite_edgecnn_export`, and in the gaps): a byte-identical copy of that graph timed among the rows, its "
        "min over the original's — this run's timing spread; `bytes`: file size. "
        "`meta.edgecnn_gaps`: `edgecnn_export` minus the best peer, points (with the held-out digits only one of the "
        "two gets wrong and the exact McNemar p of that split, `agreement_gap_p`: a gap of large p is not one these "
        "digits can tell from chance), its logits' SQNR minus the best peer's (`sqnr_gap_db`), its logits' mean "
        "cosine with fp32 minus the closest peer's (`cosine_gap`, "
        "`closest_peer`: every logit, not only the top-1), and its ORT min latency over the "
        f"fastest peer's (`latency_ratio`) and over the fastest peer within {USABLE_PTS:g} point of its agreement "
        "(`usable_latency_ratio`). `meta.pooled`: per granularity and peer, the digits only `edgecnn_export` or only "
        "the peer gets wrong summed over the models, their McNemar p, and the models where either is ahead at "
        "p < 0.05; `meta.qdq_disagree` each row's digits (indices into the held-out set) that disagree with fp32. "
        "`tflite_*` rows (per channel and per "
        "tensor, int8 I/O): edgecnn's lowering to fp32 `.tflite`, edgecnn's TfliteQuantizer and ai-edge-quantizer's "
        "plain static_wi8_ai8 (the same tool today: the baseline), judged in LiteRT (XNNPACK, `host_*`, `host_cosine`) "
        "against the fp32 `.tflite`; their latency is LiteRT's, interleaved among themselves."
    )


def _meta(
    args: argparse.Namespace,
    keys: list[str],
    left: list[str],
    peer: Peer,
    rounds: int,
    runs: int,
    holdout: int,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The result's meta: what each row did, versions, the gaps, and the models not measured (yet)."""
    return {
        "description": describe(peer, rounds, runs, holdout, args.epochs),
        "rows": {q: ROW_OPTIONS[q] for q in QUANTIZERS},
        "tflite_rows": None if args.no_tflite else TFLITE_ROWS,
        "ort_defaults": ort_defaults(),
        "models": {k: {"name": MODELS[k][0], "scaling": MODELS[k][1]} for k in keys},
        "nncf": peer.versions or peer.missing,
        "peer_python": str(peer.python),
        "edgecnn_gaps": gaps(rows),
        "pooled": pooled(rows),
        "qdq_disagree": disagreements(rows),
        "models_not_measured": left,
        "command": args.command,
    }


def _kept(keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The previous result's rows of the models not in ``keys``, and the commands that measured them."""
    path = Path(RESULTS_DIR) / f"{NAME}.json"
    if not path.exists():
        return [], []
    previous = json.loads(path.read_text(encoding="utf-8"))
    meta = previous.get("meta") or {}
    commands = [*meta.get("earlier_commands", []), meta.get("command", "")]
    sets = meta.get("qdq_disagree") or {}
    kept = [r for r in previous["rows"] if r["model"] not in keys]
    for row in kept:
        label = f"{row['model']}/{row['granularity']}/{row['quantizer']}"
        if label in sets:
            row[DISAGREE] = frozenset(sets[label])
    return kept, [c for c in commands if c]


def main(argv: list[str] | None = None) -> int:
    """Measure every model and write ``results/quant_peers.json``; without the NNCF venv, its rows say so."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{' and '.join(QUICK)} only, fewer rounds")
    model_options(parser, f"all: {', '.join(MODELS)}")
    parser.add_argument("--no-tflite", action="store_true", help="ORT/NNCF rows only, no .tflite rows")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the previous result's rows of the models this run does not measure (a run in parts)",
    )
    args = parser.parse_args(argv)
    args.command = " ".join(["python benchmarks/quant_peers.py", *(sys.argv[1:] if argv is None else argv)])
    peer = checked_peer(parser, args, NAME)
    keys = args.only or (list(QUICK) if args.quick else list(MODELS))
    rounds, runs = (3, 10) if args.quick else (6, 20)
    data, (rows, earlier) = Data.make(), _kept(keys) if args.keep else ([], [])
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-peers-") as tmp:
        for done, key in enumerate(keys, 1):
            start = time.perf_counter()
            try:
                model_rows = measure(key, data, peer, Path(tmp), rounds, runs, args.epochs, not args.no_tflite)
            except Exception as error:  # one model that cannot be trained or exported does not stop the others
                model_rows = [{"model": key, "granularity": "—", "quantizer": "fp32", "error": first_line(error)}]
            rows += model_rows
            print(f"{NAME}: {key} in {time.perf_counter() - start:.0f} s", flush=True)
            for row in model_rows:
                print(f"  {json.dumps({k: v for k, v in row.items() if k != DISAGREE})}", flush=True)
            measured = [k for k in MODELS if k in keys[:done] or any(r["model"] == k for r in rows)]
            left = [k for k in MODELS if k not in measured]  # --only's others too: not measured (nor kept)
            meta = _meta(args, measured, left, peer, rounds, runs, len(data.holdout), rows)
            meta["earlier_commands"] = earlier
            kept = [{k: v for k, v in row.items() if k != DISAGREE} for row in rows]
            path = write_result(NAME, kept, meta)  # after every model: a stopped run keeps what it measured
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
