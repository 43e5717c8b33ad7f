"""The challenge (PROTOCOL 4.2-4.3): which leaves and loss windows the miner must open.

Everything follows from ``seed = SHA-256(b"pogo/challenge/v1" || header_hash || beacon)``, so any
verifier re-derives the same challenge and the miner, who commits before the beacon is revealed,
cannot aim at it. Draws are unbiased (rejection sampling, never a plain modulo) and the sequence
is prefix-stable: asking for more indices only appends to the list.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

from pogo_jax.errors import MalformedInput

CHALLENGE_DOMAIN = b"pogo/challenge/v1"
LABEL_LEAVES = b"leaves"
LABEL_WINDOWS = b"windows"
_U64 = 2**64


def derive_seed(header_hash: bytes, beacon: bytes) -> bytes:
    """SHA-256(b"pogo/challenge/v1" || header_hash || beacon), both 32 bytes."""
    if not isinstance(header_hash, bytes) or len(header_hash) != 32:
        raise MalformedInput("challenge: header hash must be 32 bytes")
    if not isinstance(beacon, bytes) or len(beacon) != 32:
        raise MalformedInput("challenge: beacon value must be 32 bytes")
    return hashlib.sha256(CHALLENGE_DOMAIN + header_hash + beacon).digest()


def sample_distinct(seed: bytes, label: bytes, n: int, k: int) -> list[int]:
    """``min(k, n)`` distinct uniform integers below ``n``, in draw order.

    Draw ``i`` is the first 8 bytes of SHA-256(seed || label || uint64_le(i)) as uint64 LE;
    values ``>= 2**64 - (2**64 % n)`` are rejected (so every residue is equally likely), then
    ``u % n`` is kept unless already drawn. Cost is about ``n * ln(n / (n - k))`` hashes.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n >= _U64:
        raise ValueError(f"sample_distinct: n must be an integer in [1, 2**64), got {n!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"sample_distinct: k must be a non-negative integer, got {k!r}")
    k = min(k, n)
    limit = _U64 - (_U64 % n)
    out: list[int] = []
    seen: set[int] = set()
    prefix = hashlib.sha256(seed + label)
    counter = 0
    while len(out) < k:
        h = prefix.copy()
        h.update(struct.pack("<Q", counter))
        counter += 1
        (u,) = struct.unpack_from("<Q", h.digest())
        if u >= limit:
            continue
        v = u % n
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


@dataclass(frozen=True)
class Challenge:
    seed: bytes
    leaf_indices: tuple[int, ...]
    window_indices: tuple[int, ...]


def make_challenge(
    header_hash: bytes, beacon: bytes, n_leaves: int, k: int, n_windows: int, m: int
) -> Challenge:
    """``k`` leaves (label b"leaves") below ``n_leaves`` and ``m`` windows (label b"windows")."""
    seed = derive_seed(header_hash, beacon)
    return Challenge(
        seed,
        tuple(sample_distinct(seed, LABEL_LEAVES, n_leaves, k)),
        tuple(sample_distinct(seed, LABEL_WINDOWS, n_windows, m)),
    )


def miss_probability(f: float, k: int) -> float:
    """Chance that ``k`` distinct uniform leaves all avoid a fraction ``f`` of bad leaves, bounded
    by sampling with replacement: ``(1 - f) ** k`` (distinct draws only miss less often)."""
    if not 0.0 <= f <= 1.0:
        raise ValueError("f must be in [0, 1]")
    if k < 0:
        raise ValueError("k must be >= 0")
    return (1.0 - f) ** k


def k_for_target(f: float, miss: float) -> int:
    """Smallest ``k`` with ``(1 - f) ** k <= miss``."""
    if not 0.0 < f <= 1.0:
        raise ValueError("f must be in (0, 1]")
    if not 0.0 < miss < 1.0:
        raise ValueError("miss must be in (0, 1)")
    if f == 1.0:
        return 1
    k = max(1, math.ceil(math.log(miss) / math.log1p(-f)))
    while k > 1 and miss_probability(f, k - 1) <= miss:  # guard against log rounding up
        k -= 1
    while miss_probability(f, k) > miss:
        k += 1
    return k
