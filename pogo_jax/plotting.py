"""Loss-curve PNGs with matplotlib's Agg backend (headless: no display needed on servers or CI)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG under a temporary name, then rename: a killed run never leaves half a PNG."""
    path = Path(path)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


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
        return save_png(fig, path)
    finally:
        plt.close(fig)


def plot_block_losses(records: Sequence[dict], path: str | Path) -> Path:
    """Per block, an arrow from L(theta_prev) to L(theta_next) on its round's windows (median of the full verifiers).

    Windows differ from block to block (they come from each block's beacon), so the arrows are
    not joined into a curve: what matters is that each one points down. Slashed blocks are red.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    try:
        for r in records:
            color = "tab:green" if r.get("outcome") == "confirmed" else "tab:red"
            h, a, b = r["height"], r["loss_prev"], r["loss_next"]
            ax.annotate("", xy=(h, b), xytext=(h, a),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2})
            ax.plot([h], [a], "o", color="tab:gray", markersize=4)
            ax.text(h + 0.08, (a + b) / 2, f"{a:.3f} -> {b:.3f}\n{r.get('outcome', '')}", fontsize=8,
                    va="center")
        heights = [r["height"] for r in records]
        if heights:
            ax.set_xlim(min(heights) - 0.5, max(heights) + 1.0)
            ax.set_xticks(heights)
            lo = min(min(r["loss_prev"], r["loss_next"]) for r in records)
            hi = max(max(r["loss_prev"], r["loss_next"]) for r in records)
            pad = 0.08 * (hi - lo or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title("PoGO blocks: loss on each block's challenge windows, before -> after")
        ax.set_xlabel("block height")
        ax.set_ylabel("loss (nats/token)")
        ax.grid(True, alpha=0.3)
        return save_png(fig, path)
    finally:
        plt.close(fig)
