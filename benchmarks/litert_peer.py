"""edgecnn's `.tflite` beside the official PyTorch converter's (litert-torch): op counts, agreement and latency.

For each torchvision model (random weights, seed 0, 1×3×224×224) the same state_dict goes to litert-torch
(``_litert_peer_convert.py``, run by the peer venv's python: litert-torch needs its own torch, jax, …) and to
``edgecnn.export("torchvision:NAME", weights=..., formats="onnx,tflite")``. Both fp32 files take NHWC input.
Recorded: op counts and histograms read from each flatbuffer, max error against torch on one input, and
LiteRT latency (XNNPACK, 1 thread, batch 1) in interleaved rounds (``common.interleaved``: min of the rounds'
minima, median of their p50s), with the peer's file timed twice (two
interpreters): ``peer_vs_itself_p50_pct`` is the run's A-vs-A noise floor for ``edgecnn_vs_peer_p50_pct``.
fp32 only: litert-torch's int8 comes
from PT2E quantization in torch with float I/O, not the same scheme as edgecnn's ai-edge-quantizer int8
with int8 I/O; edgecnn's int8 `.tflite` is checked against its own fp32 (cosine) instead.
Run by ``make bench``; alone: ``python benchmarks/litert_peer.py [--quick] [--peer-python PATH]``.
The peer venv: ``python3.11 -m venv V && V/bin/pip install torch==2.14.1 torchvision==0.29.1 litert-torch==0.10.0``;
its python is ``--peer-python``, else ``$EDGECNN_LITERT_PYTHON``, else ``../venv-litert/bin/python`` beside the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from common import BENCH_DIR, REPO_ROOT, interleaved, write_result

NAME = "litert_peer"
MODELS = ("mobilenet_v2", "resnet18", "efficientnet_b0", "mobilenet_v3_large")
SHAPE = (1, 3, 224, 224)
PEER_SCRIPT = BENCH_DIR / "_litert_peer_convert.py"
DEFAULT_PEER = REPO_ROOT.parent / "venv-litert" / "bin" / "python"
INT8_INPUTS = 4  # random inputs for edgecnn's int8-vs-fp32 cosine


def peer_python(given: str | None) -> Path:
    """The peer venv's python: the option, else $EDGECNN_LITERT_PYTHON, else DEFAULT_PEER."""
    return Path(given or os.environ.get("EDGECNN_LITERT_PYTHON") or DEFAULT_PEER)


