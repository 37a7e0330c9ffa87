"""Int8 agreement with fp32 on shifted held-out digits, where fp32's decisions are close and quantizers part.

``quant_peers`` and ``quant_draws`` judge on 1,000 held-out digits that every model classifies with wide margins:
int8 and fp32 differ on a few digits a row, within the spread of the calibration draws. A user's images are not
centred like the training digits. This translates each held-out digit by ``SHIFT`` pixels in the 8 directions (zero
fill: the digits are 8×8 images upscaled 4×, so 2 px is half a source pixel) and keeps the original: 9,000 images on
which fp32 is less sure, so that many of its decisions are near ties. Per quantizer it counts the images whose
exact-QDQ top-1 differs from fp32's, on all of them and on the 1,000 unshifted ones, and the logits' SQNR.

Quantizers: ``ort_default``, ``nncf`` and ``edgecnn_export`` as quant_peers makes them (calibrated on its 128
digits), and a probe, ``edgecnn_export_mean_ranges``: edgecnn_export's graph with every activation's range (the
graph input's excepted) replaced by the mean over the calibration digits of each digit's minimum and maximum —
NNCF's default estimator for per-tensor activations (``MEAN_MINMAX``) — its biases kept as the export corrected
them for its own ranges (as float). The probe is made here, not by the package: it measures a lever before it is
built. Quality only. Run by ``make bench``; alone:
``python benchmarks/quant_shift.py [--only NAME ...] [--shift PX] [--peer-python PATH]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import write_result
from quant_draws import DEFAULT_MODELS
from quant_peers import (
    CALIB,
    GRANULARITIES,
    MEAN,
    STD,
    Data,
    checked_peer,
    fp32_model,
    model_options,
    quantizers,
    sign_p,
)

from edgecnn.analysis.metrics import sqnr_db
from edgecnn.errors import first_line
from edgecnn.runtime.loader import load

NAME = "quant_shift"
SHIFT = 2  # pixels, in each of the 8 directions
QUANTIZERS = ("ort_default", "nncf", "edgecnn_export")
PROBE = "edgecnn_export_mean_ranges"
PEERS = {"edgecnn_export": ("ort_default", "nncf"), PROBE: ("ort_default", "nncf", "edgecnn_export")}
WRONG = "_wrong"  # a row's shifted-set indices whose top-1 differs from fp32's (gaps' data; not in the file)


def translate(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """N×C×H×W ``images`` moved ``dy`` rows down and ``dx`` columns right, zero-filled."""
    out = np.zeros_like(images)
    (src_y, dst_y), (src_x, dst_x) = _span(images.shape[-2], dy), _span(images.shape[-1], dx)
    out[..., dst_y, dst_x] = images[..., src_y, src_x]
    return out


def _span(size: int, move: int) -> tuple[slice, slice]:
    """The source and destination slices of an axis of ``size`` moved by ``move``."""
    return (slice(0, size - move), slice(move, size)) if move >= 0 else (slice(-move, size), slice(0, size + move))


def shifted_set(holdout: np.ndarray, shift: int) -> np.ndarray:
    """The normalised held-out digits, then each moved by ``shift`` px in the 8 directions (pixels moved, not the
    normalised values: the fill is a black pixel)."""
    pixels = holdout * STD + MEAN
    moves = [(dy, dx) for dy in (-shift, 0, shift) for dx in (-shift, 0, shift) if (dy, dx) != (0, 0)]
    images = [pixels] + [translate(pixels, dy, dx) for dy, dx in moves]
    return ((np.concatenate(images) - MEAN) / STD).astype(np.float32)


def _activation_quantizers(model: Any) -> list[Any]:
    """The QuantizeLinear nodes of a QDQ graph that quantize a computed tensor (not a weight, not a requantization)."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants | dequantized]


def mean_extremes(model: Any, quantizers: list[Any], calib: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per tensor the activation ``quantizers`` of QDQ ``model`` read: the mean over the calibration samples of each
    sample's minimum and maximum, each first clipped to the quantizer's range. The graph runs as quantized: a ReLU
    or clip that the quantizer fused into its range still bounds what it and the layers after it see."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bounds = {}
    for node in quantizers:
        scale, point = float(initializers[node.input[1]]), initializers[node.input[2]]
        info = np.iinfo(point.dtype)
        bounds[node.input[0]] = scale * (int(info.min) - int(point)), scale * (int(info.max) - int(point))
    names = sorted(bounds)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in present)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the exact QDQ arithmetic
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    lows, highs = np.zeros((len(calib), len(names))), np.zeros((len(calib), len(names)))
    for index, sample in enumerate(calib):
        for column, value in enumerate(session.run(names, {feed: sample[None]})):
            low, high = bounds[names[column]]
            lows[index, column], highs[index, column] = np.clip([value.min(), value.max()], low, high)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(names, lows.mean(0), highs.mean(0), strict=True)}


