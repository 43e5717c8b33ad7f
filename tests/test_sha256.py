"""The jnp SHA-256 against FIPS 180-4 examples and hashlib, rolled with several unrolls."""

from __future__ import annotations

import hashlib

import jax.numpy as jnp
import numpy as np
import pytest

from pogo_jax.commit import sha256

# FIPS 180-4 / NIST CSHS examples (one block, empty, two blocks of 448 bits, 896-bit message)
FIPS = {
    b"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    b"": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    ),
    b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
    b"mnopqrstnopqrstu": "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
}


@pytest.mark.parametrize("unroll", [1, 8])
def test_fips_vectors(unroll):
    for msg, want in FIPS.items():
        got = sha256.sha256_words(jnp.asarray(sha256.pad_message(msg)), unroll=unroll)
        assert sha256.digest_bytes(np.asarray(got)).hex() == want, msg


def test_compress_one_block_matches_fips_abc():
    block = sha256.pad_message(b"abc")[None, :]  # (1, 16): compress on a batch of one
    state = sha256.compress(np.broadcast_to(sha256.H0, (1, 8)), block, unroll=4)
    assert sha256.digest_bytes(np.asarray(state)[0]).hex() == FIPS[b"abc"]


def test_batched_random_messages_match_hashlib():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    # 16 messages whose padded form is 3 blocks each (lengths 120..183 bytes), one vectorized call
    msgs = [rng.bytes(int(n)) for n in rng.integers(120, 184, size=16)]
    words = np.stack([sha256.pad_message(m) for m in msgs])
    assert words.shape == (16, 48)
    got = np.asarray(sha256.sha256_words(jnp.asarray(words), unroll=4))
    for m, g in zip(msgs, got, strict=True):
        assert sha256.digest_bytes(g) == hashlib.sha256(m).digest(), f"seed={seed} len={len(m)}"


def test_padding_helpers_and_bswap():
    for n in (0, 4, 52, 56, 60, 64, 528, 4160):
        msg = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        body = np.frombuffer(msg, dtype=">u4").astype(np.uint32)
        assert np.array_equal(np.concatenate([body, sha256.padding_words(n)]), sha256.pad_message(msg)), n
    x = np.array([0x01020304, 0xA0B0C0D0], np.uint32)
    assert np.asarray(sha256.bswap32(jnp.asarray(x))).tolist() == [0x04030201, 0xD0C0B0A0]
    d = hashlib.sha256(b"x").digest()
    assert sha256.digest_bytes(sha256.digest_words(d)) == d
