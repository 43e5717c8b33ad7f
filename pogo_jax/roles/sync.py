"""``pogo sync``: the confirmed state at a height, rebuilt from genesis and the 4-bit updates.

Through the role's own ``ChainView``: the log replayed and checked, every blob fetched by the hash the
log names and checked, every root on the way recomputed (``chain.history.confirmed_state``). No jax.
"""

from __future__ import annotations

from pathlib import Path

from pogo_jax.chain.view import ChainView
from pogo_jax.spec.state import save_state


def sync(view: ChainView, height: int | None, out: str | Path, progress=None) -> dict:  # noqa: ANN001
    sc = view.confirmed(height, progress)
    save_state(out, sc.arrays)
    return {"height": sc.height, "root": sc.root.hex(), "out": str(out), "tensors": len(sc.arrays)}
