"""Loss-curve PNGs with matplotlib's Agg backend (headless: no display needed on servers or CI)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_curves(
    series: dict[str, Sequence[tuple[float, float]]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> Path:
    """One line per named series of (x, y) points; empty series are skipped. Returns ``path``.

    Written to a temporary name and renamed, so an interrupted run never leaves a half PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    try:
        for name, points in series.items():
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=name, marker="o" if len(points) < 20 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if any(series.values()):
            ax.legend()
        fig.tight_layout()
        tmp = path.with_name(path.name + ".tmp")
        fig.savefig(tmp, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
