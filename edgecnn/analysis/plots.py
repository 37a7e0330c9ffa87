"""PNG charts of the analysis results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.analysis.layerwise import LayerError
from edgecnn.files import atomic_write_bytes


def layer_sqnr_chart(errors: list[LayerError], path: Path, title: str, worst: int = 40) -> Path:
    """Horizontal bars of per-layer SQNR (dB), the ``worst`` layers, worst at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(errors, key=lambda e: e.sqnr_db)[:worst]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(shown) + 1.5))
    labels = [f"{e.node} ({e.op_type})" for e in shown]
    colors = ["#d62728" if e.sqnr_db < 15 else "#ff7f0e" if e.sqnr_db < 25 else "#2ca02c" for e in shown]
    ax.barh(range(len(shown)), [e.sqnr_db for e in shown], color=colors)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("SQNR vs fp32 (dB) — lower is worse")
    ax.set_title(title, fontsize=10)
    ax.axvline(20, color="grey", linestyle="--", linewidth=0.8)
    fig.tight_layout()
    return _save(fig, path)


def plan_chart(plan: Any, path: Path) -> Path:
    """Predicted latency vs expected top-1 of every candidate, the budget line and the chosen point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"published": ("o", "#1f77b4"), "interpolated": ("s", "#2ca02c"), "extrapolated": ("x", "#7f7f7f")}
    for method, (marker, color) in styles.items():
        chosen = [c for c in plan.candidates if c.accuracy == method]
        if chosen:
            ax.scatter(
                [c.predicted_ms for c in chosen],
                [c.expected_top1 for c in chosen],
                marker=marker,
                color=color,
                label=f"{method} accuracy",
                s=24,
            )
    ax.axvline(plan.budget_ms, color="#d62728", linestyle="--", linewidth=1, label=f"budget {plan.budget_ms:g} ms")
    if plan.headroom:
        ax.axvline(
            plan.limit_ms, color="#d62728", linestyle=":", linewidth=1, label=f"less {plan.headroom * 100:g}% headroom"
        )
    best = plan.chosen
    ax.scatter(
        [best.predicted_ms],
        [best.expected_top1],
        s=160,
        facecolors="none",
        edgecolors="#d62728",
        linewidths=2,
        label=f"chosen: {best.label}",
    )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"predicted latency on {plan.profile}, {plan.dtype} (ms, log scale)")
    ax.set_ylabel("expected ImageNet top-1 (%)")
    ax.set_title(f"edgecnn plan {plan.family} --profile {plan.profile}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically (through an exclusive temporary file beside ``path``) and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write_bytes(Path(path), lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """The indices of the points no other point beats: lower x (latency) and higher y, sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_chart(
    points: list[tuple[float, float]], labels: list[str], path: Path, xlabel: str, ylabel: str, title: str
) -> Path:
    """Each point (latency, figure) with its label, the Pareto front joined and ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="#1f77b4", s=24, label="cells")
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="#d62728", linewidth=1)
    ax.scatter(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        s=110,
        facecolors="none",
        edgecolors="#d62728",
        linewidths=1.5,
        label="Pareto front",
    )
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
