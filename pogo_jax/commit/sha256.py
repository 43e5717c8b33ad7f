"""SHA-256 (FIPS 180-4) in pure ``lax``/``jnp`` uint32 ops, vectorized over any leading batch shape.

Modelled on JAX's Threefry: one portable reference written with plain uint32 arithmetic and a
*rolled* round loop (``lax.fori_loop`` with a small ``unroll``), so the compiled program stays
small whatever the message length; faster lowerings (``pallas_sha256``) must reproduce its bits.

Internally a batch of states is a tuple of 8 arrays and a message block a tuple of 16 arrays (one
per word, each of the batch shape). Tuples are free to rotate inside a loop body, so the message
schedule is a sliding 16-word window carried through the round loop: no (..., 64) schedule array
and no dynamic indexing into it. Two loops per block: 48 rounds that also extend the schedule,
then 16 rounds that only consume it. ``compress_schedule`` is the textbook variant (expand the
whole 64-word schedule first, then run the rounds over it) kept for comparison in the benchmark.
A fully unrolled Python loop (64 rounds inlined) was tried and dropped: a scratch run using it
had not finished compiling on XLA:CPU after 10 minutes, matching the issue's report from the H100.

Words are big-endian message words, as FIPS 180-4 defines them; callers byte-swap little-endian
data (``bswap32``). All additions wrap modulo 2**32 because the dtype is uint32.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint32,
)

K = np.array(
    [
        0x428A2F98,
        0x71374491,
        0xB5C0FBCF,
        0xE9B5DBA5,
        0x3956C25B,
        0x59F111F1,
        0x923F82A4,
        0xAB1C5ED5,
        0xD807AA98,
        0x12835B01,
        0x243185BE,
        0x550C7DC3,
        0x72BE5D74,
        0x80DEB1FE,
        0x9BDC06A7,
        0xC19BF174,
        0xE49B69C1,
        0xEFBE4786,
        0x0FC19DC6,
        0x240CA1CC,
        0x2DE92C6F,
        0x4A7484AA,
        0x5CB0A9DC,
        0x76F988DA,
        0x983E5152,
        0xA831C66D,
        0xB00327C8,
        0xBF597FC7,
        0xC6E00BF3,
        0xD5A79147,
        0x06CA6351,
        0x14292967,
        0x27B70A85,
        0x2E1B2138,
        0x4D2C6DFC,
        0x53380D13,
        0x650A7354,
        0x766A0ABB,
        0x81C2C92E,
        0x92722C85,
        0xA2BFE8A1,
        0xA81A664B,
        0xC24B8B70,
        0xC76C51A3,
        0xD192E819,
        0xD6990624,
        0xF40E3585,
        0x106AA070,
        0x19A4C116,
        0x1E376C08,
        0x2748774C,
        0x34B0BCB5,
        0x391C0CB3,
        0x4ED8AA4A,
        0x5B9CCA4F,
        0x682E6FF3,
        0x748F82EE,
        0x78A5636F,
        0x84C87814,
        0x8CC70208,
        0x90BEFFFA,
        0xA4506CEB,
        0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint32,
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


def compress_schedule_tuple(state: State, block: Block, unroll: int = 1) -> State:
    """Textbook variant: expand the 64-word schedule into an array, then 64 rolled rounds over it."""
    k = jnp.asarray(K)
    w0 = jnp.stack(block)  # (16, *batch)
    sched = jnp.concatenate([w0, jnp.zeros((48,) + w0.shape[1:], w0.dtype)])

    def expand(t, w):
        new = _small_sigma1(w[t - 2]) + w[t - 7] + _small_sigma0(w[t - 15]) + w[t - 16]
        return w.at[t].set(new)

    sched = lax.fori_loop(16, 64, expand, sched, unroll=min(unroll, 48))

    def body(t, s):
        return _round(s, k[t], sched[t])

    s = lax.fori_loop(0, 64, body, tuple(state), unroll=min(unroll, 64))
    return tuple(x + y for x, y in zip(state, s, strict=True))


VARIANTS = {"window": compress_tuple, "schedule": compress_schedule_tuple}


def _split(x: jnp.ndarray, n: int) -> tuple:
    return tuple(x[..., i] for i in range(n))


def compress(state: jnp.ndarray, block: jnp.ndarray, unroll: int = 1, variant: str = "window") -> jnp.ndarray:
    """(..., 8) u32 state, (..., 16) u32 big-endian block -> (..., 8) u32 new state."""
    state = jnp.asarray(state, jnp.uint32)
    block = jnp.asarray(block, jnp.uint32)
    s = VARIANTS[variant](_split(state, 8), _split(block, 16), unroll)
    return jnp.stack(s, axis=-1)


def initial_state(batch_shape: tuple[int, ...]) -> State:
    return tuple(jnp.full(batch_shape, v, jnp.uint32) for v in H0)


def sha256_blocks(blocks: jnp.ndarray, state: State | None = None, unroll: int = 1, variant: str = "window") -> State:
    """Run compressions over ``blocks`` of shape (n_blocks, 16, *batch) (word-major, so every word
    is a contiguous row of the batch). Returns the 8-tuple state."""
    comp = VARIANTS[variant]
    batch = blocks.shape[2:]
    st = initial_state(batch) if state is None else state
    nb = blocks.shape[0]
    if nb == 0:
        return st
    if nb == 1:
        return comp(st, _rows(blocks[0]), unroll)

    def body(b, s):
        blk = lax.dynamic_index_in_dim(blocks, b, axis=0, keepdims=False)
        return comp(s, _rows(blk), unroll)

    return lax.fori_loop(0, nb, body, st)


def _rows(blk: jnp.ndarray) -> Block:
    return tuple(blk[i] for i in range(blk.shape[0]))


def sha256_words(words_be: jnp.ndarray, unroll: int = 1, variant: str = "window") -> jnp.ndarray:
    """(..., 16*nb) u32 already padded big-endian message words -> (..., 8) u32 digest words."""
    words_be = jnp.asarray(words_be, jnp.uint32)
    n = words_be.shape[-1]
    if n % 16:
        raise ValueError("padded message must be a whole number of 16-word blocks")
    batch = words_be.shape[:-1]
    blocks = jnp.moveaxis(words_be.reshape(batch + (n // 16, 16)), (-2, -1), (0, 1))
    return jnp.stack(sha256_blocks(blocks, unroll=unroll, variant=variant), axis=-1)


def pad_message(msg: bytes) -> np.ndarray:
    """Host helper: FIPS 180-4 padding of ``msg`` -> big-endian uint32 words (for tests and docs)."""
    bitlen = 8 * len(msg)
    padded = msg + b"\x80" + b"\x00" * ((55 - len(msg)) % 64) + bitlen.to_bytes(8, "big")
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)


def padding_words(n_message_bytes: int) -> np.ndarray:
    """The words that FIPS 180-4 padding appends to a message of ``n_message_bytes`` bytes, for a
    message that is a whole number of 32-bit words (0x80 starts the next word)."""
    if n_message_bytes % 4:
        raise ValueError("message must be a whole number of words")
    n_words = n_message_bytes // 4
    n_zero = (13 - n_words) % 16  # 0x80 word + zeros + 2 length words end on a block boundary
    bitlen = 8 * n_message_bytes
    return np.array([0x80000000] + [0] * n_zero + [bitlen >> 32, bitlen & 0xFFFFFFFF], dtype=np.uint32)


def digest_bytes(state: np.ndarray) -> bytes:
    """(8,) uint32 state -> the 32-byte big-endian digest."""
    return np.asarray(state, dtype=np.uint32).astype(">u4").tobytes()


def digest_words(digest: bytes) -> np.ndarray:
    """Inverse of ``digest_bytes``."""
    return np.frombuffer(digest, dtype=">u4").astype(np.uint32)
