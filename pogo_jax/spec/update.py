"""The 4-bit update: wire format and the host apply rule (PROTOCOL section 3). numpy only.

One update leaf (``S`` values, groups of ``G``) is ``S/G`` int8 exponents followed by ``S/2``
bytes of codes, two per byte, low nibble first, two's complement (528 bytes for S=1024, G=64).
A code ``c`` in ``{-7..7}`` with its group's exponent ``e`` in ``[-126, 15]`` stands for
``d = c * 2**e``, which float32 holds exactly, so no backend can round it differently. The new
value is one float32 addition ``theta + d`` (round-to-nearest-even), then every result whose
exponent field is 0 (subnormal, +0.0 or -0.0) becomes +0.0, and a non-finite result rejects
the block. ``pogo_jax.quant.apply_update`` is the device twin and must give the same bits.

Inputs are flushed the same way before the add. On every valid committed state (genesis passes
through ``flush`` too) this changes nothing; it only makes the rule bit-identical between
backends that treat subnormal operands as zero (XLA:CPU, TPU) and those that do not (NVIDIA).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pogo_jax.errors import Rejected

E_MIN = -126  # 2**-126 is the smallest normal float32: every nonzero d is normal
E_MAX = 15  # |d| <= 7 * 2**15, so a finite theta can never overflow to inf
CODE_MAX = 7
_EXP_MASK = np.uint32(0x7F800000)


def update_leaf_bytes(leaf_size: int, group_size: int) -> int:
    """Bytes of one wire leaf: ``S/G`` exponents + ``S/2`` code bytes (528 for 1024/64)."""
    if leaf_size <= 0 or group_size <= 0 or leaf_size % group_size or group_size % 2:
        raise ValueError("leaf_size must be a positive multiple of an even group_size")
    return leaf_size // group_size + leaf_size // 2


def pack_leaves(exps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(n, S/G)`` int8 exponents and ``(n, S)`` int8 codes -> ``(n, B)`` uint8 wire leaves.

    Only the low nibble of each code is kept (two's complement), low nibble = even index.
    """
    exps = np.asarray(exps)
    codes = np.asarray(codes)
    if exps.ndim != 2 or codes.ndim != 2 or exps.shape[0] != codes.shape[0] or codes.shape[1] % 2:
        raise ValueError(f"bad shapes: exps {exps.shape}, codes {codes.shape}")
    nib = codes.astype(np.int8).view(np.uint8) & np.uint8(0x0F)
    packed = nib[:, 0::2] | (nib[:, 1::2] << np.uint8(4))
    return np.concatenate([exps.astype(np.int8).view(np.uint8), packed], axis=1)