def op_histogram(path: Path) -> dict[str, int]:
    """Builtin op name → count over every subgraph of a ``.tflite`` file, most frequent first."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    counts: Counter[str] = Counter()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            counts[code.CustomCode().decode() if code.CustomCode() else names.get(builtin, str(builtin))] += 1
    return dict(counts.most_common())


class Runner:
    """One `.tflite` in the LiteRT interpreter (default resolver: XNNPACK), one thread, its input set once."""

    def __init__(self, path: Path, x_nhwc: np.ndarray) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self.interpreter.set_tensor(detail["index"], self._cast(x_nhwc, detail))
        self.output = self.interpreter.get_output_details()[0]

    @staticmethod
    def _cast(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
        scale, zero = detail["quantization"]
        if detail["dtype"] == np.float32 or not scale:
            return x.astype(detail["dtype"])
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])

    def invoke(self) -> None:
        self.interpreter.invoke()

    def result(self, x_nhwc: np.ndarray | None = None) -> np.ndarray:
        """The output (dequantized) for the input set at construction, or for ``x_nhwc``."""
        if x_nhwc is not None:
            detail = self.interpreter.get_input_details()[0]
            self.interpreter.set_tensor(detail["index"], self._cast(x_nhwc, detail))
        self.invoke()
        out = self.interpreter.get_tensor(self.output["index"]).astype(np.float64)
        scale, zero = self.output["quantization"]
        return (out - zero) * scale if scale else out


def max_rel_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |actual − reference| / max |reference|."""
    return float(np.abs(actual - reference).max() / (np.abs(reference).max() or 1.0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def reference(name: str, work: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """The seeded model's state_dict file, the input (NCHW) and torch's output."""
    import torch
    import torchvision

    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(weights=None).eval()
    weights = work / f"{name}.pt"
    torch.save(module.state_dict(), weights)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy().astype(np.float64)
    return weights, x, expected


def convert_peer(python: Path, name: str, weights: Path, out: Path) -> dict[str, Any]:
    """Run the peer conversion in its venv; its JSON line (versions, seconds)."""
    done = subprocess.run(
        [str(python), str(PEER_SCRIPT), name, str(weights), str(out)],
        capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"litert-torch failed on {name} (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _percent(value: float, base: float) -> float:
    """How much ``value`` is above ``base``, in percent (negative: below)."""
    return round(100 * (value / base - 1), 2)


def measure(name: str, python: Path, work: Path, rounds: int, runs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model's row, and the histograms and peer versions for the meta."""
    from edgecnn.pipeline.export import export

    weights, x, expected = reference(name, work)
    peer_path = work / f"{name}.litert_torch.tflite"
    peer = convert_peer(python, name, weights, peer_path)
    start = time.perf_counter()
    result = export(
        f"torchvision:{name}", weights=weights, out=work / name, formats="onnx,tflite",
        input_shape=",".join(map(str, SHAPE)), calib_size=16, holdout=8,
    )  # fmt: skip
    edgecnn_s = round(time.perf_counter() - start, 1)
    ours_path, int8_path = result.artifacts["fp32_tflite"], result.artifacts["int8_tflite"]
    x_nhwc = x.transpose(0, 2, 3, 1)
    runners = {  # a second interpreter of the peer's own file: the A-vs-A spread is the noise floor of the run
        "edgecnn": Runner(ours_path, x_nhwc),
        "litert_torch": Runner(peer_path, x_nhwc),
        "litert_torch_again": Runner(peer_path, x_nhwc),
    }
    hist = {"edgecnn": op_histogram(ours_path), "litert_torch": op_histogram(peer_path)}
    timing = interleaved({k: r.invoke for k, r in runners.items()}, rounds, runs)
    int8, fp32 = Runner(int8_path, x_nhwc), runners["edgecnn"]
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(SHAPE).astype(np.float32).transpose(0, 2, 3, 1) for _ in range(INT8_INPUTS)]
    int8_cos = min(cosine(int8.result(v), fp32.result(v)) for v in inputs)
    row = {
        "model": name,
        "edgecnn_ops": sum(hist["edgecnn"].values()),
        "litert_torch_ops": sum(hist["litert_torch"].values()),
        "edgecnn_min_ms": timing["edgecnn"]["min_ms"],
        "litert_torch_min_ms": timing["litert_torch"]["min_ms"],
        "edgecnn_p50_ms": timing["edgecnn"]["p50_ms"],
        "litert_torch_p50_ms": timing["litert_torch"]["p50_ms"],
        "edgecnn_vs_peer_p50_pct": _percent(timing["edgecnn"]["p50_ms"], timing["litert_torch"]["p50_ms"]),
        "peer_vs_itself_p50_pct": _percent(timing["litert_torch_again"]["p50_ms"], timing["litert_torch"]["p50_ms"]),
        "edgecnn_rel_err": max_rel_error(runners["edgecnn"].result(x_nhwc), expected),
        "litert_torch_rel_err": max_rel_error(runners["litert_torch"].result(x_nhwc), expected),
        "edgecnn_int8_ops": sum(op_histogram(int8_path).values()),
        "edgecnn_int8_cosine": round(int8_cos, 4),
        "edgecnn_s": edgecnn_s,
        "litert_torch_s": peer["seconds"],
    }
    return row, {"histograms": hist, "peer_versions": peer["versions"]}


def main(argv: list[str] | None = None) -> int:
    """Measure every model and write ``results/litert_peer.json``; without the peer venv, say so and skip."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="mobilenet_v3_large only, few rounds")
    parser.add_argument("--peer-python", default=None, help="python of the venv that has litert-torch")
    parser.add_argument("--only", nargs="*", default=None, help="torchvision model names (default: all four)")
    args = parser.parse_args(argv)
    python = peer_python(args.peer_python)
    if not python.is_file():
        print(f"{NAME}: skipped: no litert-torch venv at {python} (see the docstring to make one)", file=sys.stderr)
        return 0
    models = args.only or (["mobilenet_v3_large"] if args.quick else list(MODELS))
    rounds, runs = (4, 5) if args.quick else (10, 10)
    rows, histograms, versions = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="edgecnn-litert-peer-") as tmp:
        for name in models:
            row, extra = measure(name, python, Path(tmp), rounds, runs)
            rows.append(row)
            histograms[name], versions = extra["histograms"], extra["peer_versions"]
            print(f"{NAME}: {json.dumps(row)}", flush=True)
    description = (
        "torchvision models, random weights (seed 0), 1×3×224×224, NHWC input: litert-torch "
        f"{versions.get('litert-torch', '?')} (`convert(to_channel_last_io(m))`, in its own venv) vs "
        "`edgecnn.export('torchvision:NAME', formats='onnx,tflite')`, fp32. `*_ops`: builtin ops in the "
        "flatbuffer; `*_rel_err`: max |out − torch| / max |torch| on one input; latency: LiteRT interpreter, "
        f"XNNPACK, 1 thread, batch 1, {rounds} interleaved rounds of {runs} runs each (min and p50 ms); "
        "`edgecnn_vs_peer_p50_pct`: edgecnn's p50 over litert-torch's, `peer_vs_itself_p50_pct`: litert-torch's "
        "file in a second interpreter over the first (the run's noise floor). "
        f"`edgecnn_int8_*`: edgecnn's int8 `.tflite` (ai-edge-quantizer) and its worst cosine to fp32 on "
        f"{INT8_INPUTS} random inputs; litert-torch's int8 (PT2E, float I/O) is not compared. "
        "Command: `python benchmarks/litert_peer.py [--quick] [--peer-python VENV/bin/python]`, the peer venv made by "
        "`python3.11 -m venv VENV && VENV/bin/pip install torch==2.14.1 torchvision==0.29.1 litert-torch==0.10.0`."
    )
    meta = {"description": description, "peer_versions": versions, "histograms": histograms}
    print(f"{NAME}: wrote {write_result(NAME, rows, meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
