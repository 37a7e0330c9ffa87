"""PNG charts of the analysis results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from edgecnn.analysis.layerwise import LayerError


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
