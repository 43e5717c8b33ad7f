"""Pallas leaf hasher: the GPU lowering of ``hasher.leaf_hashes``, bit-identical to the jnp one.

One program hashes a tile of ``TILE`` leaves, one leaf per lane, as the plain CUDA kernel does
with one thread per leaf. The data arrive word-major ``(W, N)`` and already byte-swapped (one
fused transpose outside the kernel), so each load of message word j for the tile is contiguous.
Inside, the 64 rounds run as a rolled loop of ``ROUNDS_PER_ITER`` Python-unrolled rounds (round
constants are read from a small input ref: a kernel cannot capture constant arrays), and the
loop over the leaf's 64-byte blocks is rolled too, which keeps compile time bounded (a fully
unrolled 64-round body did not compile within 10 minutes on XLA:CPU). The schedule is a 16-word
sliding window extended every round (16 spare words per block, kept for a single loop body).

``hash_rows`` is traceable (the sharded hasher calls it inside ``shard_map`` on each device's own
rows). On CPU it runs with ``interpret=True`` only (tests/test_hasher.py checks its bits). The
Triton lowering needs power-of-two block shapes, so W = 1024 parameter leaves lower and the
132-word update leaves may not; ``hasher`` then falls back to the jnp lowering.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pogo_jax.commit import sha256
from pogo_jax.commit.sha256_np import HEADER_BYTES

TILE = 128
ROUNDS_PER_ITER = 8


def _compress(k_ref, state: tuple, block: tuple, r: int) -> tuple:
    def body(it, carry):
        s, w = carry[:8], carry[8:]
        for j in range(r):
            s = sha256._round(s, k_ref[it * r + j], w[0])
            new = sha256._small_sigma1(w[14]) + w[9] + sha256._small_sigma0(w[1]) + w[0]
            w = w[1:] + (new,)
        return s + w

    out = lax.fori_loop(0, 64 // r, body, tuple(state) + tuple(block))
    return tuple(x + y for x, y in zip(state, out[:8], strict=True))


def _kernel(k_ref, x_ref, idx_ref, o_ref, *, prefix: tuple[int, ...], w: int, r: int):
    t = o_ref.shape[1]
    st = tuple(jnp.full((t,), int(v), jnp.uint32) for v in sha256.H0)
    header = tuple(jnp.full((t,), p, jnp.uint32) for p in prefix)
    header += (sha256.bswap32(idx_ref[0, :]), sha256.bswap32(idx_ref[1, :]))
    st = _compress(k_ref, st, header, r)
    full = w // 16

    def body(b, s):
        return _compress(k_ref, s, tuple(x_ref[b * 16 + j, :] for j in range(16)), r)

    if full:
        st = lax.fori_loop(0, full, body, st)
    tail = [x_ref[i, :] for i in range(full * 16, w)]
    tail += [jnp.full((t,), int(p), jnp.uint32) for p in sha256.padding_words(HEADER_BYTES + 4 * w)]
    for b in range(0, len(tail), 16):
        st = _compress(k_ref, st, tuple(tail[b : b + 16]), r)
    for i in range(8):
        o_ref[i, :] = st[i]


def hash_rows(words_le: jax.Array, idx_lo: jax.Array, idx_hi: jax.Array, prefix: tuple[int, ...], *,
              interpret: bool, tile: int = TILE, rounds_per_iter: int = ROUNDS_PER_ITER) -> jax.Array:
    """Same contract and bits as ``device.hash_rows``: (N, W) uint32 words, (N,) index halves -> (N, 8)."""
    if 64 % rounds_per_iter:
        raise ValueError("rounds_per_iter must divide 64")
    n, w = words_le.shape
    n_pad = -(-n // tile) * tile
    data = sha256.bswap32(words_le).T  # (W, N) big-endian words, one fused pass
    idx = jnp.stack([idx_lo, idx_hi])
    if n_pad != n:
        data = jnp.pad(data, ((0, 0), (0, n_pad - n)))
        idx = jnp.pad(idx, ((0, 0), (0, n_pad - n)))
    out = pl.pallas_call(
        functools.partial(_kernel, prefix=prefix, w=w, r=rounds_per_iter),
        out_shape=jax.ShapeDtypeStruct((8, n_pad), jnp.uint32),
        grid=(n_pad // tile,),
        in_specs=[
            pl.BlockSpec((64,), lambda i: (0,)),
            pl.BlockSpec((w, tile), lambda i: (0, i)),
            pl.BlockSpec((2, tile), lambda i: (0, i)),
        ],
        out_specs=pl.BlockSpec((8, tile), lambda i: (0, i)),
        interpret=interpret,
    )(jnp.asarray(sha256.K), data, idx)
    return out[:, :n].T
