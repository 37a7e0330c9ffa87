"""Latency of ONNX models on this host (ONNX Runtime, 1 thread, zeros at the static batch): one model's median,
or several models' minima over interleaved rounds, for choosing between graphs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.loader import ort_session


def _session_and_feed(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    session = ort_session(path, threads=1)
    feed = {
        i.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }
    for _ in range(3):
        session.run(None, feed)
    return session, feed


def _times_ms(session: Any, feed: dict[str, np.ndarray], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def host_latency_ms(path: Path, runs: int = 20) -> float:
    """Median single-thread latency of an ONNX model on this host at its static batch, else 1."""
    return float(np.median(_times_ms(*_session_and_feed(path), runs)))


def interleaved_min_ms(paths: dict[str, Path], rounds: int = 5, runs: int = 20) -> dict[str, float]:
    """Each model's minimum single-thread latency over ``rounds`` rounds of ``runs`` runs, the models taking turns
    (the order reversed every other round), so that a slow spell of the host falls on all of them alike."""
    sessions = {key: _session_and_feed(path) for key, path in paths.items()}
    best = dict.fromkeys(paths, float("inf"))
    order = list(paths)
    for r in range(rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            best[key] = min(best[key], *_times_ms(*sessions[key], runs))
    return {key: round(value, 4) for key, value in best.items()}
