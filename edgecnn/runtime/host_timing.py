"""Latency of models on this host (1 thread, zeros at the static batch): ONNX models in ONNX Runtime, `.tflite`
files in LiteRT with XNNPACK; one model's median, or several models' minima over interleaved rounds, for choosing
between graphs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgecnn.errors import first_line
from edgecnn.formats import require_format
from edgecnn.runtime.loader import ort_session, tflite_interpreter


def runtime_label(path: Path) -> str:
    """The runtime (and how it runs) that times the model at ``path``: what a timing's record says."""
    return "LiteRT (XNNPACK)" if require_format(path).runtime == "tflite" else "ORT"


def _ort_call(path: Path) -> Callable[[], object]:
    session = ort_session(path, threads=1)
    feed = {
        i.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }
    return lambda: session.run(None, feed)


def _tflite_call(path: Path) -> Callable[[], object]:
    """The interpreter's invoke on inputs set once (an int8 input to its zero point): the graph's time alone, without
    the quantization and transposition of a runner's feed."""
    interpreter = tflite_interpreter(path, threads=1)
    for detail in interpreter.get_input_details():
        zero = detail["quantization"][1] if detail["dtype"] != np.float32 else 0
        interpreter.set_tensor(detail["index"], np.full(detail["shape"], zero, detail["dtype"]))
    return interpreter.invoke


def warm_call(path: Path) -> Callable[[], object]:
    """One run of the model at ``path`` on zeros, loaded and warmed up (3 runs): raises what its runtime raises when
    it cannot load or run it."""
    call = _tflite_call(path) if require_format(path).runtime == "tflite" else _ort_call(path)
    for _ in range(3):
        call()
    return call


def _times_ms(call: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def host_latency_ms(path: Path, runs: int = 20) -> float:
    """Median single-thread latency of a model on this host at its static batch, else 1."""
    return float(np.median(_times_ms(warm_call(path), runs)))


MIN_RUNS = 3  # a round's fewest runs when a budget cuts it
MIN_SPAN_S = 2.0  # a budgeted timing spans at least this long, over its loads: more rounds for fast graphs (below)
LOADS = 2  # a timing loads its models this many times and keeps each one's best (timed_over_loads)


class Warmed(NamedTuple):
    """Models loaded and warmed for timing side by side: ``calls`` by key, ``failed`` (key → why, first line), and
    the ``ballast`` session loaded after them, kept alive while they are timed."""

    calls: dict[str, Callable[[], object]]
    failed: dict[str, str]
    ballast: object


def warm_calls(paths: dict[str, Path], required: tuple[str, ...] = ()) -> Warmed:
    """:func:`warm_call` of each model (one in ``required`` that cannot be loaded or run raises; the others' failures
    are returned), then one more session of the first, loaded last and unused. Here the ORT session loaded last
    runs 0.7–2.7% faster than identical ones loaded before it — a placement effect that persists over any number
    of rounds (``benchmarks/timing_protocol.py``) and would favour whichever variant is loaded last; the ballast
    takes that place."""
    calls: dict[str, Callable[[], object]] = {}
    failed: dict[str, str] = {}
    for key, path in paths.items():
        try:
            calls[key] = warm_call(path)
        except Exception as error:
            if key in required:
                raise
            failed[key] = first_line(error)
    ballast = warm_call(paths[next(iter(calls))]) if calls else None
    return Warmed(calls, failed, ballast)


class Timed(NamedTuple):
    """Models' minimum latencies by key, and the optional models that could not be loaded or run (key → why)."""

    times: dict[str, float]
    failed: dict[str, str]


def timed_over_loads(
    paths: dict[str, Path],
    rounds: int = 5,
    runs: int = 20,
    budget_s: float | None = None,
    loads: int = LOADS,
    required: tuple[str, ...] = (),
    span_s: float = MIN_SPAN_S,
) -> Timed:
    """Each model's minimum single-thread latency over ``loads`` loads (:func:`warm_calls`, the order reversed every
    other load), each timed by :func:`interleaved_calls_min_ms` with its share of ``budget_s`` and of ``span_s``.
    One session's placement in memory leaves up to ~1% (a 32² MobileNet) to ~3% (DenseNet-121) between identical
    graphs that no number of rounds removes, and a different one is slow after a reload
    (``benchmarks/timing_protocol.py``): the minimum over loads is each graph's better placement. A model of
    ``required`` that cannot be loaded or run raises; the others' failures are returned."""
    best: dict[str, float] = {}
    failed: dict[str, str] = {}
    order = list(paths)
    share = None if budget_s is None else budget_s / loads
    for load in range(loads):
        keys = [key for key in (order if load % 2 == 0 else order[::-1]) if key not in failed]
        warmed = warm_calls({key: paths[key] for key in keys}, required)
        failed.update(warmed.failed)
        for key, ms in interleaved_calls_min_ms(warmed.calls, rounds, runs, share, span_s / loads).items():
            best[key] = min(best.get(key, math.inf), ms)
        del warmed  # its sessions freed before the next load's
    return Timed({key: best[key] for key in order if key in best and key not in failed}, failed)


def interleaved_min_ms(
    paths: dict[str, Path],
    rounds: int = 5,
    runs: int = 20,
    budget_s: float | None = None,
    span_s: float = MIN_SPAN_S,
) -> dict[str, float]:
    """Each model's minimum single-thread latency over ``rounds`` rounds of ``runs`` runs, the models taking turns
    (the order reversed every other round), so that a slow spell of the host falls on all of them alike, and over
    :data:`LOADS` loads (:func:`timed_over_loads`; raising what a load raises). With ``budget_s``, slow models get
    fewer runs a round (at least :data:`MIN_RUNS`), so that the timing takes about that long: a 224² ConvNeXt's int8
    `.tflite` runs for a tenth of a second, and 100 runs of each of its variants cost minutes for no better choice;
    and fast ones get more rounds, so that it spans at least ``span_s`` (a choice's :data:`MIN_SPAN_S` unless given):
    this host's slow spells last tenths of a second, and three 32² MobileNets' 5 × 20 runs take 25 ms — one spell
    can fall on one of them throughout."""
    return timed_over_loads(paths, rounds, runs, budget_s, required=tuple(paths), span_s=span_s).times


def interleaved_calls_min_ms(
    calls: dict[str, Callable[[], object]],
    rounds: int = 5,
    runs: int = 20,
    budget_s: float | None = None,
    span_s: float = MIN_SPAN_S,
) -> dict[str, float]:
    """:func:`interleaved_min_ms` of calls already warmed (:func:`warm_calls`), in one load; with ``budget_s``, the
    rounds span at least ``span_s``."""
    if budget_s is not None:
        once_s = sum(min(_times_ms(call, 2)) for call in calls.values()) / 1e3  # one run of each model
        if once_s > 0:
            runs = max(MIN_RUNS, min(runs, int(budget_s / (rounds * once_s))))
            rounds = max(rounds, min(math.ceil(span_s / (runs * once_s)), int(budget_s / (runs * once_s))))
    best = dict.fromkeys(calls, float("inf"))
    order = list(calls)
    for r in range(rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            best[key] = min(best[key], *_times_ms(calls[key], runs))
    return {key: round(value, 4) for key, value in best.items()}