def unpack_leaves(buf: np.ndarray | bytes, leaf_size: int, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``pack_leaves`` that trusts nothing: length, exponent range and the -8 nibble.

    Returns ``(exps (n, S/G) int8, codes (n, S) int8)``. Accepts raw bytes (one or more leaves
    back to back) or a ``(n, B)`` uint8 array.
    """
    width = update_leaf_bytes(leaf_size, group_size)
    if isinstance(buf, bytes | bytearray | memoryview):
        raw = np.frombuffer(bytes(buf), dtype=np.uint8)
        if raw.size == 0 or raw.size % width:
            raise Rejected("BAD_LENGTH", f"update is {raw.size} bytes, not a positive multiple of {width}")
        raw = raw.reshape(-1, width)
    else:
        raw = np.asarray(buf)
        if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != width:
            raise Rejected("BAD_LENGTH",
                           f"update leaves must be uint8 (n, {width}), got {raw.dtype}{raw.shape}")
    ng = leaf_size // group_size
    exps = raw[:, :ng].view(np.int8)
    bad = (exps < E_MIN) | (exps > E_MAX)
    if bad.any():
        leaf, grp = np.argwhere(bad)[0]
        raise Rejected("BAD_EXPONENT", f"leaf {leaf} group {grp}: exponent {exps[leaf, grp]} outside "
                                       f"[{E_MIN}, {E_MAX}]")
    packed = raw[:, ng:]
    nib = np.empty((raw.shape[0], leaf_size), dtype=np.uint8)
    nib[:, 0::2] = packed & 0x0F
    nib[:, 1::2] = packed >> 4
    if (nib == 8).any():
        leaf, pos = np.argwhere(nib == 8)[0]
        raise Rejected("BAD_CODE", f"leaf {leaf} value {pos}: nibble 0x8 (-8) is not a valid code")
    codes = ((nib.astype(np.int16) ^ 8) - 8).astype(np.int8)  # sign-extend 4-bit two's complement
    return exps.copy(), codes


def check_padding(codes: np.ndarray, valid: Sequence[int]) -> None:
    """Reject any nonzero code past each leaf's valid count (padding must stay +0.0)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(valid) != codes.shape[0]:
        raise ValueError("codes must be (n, S) with one valid count per leaf")
    pos = np.arange(codes.shape[1])
    mask = pos[None, :] >= np.asarray(valid, dtype=np.int64)[:, None]
    bad = mask & (codes != 0)
    if bad.any():
        leaf, p = np.argwhere(bad)[0]
        raise Rejected("BAD_PADDING", f"leaf {leaf} padding value {p} has code {codes[leaf, p]}, must be 0")


def flush(x: np.ndarray) -> np.ndarray:
    """By bits: every float32 whose exponent field is 0 (subnormal or -0.0) becomes +0.0."""
    x = np.array(x, dtype=np.float32, order="C")  # keeps 0-d shapes (ascontiguousarray would not)
    bits = x.view(np.uint32)
    return np.where((bits & _EXP_MASK) == 0, np.uint32(0), bits).view(np.float32)


def pow2(e: np.ndarray) -> np.ndarray:
    """``2**e`` as float32 for integer ``e`` in [-126, 127], built from its bits (exact)."""
    return ((np.asarray(e).astype(np.int32) + 127).astype(np.uint32) << np.uint32(23)).view(np.float32)


def dequantize_leaves(exps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``d = c * 2**e`` per value, float32 and exact."""
    exps = np.asarray(exps)
    codes = np.asarray(codes)
    n, s = codes.shape
    g = s // exps.shape[1]
    scale = np.repeat(pow2(exps), g, axis=1)
    return (codes.astype(np.float32) * scale).reshape(n, s)


def apply_leaves(theta: np.ndarray, exps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """PROTOCOL 3 on the host: ``flush(flush(theta) + c * 2**e)``; Rejected("NONFINITE") otherwise."""
    theta = np.asarray(theta)
    if theta.dtype != np.float32 or theta.shape != np.asarray(codes).shape:
        raise ValueError(f"theta must be float32 {np.asarray(codes).shape}, got {theta.dtype}{theta.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = flush(flush(theta) + dequantize_leaves(exps, codes))
    bad = ~np.isfinite(out)
    if bad.any():
        leaf, p = np.argwhere(bad)[0]
        raise Rejected("NONFINITE", f"leaf {leaf} value {p}: result {out[leaf, p]} is not finite")
    return out


def apply_leaf_bytes(theta_leaf: bytes, update_leaf: bytes, leaf_size: int, group_size: int,
                     valid: int) -> bytes:
    """One opened leaf (light verifier): unpack, check padding, apply -> expected theta_next bytes."""
    if len(theta_leaf) != 4 * leaf_size:
        raise Rejected("BAD_LENGTH", f"parameter leaf is {len(theta_leaf)} bytes, expected {4 * leaf_size}")
    if not 0 < valid <= leaf_size:
        raise ValueError(f"valid count {valid} outside (0, {leaf_size}]")
    exps, codes = unpack_leaves(update_leaf, leaf_size, group_size)
    if exps.shape[0] != 1:
        raise Rejected("BAD_LENGTH", f"expected one update leaf, got {exps.shape[0]}")
    check_padding(codes, [valid])
    theta = np.frombuffer(theta_leaf, dtype="<f4").astype(np.float32).reshape(1, leaf_size)
    out = apply_leaves(theta, exps, codes)
    if out[0, valid:].view(np.uint32).any():
        raise Rejected("BAD_PADDING", "parameter leaf padding is not +0.0")
    return out.astype("<f4").tobytes()


def valid_counts(layout) -> np.ndarray:
    """Real (non-padding) values in every leaf of a ``Layout``, in global leaf order (int64)."""
    s = layout.leaf_size
    out = np.empty(layout.n_leaves, dtype=np.int64)
    for t in layout.tensors:
        j = np.arange(t.n_leaves, dtype=np.int64)
        out[t.first_leaf : t.first_leaf + t.n_leaves] = np.minimum(s, t.size - j * s)
    return out
