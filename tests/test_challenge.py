"""Challenge derivation: seed, unbiased distinct sampling, detection bound."""

from __future__ import annotations

import hashlib
import math
import os
import random

import pytest

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.challenge import (
    challenge_leaves,
    derive_seed,
    k_for_target,
    miss_probability,
    round_seed,
    round_windows,
    sample_distinct,
)


def reference_sample(seed: bytes, label: bytes, n: int, k: int) -> list[int]:
    """Independent re-implementation of PROTOCOL 4.3, written from the text."""
    zone = (2**64 // n) * n  # largest multiple of n that fits: accept u < zone
    out: list[int] = []
    counter = 0
    while len(out) < min(k, n):
        d = hashlib.sha256(seed + label + counter.to_bytes(8, "little")).digest()
        u = int.from_bytes(d[:8], "little")
        counter += 1
        if u < zone and u % n not in out:
            out.append(u % n)
    return out


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


def test_matches_reference(rng) -> None:
    ns = [1, 2, 3, 7, 1000, 1023, 1025, 2**32 + 15, 2**63 + 1, 2**64 - 1]
    for n in ns + [rng.randrange(1, 5000) for _ in range(20)]:
        for k in (0, 1, 5, min(n, 40) + 3):
            seed, label = rng.randbytes(32), rng.choice([b"leaves", b"windows"])
            got = sample_distinct(seed, label, n, k)
            assert got == reference_sample(seed, label, n, k), (n, k)
            assert len(got) == min(k, n) and len(set(got)) == len(got) and all(0 <= v < n for v in got)


def test_rejection_is_applied() -> None:
    # With n = 2**63 + 1 about half of all draws fall in the rejected zone, so a plain
    # modulo sampler would disagree almost at once; make sure some draw was rejected here.
    n = 2**63 + 1
    seed = hashlib.sha256(b"rejection").digest()
    plain = []
    for counter in range(8):
        d = hashlib.sha256(seed + b"leaves" + counter.to_bytes(8, "little")).digest()
        plain.append(int.from_bytes(d[:8], "little") % n)
    assert sample_distinct(seed, b"leaves", n, 8) != plain


def test_small_cases() -> None:
    seed = bytes(32)
    assert sample_distinct(seed, b"x", 1, 5) == [0]
    assert sorted(sample_distinct(seed, b"x", 10, 100)) == list(range(10))
    assert sample_distinct(seed, b"x", 10, 0) == []
    long = sample_distinct(seed, b"x", 1000, 50)
    assert sample_distinct(seed, b"x", 1000, 20) == long[:20]  # prefix-stable
    assert sample_distinct(seed, b"y", 1000, 50) != long  # labels separate the streams
    for bad in [(0, 1), (-1, 1), (2**64, 1), (5, -1), (True, 1)]:
        with pytest.raises(ValueError):
            sample_distinct(seed, b"x", *bad)


def test_uniformity_chi_square() -> None:
    # First draw for 7000 fixed seeds over n = 7 (not a power of two): chi-square with 6 degrees
    # of freedom stays below 22.46 (p = 0.001). Fixed seeds: the verdict is reproducible.
    n, trials = 7, 7000
    counts = [0] * n
    for i in range(trials):
        counts[sample_distinct(hashlib.sha256(i.to_bytes(4, "little")).digest(), b"leaves", n, 1)[0]] += 1
    expected = trials / n
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 22.46, counts
    # second draw of a distinct pair is uniform over the remaining values too
    pairs = [0] * n
    for i in range(trials):
        a, b = sample_distinct(hashlib.sha256(b"p" + i.to_bytes(4, "little")).digest(), b"leaves", n, 2)
        pairs[(b - a) % n] += 1
    assert pairs[0] == 0
    exp2 = trials / (n - 1)
    assert sum((c - exp2) ** 2 / exp2 for c in pairs[1:]) < 20.52  # 5 dof, p = 0.001


def test_seed_and_challenge(rng) -> None:
    hh, beacon = rng.randbytes(32), rng.randbytes(32)
    seed = derive_seed(hh, beacon)
    assert seed == hashlib.sha256(b"pogo/challenge/v1" + hh + beacon).digest()
    assert list(challenge_leaves(hh, beacon, 5000, 16)) == reference_sample(seed, b"leaves", 5000, 16)
    assert challenge_leaves(hh, rng.randbytes(32), 5000, 16) != challenge_leaves(hh, beacon, 5000, 16)
    # the windows are the round's: the same for every candidate, from chain id, height, round and beacon
    h, a = rng.randrange(1, 10**6), rng.randrange(1, 9)
    chain = rng.randbytes(32)  # the chain id: a genesis hash, hashed as its 32 bytes
    rs = hashlib.sha256(b"pogo/round/v1" + chain + h.to_bytes(8, "little") + a.to_bytes(8, "little")
                        + beacon).digest()
    assert round_seed(chain.hex(), h, a, beacon) == rs
    assert list(round_windows(chain.hex(), h, a, beacon, 300, 8)) == reference_sample(rs, b"windows", 300, 8)
    assert round_windows(chain.hex(), h, a + 1, beacon, 300, 8) != round_windows(chain.hex(), h, a, beacon, 300, 8)
    other = rng.randbytes(32).hex()  # another chain draws other windows from the same beacon value
    assert round_windows(other, h, a, beacon, 300, 8) != round_windows(chain.hex(), h, a, beacon, 300, 8)
    with pytest.raises(MalformedInput, match="genesis hash"):
        round_seed("my-chain", h, a, beacon)
    with pytest.raises(MalformedInput, match="beacon"):
        derive_seed(hh, beacon[:31])
    with pytest.raises(MalformedInput, match="header hash"):
        derive_seed(hh + b"\x00", beacon)
    with pytest.raises(MalformedInput, match="no evaluation window"):
        round_windows(chain.hex(), 1, 1, beacon, 0, 4)


GOLDEN_WINDOWS = (34, 14, 45, 33)  # round (1, 1) of the chain sha256("pogo golden genesis"), 50 windows


def test_golden_vector() -> None:
    hh = hashlib.sha256(b"pogo golden header").digest()
    beacon = hashlib.sha256(b"pogo golden beacon").digest()
    assert derive_seed(hh, beacon).hex() == "624d6e8bff2bfc44f91a9ee781225bb9b4327e41afb74a83d9e17c6c086efea0"
    assert challenge_leaves(hh, beacon, 1000, 8) == (265, 980, 276, 16, 772, 634, 58, 938)
    golden_chain = hashlib.sha256(b"pogo golden genesis").hexdigest()
    assert round_windows(golden_chain, 1, 1, beacon, 50, 4) == GOLDEN_WINDOWS


def test_detection_bound(rng) -> None:
    assert miss_probability(0.01, 0) == 1.0
    assert miss_probability(1.0, 3) == 0.0
    assert k_for_target(0.01, 1e-6) == math.ceil(math.log(1e-6) / math.log(0.99))
    assert k_for_target(1.0, 0.5) == 1
    for _ in range(200):
        f, miss = rng.uniform(1e-4, 0.9), 10 ** rng.uniform(-12, -0.1)
        k = k_for_target(f, miss)
        assert miss_probability(f, k) <= miss
        assert k == 1 or miss_probability(f, k - 1) > miss
    for bad in [(0.0, 0.1), (1.5, 0.1), (0.1, 0.0), (0.1, 1.0)]:
        with pytest.raises(ValueError):
            k_for_target(*bad)
