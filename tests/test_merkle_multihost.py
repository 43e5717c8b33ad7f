"""Parameters sharded across two jax.distributed CPU processes commit to the single-process root,
with the host lowering (digests exchanged between processes) and the jnp one (``shard_map``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from multihost_harness import run_two_process

from pogo_jax.commit import merkle

WORKER = Path(__file__).resolve().parent / "multihost_merkle_worker.py"


@pytest.mark.multiprocess
def test_two_process_root_equals_host_root():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    s, g = 64, 16
    results = run_two_process([str(seed), str(s), str(g)], timeout=240, local_devices=2, worker=WORKER)
    rng = np.random.default_rng(seed)
    shapes = {"emb": (32, 40), "blk/w": (40, 16), "blk/b": (16,), "ln": (), "odd": (5, 7)}
    host = {k: np.asarray(rng.standard_normal(v), dtype=np.float32).reshape(v) for k, v in shapes.items()}
    want, layout = merkle.host_commit(host, s, g)
    for r in results:
        assert r["devices"] == 4 and r["n_leaves"] == layout.n_leaves
        assert r["root"] == want.hex(), f"seed={seed} process={r['process']}"
        assert r["open_ok"] == [True, "OK"]
        assert r["root_jnp"] == want.hex(), f"seed={seed} process={r['process']} impl=jnp"
