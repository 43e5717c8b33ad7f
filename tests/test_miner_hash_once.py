"""A block hashes each new state once: ``theta_next`` and the update at commit, never ``theta_prev`` (its root
is the tip's) and nothing at all when proving, whose openings come from the leaf hashes the miner kept.
Before, ``prove`` hashed the whole update again through the spec's one-leaf-at-a-time loop."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from chainkit import make_dataset, role_chain

from pogo_jax.commit import host_hash
from pogo_jax.config import load_config
from pogo_jax.errors import UserError
from pogo_jax.roles.miner import UPDATE_DIGESTS, Miner
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec import merkle as mh


def test_a_block_hashes_each_new_state_once_and_proves_from_the_kept_hashes(tmp_path, monkeypatch) -> None:
    cfg = load_config("tiny", ["miner.block_steps=2", "miner.self_check_windows=0", "chain.k_leaves=16",
                               f"data.path={make_dataset(tmp_path / 'd.pogodata', seed=3)}"])
    rc = role_chain(tmp_path, cfg, "hash-once", verifiers=("verifier",), secret=hashlib.sha256(b"hash once").digest())
    chain, client, clock = rc.chain, rc.client, rc.clock
    miner = Miner(client, rc.keys["miner"], tmp_path / "miner", cfg)
    ctx = miner.view.context()
    miner.tip_state(ctx)  # the tip as the chain serves it, re-derived and kept once (here: genesis)
    assert miner.ds  # and the chain's dataset, fetched and checked against its data root once
    hashed: list[int] = []
    real_jobs, real_spec = host_hash.hash_jobs, mh.leaf_hashes

    def jobs(js, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        hashed.append(sum(len(idx) for _, idx in js))
        return real_jobs(js, *a, **k)

    def spec(tag, leaves, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        hashed.append(len(leaves))
        return real_spec(tag, leaves, *a, **k)

    monkeypatch.setattr(host_hash, "hash_jobs", jobs)
    monkeypatch.setattr(mh, "leaf_hashes", spec)
    made = miner.make_candidate(ctx)
    n = miner.layout.n_leaves
    assert sum(hashed) == 2 * n, hashed  # theta_next and the update, each once; theta_prev not at all
    client.submit_candidate(made.header_bytes, made.update_path)
    clock.advance(cfg.chain.submit_window_ms)
    chain.tick()
    miner.view.refresh()
    hashed.clear()
    bundle = miner.prove(made)
    assert hashed == [], hashed  # openings from the kept leaf hashes: nothing re-hashed
    monkeypatch.undo()

    client.submit_bundle(bundle)
    chain.tick()
    verdict, _ = Verifier(client, rc.keys["verifier"], tmp_path / "light", "light").attest(made.hash)
    assert verdict.accept, verdict

    # the kept hashes are checked against the signed root_q, not trusted: a flipped byte is refused
    path = made.update_path.parent / UPDATE_DIGESTS
    good = path.read_bytes()
    d = np.load(path)
    d[int(np.random.default_rng().integers(len(d))), 0] ^= 1
    np.save(path, d)
    with pytest.raises(UserError, match="corrupt"):
        miner.prove(made)
    # and the kept update is checked against them: a byte flipped in every leaf (so in a challenged one)
    path.write_bytes(good)
    update = made.update_path.read_bytes()
    q = np.frombuffer(update, np.uint8).reshape(miner.layout.n_leaves, -1).copy()
    q[:, int(np.random.default_rng().integers(q.shape[1]))] ^= 0x10
    made.update_path.write_bytes(q.tobytes())
    with pytest.raises(UserError, match="does not match the commitment.*corrupt"):
        miner.prove(made)
    path.unlink()  # without the kept hashes it is hashed again, and checked against root_q
    with pytest.raises(UserError, match="root_q.*corrupt"):
        miner.prove(made)
    made.update_path.write_bytes(update)  # a candidate kept without them (an older version) still proves
    assert miner.prove(made) == bundle
