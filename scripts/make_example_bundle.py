"""Write docs/examples/block-000001.pogo: block 1 of a fixed-seed ``tiny`` chain with k = 4 and 2 windows,
mined and proved through the real miner role on an in-process chain (fixed keys, beacon secret, dataset).

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
    from pogo_jax.spec.dataset import _write_packed, compute_data_root, make_manifest, split_ranges
    from pogo_jax.spec.keys import key_from_seed, public_bytes
    from pogo_jax.spec.records import Participant

    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    tokens = rng.integers(32, 127, size=200_000, dtype=np.uint8)
    train, ev = split_ranges(tokens.size, 4096, 0.1)
    data = tmp / "d.pogodata"
    _write_packed(data, make_manifest(tokens.size, 4096, compute_data_root(tokens, 4096), train, ev, "example", 1, 0),
                  tokens)
    cfg = load_config("tiny", ["miner.block_steps=3", "miner.self_check_windows=0", "chain.k_leaves=4",
                               "chain.m_windows=2", "chain.chain_id=pogo-example", f"data.path={data}"])
    now = [1_700_000_000_000]
    clock = lambda: now[0]  # noqa: E731
    key = lambda s: key_from_seed(hashlib.sha256(s).digest())  # noqa: E731
    beacon = BeaconService.create(tmp / "beacon", length=16, secret=hashlib.sha256(b"example beacon").digest(),
                                  clock=clock)
    miner_key = key(b"example miner")
    chain = create_chain(tmp / "node", cfg, key(b"example gov"), key(b"example node"), beacon.info(),
                         [Participant(public_bytes(miner_key), "miner", "m", 1000)], clock=clock)
    chain.beacon = beacon
    beacon.bind(cfg.chain.chain_id, public_bytes(key(b"example node")))
    miner = Miner(LocalClient(chain), miner_key, tmp / "miner", cfg)
    made = miner.make_candidate(miner.view.context())
    miner.view.client.submit_candidate(made.header_bytes, made.update_path)
    now[0] += cfg.chain.submit_window_ms
    chain.tick()
    miner.view.refresh()
    out = Path(__file__).resolve().parent.parent / "docs" / "examples" / "block-000001.pogo"
    out.write_bytes(miner.prove(made))
    print(f"{out}: {out.stat().st_size} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