def with_mean_ranges(qdq: Path, calib: np.ndarray, dst: Path) -> int:
    """Write ``qdq`` to ``dst`` with its int32 biases as float and its activation ranges from :func:`mean_extremes`
    (widened to hold 0); how many ranges it set. A range is one scale and zero point: ORT gives a pool's or a
    reshape's output its input's, so the tensors that share one get the union of their mean extremes; the graph
    input's range, and any it shares, stays."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear"]:  # a bias's scale follows its input's
        tensor = initializers.get(node.input[0])
        if tensor is None or tensor.data_type != onnx.TensorProto.INT32:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        value = numpy_helper.to_array(tensor).astype(np.float64) * scale
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        graph.node.remove(node)
    groups: dict[tuple[str, str], list[Any]] = {}
    for node in _activation_quantizers(model):
        groups.setdefault((node.input[1], node.input[2]), []).append(node)
    inputs = {i.name for i in graph.input}
    groups = {names: nodes for names, nodes in groups.items() if not any(n.input[0] in inputs for n in nodes)}
    ranges = mean_extremes(model, [node for nodes in groups.values() for node in nodes], calib)
    for (scale_name, point_name), nodes in groups.items():
        low = min(0.0, *(ranges[n.input[0]][0] for n in nodes))
        high = max(0.0, *(ranges[n.input[0]][1] for n in nodes))
        point = initializers[point_name]
        dtype = numpy_helper.to_array(point).dtype
        qmin, qmax = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
        scale = max((high - low) / (qmax - qmin), float(np.finfo(np.float32).tiny))
        zero = np.clip(round(qmin - low / scale), qmin, qmax)
        # every QuantizeLinear and DequantizeLinear of the range reads these two initializers
        initializers[scale_name].CopyFrom(numpy_helper.from_array(np.array(scale, np.float32), scale_name))
        point.CopyFrom(numpy_helper.from_array(np.array(zero, dtype), point_name))
    onnx.save(model, str(dst))
    return len(groups)


def measure(key: str, data: Data, images: np.ndarray, work: Path, epochs: int, peer: Any) -> list[dict[str, Any]]:
    """One model's rows: fp32's accuracy, and per granularity and quantizer its disagreements with fp32."""
    fp32, family = fp32_model(key, data, work, epochs)
    reference = next(iter(load(fp32).run_all(images).values()))
    top, count = reference.argmax(1), len(data.holdout)
    labels = np.tile(data.labels, len(images) // count)
    rows = [{"model": key, "granularity": "—", "quantizer": "fp32", "shifted_accuracy": float(np.mean(top == labels)),
             "unshifted_accuracy": float(np.mean(top[:count] == data.labels))}]  # fmt: skip
    calib = data.calib
    calib_file = work / "calib.npy"
    np.save(calib_file, calib)
    makers = quantizers(peer, family, calib, calib_file)
    for granularity in GRANULARITIES:
        for quantizer in (*QUANTIZERS, PROBE):
            row: dict[str, Any] = {"model": key, "granularity": granularity, "quantizer": quantizer}
            dst = work / f"{key}.{granularity}.{quantizer}.onnx"
            try:
                if quantizer == PROBE:
                    exported = work / f"{key}.{granularity}.edgecnn_export.onnx"
                    row["ranges_set"] = with_mean_ranges(exported, calib, dst)
                else:
                    makers[quantizer](fp32, dst, granularity)
                logits = next(iter(load(dst, optimization="disable").run_all(images).values()))
            except Exception as error:  # a quantizer that fails on a graph is a finding, not a crash
                rows.append({**row, "error": first_line(error)})
                continue
            wrong = logits.argmax(1) != top
            row.update(shifted_disagree=int(wrong.sum()), unshifted_disagree=int(wrong[:count].sum()))
            row.update(shifted_sqnr_db=round(sqnr_db(reference, logits), 2))
            row[WRONG] = frozenset(np.flatnonzero(wrong).tolist())
            rows.append(row)
    for path in work.glob(f"{key}.*.onnx"):
        path.unlink()
    return rows


def gaps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, granularity) and pooled over the models: edgecnn_export and the probe against each other row of
    ``PEERS``, the images only one of the two gets wrong and the exact McNemar p of that split."""
    wrong = {(r["model"], r["granularity"], r["quantizer"]): r[WRONG] for r in rows if WRONG in r}
    out, pooled = [], {}
    for (model, granularity, ours), mine in wrong.items():
        for peer in PEERS.get(ours, ()):
            theirs = wrong.get((model, granularity, peer))
            if theirs is None:
                continue
            out.append(_gap(model, granularity, ours, peer, len(mine - theirs), len(theirs - mine)))
            total = pooled.setdefault((granularity, ours, peer), [0, 0])
            total[0] += len(mine - theirs)
            total[1] += len(theirs - mine)
    out += [_gap("all", g, ours, peer, a, b) for (g, ours, peer), (a, b) in pooled.items()]
    return out


