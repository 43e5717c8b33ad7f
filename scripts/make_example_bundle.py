"""Write docs/examples/block-000001.pogo: block 1 of a fixed-seed ``tiny`` chain with k = 4 and 2 windows,
mined and proved through the real miner role on an in-process chain (fixed keys, beacon secret and key,
dataset with sealed evaluation shards from a fixed seed, so the chain id, the genesis hash, is fixed too).

    PYTHONPATH=. python scripts/make_example_bundle.py
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    from pogo_jax.chain.beacon import BeaconService
    from pogo_jax.chain.client import LocalClient
    from pogo_jax.config import load_config
    from pogo_jax.roles.governance import create_chain
    from pogo_jax.roles.miner import Miner
    from pogo_jax.spec.keys import key_from_seed, public_bytes, save_private_pem
    from pogo_jax.spec.records import Participant
    from pogo_jax.train.data import SealSpec, _build

    with tempfile.TemporaryDirectory(prefix="pogo-example-") as d:
        tmp = Path(d)
        rng = np.random.default_rng(0)
        tokens = rng.integers(32, 127, size=200_000, dtype=np.uint8)
        data, keys = tmp / "d.pogodata", tmp / "d.pogodata.keys"
        # 8 sealed shards of 1024 bytes (15 windows of 64 tokens each); seeded: anyone can open them (docs only)
        _build(tokens, 4096, 0.1, "example", 1, 0, data, SealSpec(8, 1024, keys, seed=b"example data"))
        cfg = load_config("tiny", ["miner.block_steps=3", "miner.self_check_windows=0", "chain.k_leaves=4",
                                   "chain.m_windows=2", "chain.name=pogo-example", f"data.path={data}"])
        now = [1_700_000_000_000]
        clock = lambda: now[0]  # noqa: E731
        key = lambda s: key_from_seed(hashlib.sha256(s).digest())  # noqa: E731
        BeaconService.create(tmp / "beacon", length=16, secret=hashlib.sha256(b"example beacon").digest(),
                             clock=clock)
        # a fixed beacon signing key: the genesis record names it, and the chain id is the genesis hash
        save_private_pem(key(b"example beacon key"), tmp / "beacon" / "key.pem", force=True)
        beacon = BeaconService(tmp / "beacon", clock=clock)
        beacon.add_keys(keys)
        miner_key, node_key = key(b"example miner"), key(b"example node")
        chain = create_chain(tmp / "node", cfg, key(b"example gov"), node_key, beacon.info(),
                             [Participant(public_bytes(miner_key), "miner", "m", 1000)], clock=clock)
        chain.beacon = beacon
        beacon.bind(chain.state.genesis.chain_id, public_bytes(node_key))
        miner = Miner(LocalClient(chain), miner_key, tmp / "miner", cfg)
        made = miner.make_candidate(miner.view.context())
        miner.view.client.submit_candidate(made.header_bytes, made.update_path)
        now[0] += cfg.chain.submit_window_ms
        chain.tick()
        miner.view.refresh()
        bundle = miner.prove(made)
        chain.close()
    out = Path(__file__).resolve().parent.parent / "docs" / "examples" / "block-000001.pogo"
    out.write_bytes(bundle)
    print(f"{out}: {out.stat().st_size} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
