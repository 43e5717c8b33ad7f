"""SHA-256 (FIPS 180-4) in pure ``lax``/``jnp`` uint32 ops, vectorized over any leading batch shape.

Modelled on JAX's Threefry: one portable reference written with plain uint32 arithmetic and a
*rolled* round loop (``lax.fori_loop`` with a small ``unroll``), so the compiled program stays
small whatever the message length; faster lowerings (``pallas_sha256``) must reproduce its bits.

Internally a batch of states is a tuple of 8 arrays and a message block a tuple of 16 arrays (one
per word, each of the batch shape). Tuples are free to rotate inside a loop body, so the message
schedule is a sliding 16-word window carried through the round loop: no (..., 64) schedule array
and no dynamic indexing into it. Two loops per block: 48 rounds that also extend the schedule,
then 16 rounds that only consume it. A fully unrolled Python loop (64 rounds inlined) was tried
and dropped: a scratch run using it had not finished compiling on XLA:CPU after 10 minutes,
matching the issue's report from the H100.

Words are big-endian message words, as FIPS 180-4 defines them; callers byte-swap little-endian
data (``bswap32``). All additions wrap modulo 2**32 because the dtype is uint32. The constant
tables and padding helpers live in ``sha256_np`` (no jax) and are re-exported here.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from pogo_jax.commit.sha256_np import (  # noqa: F401 - re-exported
    H0,
    K,
    digest_bytes,
    digest_words,
    pad_message,
    padding_words,
)

State = tuple  # 8 uint32 arrays of the batch shape
Block = tuple  # 16 uint32 arrays of the batch shape


def _u32(x: int) -> np.uint32:
    return np.uint32(x)


def rotr(x: jnp.ndarray, n: int) -> jnp.ndarray:
    return (x >> _u32(n)) | (x << _u32(32 - n))


def bswap32(x: jnp.ndarray) -> jnp.ndarray:
    """Byte-swap each uint32 (little-endian data words -> big-endian message words)."""
    return (x << _u32(24)) | ((x & _u32(0xFF00)) << _u32(8)) | ((x >> _u32(8)) & _u32(0xFF00)) | (x >> _u32(24))


def _big_sigma0(a):
    return rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)


def _big_sigma1(e):
    return rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)


def _small_sigma0(w):
    return rotr(w, 7) ^ rotr(w, 18) ^ (w >> _u32(3))


def _small_sigma1(w):
    return rotr(w, 17) ^ rotr(w, 19) ^ (w >> _u32(10))


def _round(s: State, k: jnp.ndarray, w: jnp.ndarray) -> State:
    a, b, c, d, e, f, g, h = s
    t1 = h + _big_sigma1(e) + ((e & f) ^ (~e & g)) + k + w
    t2 = _big_sigma0(a) + ((a & b) ^ (a & c) ^ (b & c))
    return (t1 + t2, a, b, c, d + t1, e, f, g)


def compress_tuple(state: State, block: Block, unroll: int = 1) -> State:
    """One compression: rolled rounds with the schedule as a sliding window in the loop carry."""
    k = jnp.asarray(K)

    def body_sched(t, carry):
        s, w = carry[:8], carry[8:]
        s = _round(s, k[t], w[0])
        new = _small_sigma1(w[14]) + w[9] + _small_sigma0(w[1]) + w[0]
        return s + w[1:] + (new,)

    def body_tail(t, carry):
        s, w = carry[:8], carry[8:]
        s = _round(s, k[t], w[0])
        return s + w[1:] + (w[0],)  # rotate: keeps the carry shape, the word is never used again

    carry = tuple(state) + tuple(block)
    carry = lax.fori_loop(0, 48, body_sched, carry, unroll=min(unroll, 48))
    carry = lax.fori_loop(48, 64, body_tail, carry, unroll=min(unroll, 16))
    return tuple(x + y for x, y in zip(state, carry[:8], strict=True))


def _split(x: jnp.ndarray, n: int) -> tuple:
    return tuple(x[..., i] for i in range(n))


def compress(state: jnp.ndarray, block: jnp.ndarray, unroll: int = 1) -> jnp.ndarray:
    """(..., 8) u32 state, (..., 16) u32 big-endian block -> (..., 8) u32 new state."""
    state = jnp.asarray(state, jnp.uint32)
    block = jnp.asarray(block, jnp.uint32)
    s = compress_tuple(_split(state, 8), _split(block, 16), unroll)
    return jnp.stack(s, axis=-1)


def initial_state(batch_shape: tuple[int, ...]) -> State:
    return tuple(jnp.full(batch_shape, v, jnp.uint32) for v in H0)


def sha256_blocks(blocks: jnp.ndarray, state: State | None = None, unroll: int = 1) -> State:
    """Run compressions over ``blocks`` of shape (n_blocks, 16, *batch) (word-major, so every word
    is a contiguous row of the batch). Returns the 8-tuple state."""
    batch = blocks.shape[2:]
    st = initial_state(batch) if state is None else state
    nb = blocks.shape[0]
    if nb == 0:
        return st
    if nb == 1:
        return compress_tuple(st, _rows(blocks[0]), unroll)

    def body(b, s):
        blk = lax.dynamic_index_in_dim(blocks, b, axis=0, keepdims=False)
        return compress_tuple(s, _rows(blk), unroll)

    return lax.fori_loop(0, nb, body, st)


def _rows(blk: jnp.ndarray) -> Block:
    return tuple(blk[i] for i in range(blk.shape[0]))


def sha256_words(words_be: jnp.ndarray, unroll: int = 1) -> jnp.ndarray:
    """(..., 16*nb) u32 already padded big-endian message words -> (..., 8) u32 digest words."""
    words_be = jnp.asarray(words_be, jnp.uint32)
    n = words_be.shape[-1]
    if n % 16:
        raise ValueError("padded message must be a whole number of 16-word blocks")
    batch = words_be.shape[:-1]
    blocks = jnp.moveaxis(words_be.reshape(batch + (n // 16, 16)), (-2, -1), (0, 1))
    return jnp.stack(sha256_blocks(blocks, unroll=unroll), axis=-1)
