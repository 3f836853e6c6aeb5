"""Static figures (PNG) for the command line and reports, drawn with matplotlib's Agg backend.

matplotlib is imported inside each function: it costs a second at start-up and
most commands never draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def lr_find_plot(result: Any, path: str | Path) -> Path:
    """Loss against learning rate on a log axis, with the suggestion and the minimum/10 rule marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.raw_losses, color="#cbd5e1", lw=1, label="loss per batch")
    ax.plot(result.lrs, result.losses, color="#2563eb", lw=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.axvline(result.suggested_lr, color="#dc2626", ls="--",
               label=f"steepest descent: {result.suggested_lr:.2g}")
    ax.axvline(result.min_div10_lr, color="#16a34a", ls=":", label=f"minimum ÷ 10: {result.min_div10_lr:.2g}")
    top = max(result.losses[: max(len(result.losses) // 5, 1)]) * 1.6
    ax.set_ylim(min(result.losses) * 0.9, top)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    return save(fig, path)