def _gap(model: str, granularity: str, ours: str, peer: str, only_ours: int, only_peer: int) -> dict[str, Any]:
    return {"model": model, "granularity": granularity, "ours": ours, "peer": peer, "only_ours_wrong": only_ours,
            "only_peer_wrong": only_peer, "mcnemar_p": sign_p(only_ours, only_peer)}  # fmt: skip


def describe(shift: int, holdout: int, epochs: int, nncf: str) -> str:
    """The meta's description: what was measured and how."""
    return (
        f"Agreement under shift: each model trained on the digits ({epochs} epochs, as in quant_peers), quantized on "
        f"quant_peers' {CALIB} calibration digits by `ort_default`, `nncf` ({nncf}) and `edgecnn_export` as "
        f"quant_peers makes them, and `{PROBE}` (a probe made in this benchmark, not by the package: edgecnn_export's "
        "graph with each activation's range, the input's excepted, the mean over the calibration digits of each "
        "digit's min and max — NNCF's default per-tensor activation estimator; tensors that share a range, as a "
        "pool's output and input do, their union; `ranges_set` counts the ranges — biases as the export corrected "
        f"them, as float). Judged on the {holdout} held-out digits and the same moved {shift} px in the 8 "
        f"directions (zero fill), {9 * holdout} images: `shifted_disagree` the images whose exact-QDQ top-1 "
        f"differs from fp32's, `unshifted_disagree` those of the {holdout} unmoved, `shifted_sqnr_db` the logits' "
        "SQNR against fp32's on all; the fp32 rows give fp32's accuracy. `meta.gaps`: per model and pooled (`all`), "
        "the images only `ours` or only `peer` gets wrong and the exact McNemar p of that split (rounded to 4 "
        "places: 0 is below 0.0001)."
    )


def main(argv: list[str] | None = None) -> int:
    """Measure the models and write ``results/quant_shift.json``."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    model_options(parser, ", ".join(DEFAULT_MODELS))
    parser.add_argument("--shift", type=int, default=SHIFT, help="pixels each held-out digit moves, 1 to 16")
    args = parser.parse_args(argv)
    if not 1 <= args.shift <= 16:
        parser.error("--shift must be 1 to 16 pixels")
    command = " ".join(["python benchmarks/quant_shift.py", *(sys.argv[1:] if argv is None else argv)])
    peer = checked_peer(parser, args, NAME)
    data = Data.make()
    images = shifted_set(data.holdout, args.shift)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-shift-") as tmp:
        for key in args.only or DEFAULT_MODELS:
            start = time.perf_counter()
            try:
                rows += measure(key, data, images, Path(tmp), args.epochs, peer)
            except Exception as error:  # one model that cannot be trained or exported does not stop the others
                rows.append({"model": key, "granularity": "—", "quantizer": "fp32", "error": first_line(error)})
            print(f"{NAME}: {key} in {time.perf_counter() - start:.0f} s", flush=True)
            nncf = peer.versions.get("nncf", "?") if not peer.missing else peer.missing
            meta = {"description": describe(args.shift, len(data.holdout), args.epochs, nncf), "gaps": gaps(rows),
                    "shift_px": args.shift, "command": command}  # fmt: skip
            kept = [{k: v for k, v in row.items() if k != WRONG} for row in rows]
            path = write_result(NAME, kept, meta)  # after every model: a stopped run keeps what it measured
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
