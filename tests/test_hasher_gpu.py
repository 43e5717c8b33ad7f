"""On a GPU: the Pallas (Triton) and jnp lowerings give hashlib's bits, ``auto`` picks Pallas, and a
committed GPU state has the host root and opens from its stored digests.

Run on a GPU machine with ``POGO_TEST_PLATFORMS=cuda,cpu pytest -m gpu tests/test_hasher_gpu.py``
(skipped without a GPU; ``scripts/device_suite.sh`` runs it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pogo_jax.spec import merkle as mh

pytestmark = pytest.mark.gpu


def _gpu():
    import jax

    return jax.devices("gpu")[0]


def _reference(tag: bytes, rows: np.ndarray, first: int) -> np.ndarray:
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    return np.frombuffer(b"".join(mh.leaf_hash(tag, first + i, raw[i].tobytes()) for i in range(len(raw))),
                         np.uint8).reshape(-1, 32)


def test_pallas_lowers_for_parameter_leaves_and_matches_hashlib():
    import jax

    from pogo_jax.commit import hasher

    seed = int(np.random.SeedSequence().entropy % 2**32)
    x = np.random.default_rng(seed).integers(0, 2**32, size=(1000, 1024), dtype=np.uint32)
    xd = jax.device_put(x, _gpu())
    assert hasher.resolve_impl([xd]) == "pallas"
    want = hasher.leaf_hashes(x, mh.TAG_PARAM, 2**32 - 500, impl="hashlib")
    assert np.array_equal(want[:3], _reference(mh.TAG_PARAM, x[:3], 2**32 - 500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit pallas must lower: no silent fallback
        got = hasher.leaf_hashes(xd, mh.TAG_PARAM, 2**32 - 500, impl="pallas")
    assert np.array_equal(got, want), f"seed={seed}"
    assert np.array_equal(hasher.leaf_hashes(xd, mh.TAG_PARAM, 2**32 - 500, impl="jnp"), want), f"seed={seed}"


def test_update_leaves_hash_right_through_auto_on_gpu():
    import jax

    from pogo_jax.commit import merkle

    seed = int(np.random.SeedSequence().entropy % 2**32)
    raw = np.random.default_rng(seed).integers(0, 256, size=(37, 528), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 132-word blocks may not lower in Triton: jnp then
        c = merkle.commit_leaves(jax.device_put(raw, _gpu()), mh.TAG_QUPD)
    assert np.array_equal(c.digests, _reference(mh.TAG_QUPD, raw, 0)), f"seed={seed}"


def test_gpu_state_commits_to_the_host_root_and_opens_from_digests():
    import jax

    from pogo_jax.commit import merkle

    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    shapes = {"emb": (500, 768), "blk/qkv": (768, 2304), "blk/b": (2304,), "ln": (768,), "odd": (7, 9)}
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    state = {k: jax.device_put(v, _gpu()) for k, v in arrays.items()}
    want, layout = merkle.host_commit(arrays)
    c = merkle.commit(state)
    assert c.root == want, f"seed={seed}"
    idx = sorted({0, c.n_leaves - 1, *rng.choice(c.n_leaves, size=8, replace=False).tolist()})
    ops = merkle.open_from_digests(state, c, idx)
    assert ops == merkle.open_from_digests(arrays, c, idx)
    assert mh.verify_param_openings(c.root, layout, ops) == (True, "OK")
