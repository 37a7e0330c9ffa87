"""Int8 agreement with fp32 on shifted held-out digits, where fp32's decisions are close and quantizers part.

``quant_peers`` and ``quant_draws`` judge on 1,000 held-out digits that every model classifies with wide margins:
int8 and fp32 differ on a few digits a row, within the spread of the calibration draws. A user's images are not
centred like the training digits. This translates each held-out digit by ``SHIFT`` pixels in the 8 directions (the
border filled black: the digits are 8×8 images upscaled 4×, so 2 px is half a source pixel) and keeps the original:
9,000 images on which fp32 is less sure, so that many of its decisions are near ties. Per quantizer it counts the
images whose exact-QDQ top-1 differs from fp32's, on all of them and on the 1,000 unshifted ones, and the logits'
SQNR.

Quantizers: ``ort_default``, ``nncf``, ``edgecnn_export`` and ``edgecnn_export_minmax`` as quant_peers makes them
(calibrated on its 128 digits): the export chooses min-max, mean-of-extremes or auto ranges on its calibration
digits moved (``edgecnn.pipeline.range_choice``, no held-out digit involved); the ``_minmax`` row pins min-max, the
export's default before that choice. The moves are the choice's own (``range_choice.moved``). Quality only. Run by
``make bench``; alone: ``python benchmarks/quant_shift.py [--only NAME ...] [--shift PX] [--peer-python PATH]``.
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
    Data,
    checked_peer,
    fp32_model,
    model_options,
    quantizers,
)

from edgecnn.analysis.metrics import sign_p, sqnr_db
from edgecnn.errors import first_line
from edgecnn.pipeline.range_choice import moved
from edgecnn.runtime.loader import load

NAME = "quant_shift"
SHIFT = 2  # pixels, in each of the 8 directions
QUANTIZERS = ("ort_default", "nncf", "edgecnn_export", "edgecnn_export_minmax")
PEERS = {
    "edgecnn_export": ("ort_default", "nncf", "edgecnn_export_minmax"),
    "edgecnn_export_minmax": ("ort_default", "nncf"),
}
WRONG = "_wrong"  # a row's shifted-set indices whose top-1 differs from fp32's (gaps' data; not in the file)


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
        for quantizer in QUANTIZERS:
            row: dict[str, Any] = {"model": key, "granularity": granularity, "quantizer": quantizer}
            dst = work / f"{key}.{granularity}.{quantizer}.onnx"
            try:
                extra = makers[quantizer](fp32, dst, granularity) or {}
                row.update({k: v for k, v in extra.items() if k in ("ranges_chosen", "weights_chosen", "float_ops")})
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
    """Per (model, granularity) and pooled over the models: each row of ``PEERS`` against each of its peers, the
    images only one of the two gets wrong and the exact McNemar p of that split."""
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
        f"quant_peers' {CALIB} calibration digits by `ort_default`, `nncf` ({nncf}), `edgecnn_export` and "
        "`edgecnn_export_minmax` as quant_peers makes them (the export chooses min-max, mean-of-extremes or "
        "auto activation ranges by the top-1 decisions they keep on its calibration digits moved 1, 2 and 3 px, "
        "`ranges_chosen`; the `_minmax` row pins min-max, as `--method` does, its weights choice still judged on "
        "the moved calibration digits too; `weights_chosen` that choice's pick; `float_ops` the op types its float-op "
        "choice, timed on this host, kept float). Judged on the "
        f"{holdout} held-out digits and the same moved {shift} px in the 8 "
        f"directions (black fill), {9 * holdout} images: `shifted_disagree` the images whose exact-QDQ top-1 "
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
    images = moved(data.holdout, args.shift)
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
