"""SHA-256 constants, padding and digest helpers without jax, plus a vectorized numpy lowering.

Shared by the jnp reference (``sha256``), the Pallas kernel and the host lowerings, so the tables
exist once. Importing this module never imports jax: the host hasher (``host_hash``) runs on
machines where importing jax alone costs seconds (docs/merkle.md).

``leaf_digests`` is SHA-256 over many leaves at once in plain numpy uint32 arithmetic, one leaf per
lane (the same data layout as the device kernels). It is measured next to hashlib in
``scripts/bench_merkle.py`` and is far slower than hashlib's SHA-NI code, so ``auto`` never picks it;
it stays as an independent vectorized implementation for the identical-bits test.
"""

from __future__ import annotations

import numpy as np

H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint32,
)

K = np.array(
    [
        0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
        0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
        0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
        0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
        0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
        0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
        0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
        0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
    ],
    dtype=np.uint32,
)

HEADER_BYTES = 64  # == spec.merkle.HEADER_BYTES; repeated so this module imports nothing of the package


def header_prefix(tag: bytes) -> bytes:
    """The first 56 bytes of H64: 0x00, the tag, zero fill (constant per tree)."""
    if len(tag) > HEADER_BYTES - 9:
        raise ValueError("tag too long")
    return (b"\x00" + tag).ljust(56, b"\x00")


def header_prefix_words(tag: bytes) -> np.ndarray:
    """The first 14 big-endian message words of H64."""
    return np.frombuffer(header_prefix(tag), dtype=">u4").astype(np.uint32)


def pad_message(msg: bytes) -> np.ndarray:
    """FIPS 180-4 padding of ``msg`` -> big-endian uint32 words (for tests and docs)."""
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


def words_to_digests(words: np.ndarray) -> np.ndarray:
    """(N, 8) uint32 digest words -> (N, 32) uint8 digest bytes."""
    return np.ascontiguousarray(np.asarray(words, np.uint32).astype(">u4")).view(np.uint8).reshape(-1, 32)


# ---------------------------------------------------------------- numpy lowering


def _rotr(x: np.ndarray, n: int) -> np.ndarray:
    return (x >> np.uint32(n)) | (x << np.uint32(32 - n))


def _compress(state: list[np.ndarray], block: list[np.ndarray]) -> list[np.ndarray]:
    a, b, c, d, e, f, g, h = state
    w = list(block)
    for t in range(64):
        if t >= 16:
            x15, x2 = w[t - 15], w[t - 2]
            s0 = _rotr(x15, 7) ^ _rotr(x15, 18) ^ (x15 >> np.uint32(3))
            s1 = _rotr(x2, 17) ^ _rotr(x2, 19) ^ (x2 >> np.uint32(10))
            w.append(w[t - 16] + s0 + w[t - 7] + s1)
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, h = t1 + t2, a, b, c, d + t1, e, f, g
    return [x + y for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]


def leaf_digests(rows: np.ndarray, index: np.ndarray, tag: bytes) -> np.ndarray:
    """(L, B) uint8 leaf bytes (B % 4 == 0), (L,) uint64 global leaf indices -> (L, 32) uint8 digests."""
    n, nbytes = rows.shape
    if nbytes % 4:
        raise ValueError("leaf length must be a multiple of 4 bytes")
    data = np.ascontiguousarray(np.ascontiguousarray(rows).view(">u4").astype(np.uint32).T)  # (W, L)
    idx = np.asarray(index, np.uint64)
    lo = (idx & np.uint64(0xFFFFFFFF)).astype(np.uint32).byteswap()  # LE index bytes read big-endian
    hi = (idx >> np.uint64(32)).astype(np.uint32).byteswap()
    header = [np.full(n, p, np.uint32) for p in header_prefix_words(tag)] + [lo, hi]
    state = _compress([np.full(n, v, np.uint32) for v in H0], header)
    tail = list(data) + [np.full(n, p, np.uint32) for p in padding_words(HEADER_BYTES + nbytes)]
    for b in range(0, len(tail), 16):
        state = _compress(state, tail[b : b + 16])
    return words_to_digests(np.stack(state, axis=1))
