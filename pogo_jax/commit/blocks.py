"""Which leaves a shard of a tensor holds whole, and their indices (PROTOCOL section 1 geometry).

A tensor is flattened in C order and cut into leaves of ``S`` values. A shard is a block of the
tensor: per dimension a start and an extent. Let ``k`` be the innermost dimension the block does
not span fully. Along every later dimension the block is full, so the block is a grid of contiguous
runs of ``block[k] * prod(shape[k+1:])`` values. If that run length and the run's start are
multiples of ``S`` (and so is the tensor's own row ``shape[k] * prod(shape[k+1:])``), every leaf
lies whole inside one shard and the block reshapes locally to ``(L, S)`` leaf rows: it can be hashed
where it lives, with no data leaving the device. A block that spans the whole tensor is always
"aligned" (its last leaf is padded locally).

Written for any array module ``xp`` (numpy on the host, ``jax.numpy`` inside ``shard_map`` with
traced starts), so the host and device hashers share one formula. No jax import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def split_dim(shape: Sequence[int], block: Sequence[int]) -> int | None:
    """The innermost dimension the block does not cover fully (None: the block is the tensor)."""
    dims = [j for j, (n, b) in enumerate(zip(shape, block, strict=True)) if b != n]
    return dims[-1] if dims else None


def is_aligned(shape: Sequence[int], block: Sequence[int], s: int, starts: Sequence[int] | None = None) -> bool:
    """True when the block holds only whole leaves (``starts=None``: blocks of an even split)."""
    k = split_dim(shape, block)
    if k is None:
        return True
    q = math.prod(shape[k + 1 :])
    if (block[k] * q) % s or (shape[k] * q) % s:
        return False
    return starts is None or (starts[k] * q) % s == 0


def leaf_grid(xp: Any, shape: Sequence[int], block: Sequence[int], s: int, outer_starts: Sequence[Any],
              run_leaf_start: Any, dtype: Any) -> Any:
    """(L,) index within the tensor of each leaf row of an aligned, split block, in C order.

    ``outer_starts[j]`` is the block's start along dimension j < k; ``run_leaf_start`` the start
    along k in leaves (``start_k * prod(shape[k+1:]) / S``). Every term is a whole number of leaves
    (see ``is_aligned``), so no intermediate exceeds the tensor's leaf count.
    """
    k = split_dim(shape, block)
    if k is None:
        raise ValueError("leaf_grid is for split blocks; a whole tensor is arange(n_leaves)")
    q = math.prod(shape[k + 1 :])
    per_run = block[k] * q // s
    grid = tuple(block[:k]) + (per_run,)
    idx = xp.arange(per_run, dtype=dtype).reshape((1,) * k + (per_run,)) + xp.asarray(run_leaf_start, dtype)
    for j in range(k):
        stride = math.prod(shape[j + 1 :]) // s  # whole leaves: shape[k] * q is a multiple of S
        along = xp.arange(block[j], dtype=dtype) + xp.asarray(outer_starts[j], dtype)
        idx = idx + (along * xp.asarray(stride, dtype)).reshape((1,) * j + (block[j],) + (1,) * (k - j))
    return xp.broadcast_to(idx, grid).reshape(-1)
