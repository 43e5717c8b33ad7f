"""The challenge (PROTOCOL 4.2): which leaves a candidate must open and which windows a round evaluates.

Leaves follow from ``seed = SHA-256(b"pogo/challenge/v1" || header_hash || B)``, per candidate; the
evaluation windows from ``round_seed = SHA-256(b"pogo/round/v1" || chain_id || uint64_le(h) ||
uint64_le(a) || B)`` (the chain id as its 32 bytes), the same for every candidate of round (h, a), drawn
below the number of windows one sealed shard of the recorded dataset holds (PROTOCOL 14). Any
verifier re-derives both, and a miner, who commits before the round's beacon value ``B`` is revealed,
cannot aim at them. Draws are unbiased
(rejection sampling, never a plain modulo) and the sequence
is prefix-stable: asking for more indices only appends to the list.
"""

from __future__ import annotations

import hashlib
import math
import struct

from pogo_jax.errors import MalformedInput

CHALLENGE_DOMAIN = b"pogo/challenge/v1"
ROUND_DOMAIN = b"pogo/round/v1"
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


def round_seed(chain_id: str, height: int, attempt: int, beacon: bytes) -> bytes:
    """SHA-256(b"pogo/round/v1" || chain_id (32 bytes) || uint64_le(h) || uint64_le(a) || B)."""
    if not isinstance(beacon, bytes) or len(beacon) != 32:
        raise MalformedInput("challenge: beacon value must be 32 bytes")
    if not (0 <= height < _U64 and 0 <= attempt < _U64):
        raise MalformedInput("challenge: height and round must fit uint64")
    try:
        chain = bytes.fromhex(chain_id)
    except (TypeError, ValueError):
        chain = b""
    if len(chain) != 32:
        raise MalformedInput("challenge: the chain id is a 32-byte genesis hash")
    return hashlib.sha256(ROUND_DOMAIN + chain + struct.pack("<QQ", height, attempt) + beacon).digest()


def challenge_leaves(header_hash: bytes, beacon: bytes, n_leaves: int, k: int) -> tuple[int, ...]:
    """The ``min(k, n_leaves)`` leaves a candidate must open (label b"leaves")."""
    return tuple(sample_distinct(derive_seed(header_hash, beacon), LABEL_LEAVES, n_leaves, k))


def round_windows(chain_id: str, height: int, attempt: int, beacon: bytes, n_windows: int, m: int) -> tuple[int, ...]:
    """The ``min(m, n_windows)`` evaluation windows of a round (label b"windows")."""
    if n_windows < 1:
        raise MalformedInput("challenge: the dataset has no evaluation window")
    return tuple(sample_distinct(round_seed(chain_id, height, attempt, beacon), LABEL_WINDOWS, n_windows, m))


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
