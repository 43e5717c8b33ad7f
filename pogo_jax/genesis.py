"""Create a chain: genesis model, layout, dataset commitment, beacon, keys, ledger, stakes.

The genesis state is a freshly initialized model passed through the same bit-level flush as
every committed state (no subnormal, no -0.0), saved as an npz and committed by root in the
ledger. Everything a verifier later re-derives (layout hash, data root, rules, k and m) is fixed
here, in the ledger's chain metadata, not in anything the miner sends.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pogo_jax.beacon import LocalHashChainBeacon
from pogo_jax.chain import ChainDir, save_state, state_root
from pogo_jax.config import Config
from pogo_jax.errors import UserError
from pogo_jax.ledger import Ledger
from pogo_jax.protocol.finalize import Rules
from pogo_jax.spec import update as upd
from pogo_jax.spec.keys import generate_key, load_private_pem, public_bytes, save_private_pem
from pogo_jax.spec.layout import Layout


def genesis_params(cfg: Config) -> dict[str, np.ndarray]:
    """Initialize the model from ``cfg.train.seed`` and flush it (PROTOCOL 3: genesis included)."""
    from flax import nnx

    from pogo_jax.train.model import GPT, param_dict

    model = GPT(cfg.model, rngs=nnx.Rngs(cfg.train.seed))
    return {k: upd.flush(np.asarray(v, dtype=np.float32)) for k, v in param_dict(model).items()}


def chain_rules(cfg: Config) -> Rules:
    p = cfg.pogo
    return Rules(quorum=p.quorum, min_attestations=p.min_attestations, block_reward=p.reward)


def ensure_keys(chain: ChainDir, n_verifiers: int) -> tuple[Path, list[Path]]:
    """Miner and verifier keys under DIR/keys (kept if present, so a rerun keeps identities)."""
    paths = [chain.keys_dir / "miner.pem"] + [chain.keys_dir / f"verifier-{i}.pem" for i in range(n_verifiers)]
    for p in paths:
        if not p.exists():
            save_private_pem(generate_key(), p)
    return paths[0], paths[1:]


def create_chain(out: str | Path, cfg: Config, miner_key: Path | None = None,
                 verifier_keys: list[Path] | None = None) -> tuple[ChainDir, Ledger]:
    """Write genesis, beacon and ledger into ``out``; refuse to touch an existing ledger."""
    from pogo_jax.train.data import load_dataset, n_eval_windows

    chain = ChainDir(out)
    if chain.ledger.exists():
        raise UserError(f"{chain.ledger} already exists: a chain is there (use it, or pick another --out)")
    ds = load_dataset(cfg.data)
    if n_eval_windows(ds, cfg.model.seq_len) < cfg.pogo.m_windows:
        raise UserError(f"the eval split has fewer than pogo.m_windows={cfg.pogo.m_windows} windows of "
                        f"{cfg.model.seq_len} tokens: use more data or a shorter model.seq_len")
    if miner_key is None or verifier_keys is None:
        miner_key, verifier_keys = ensure_keys(chain, cfg.pogo.n_verifiers)
    theta = genesis_params(cfg)
    layout = Layout.from_arrays(theta, cfg.pogo.leaf_size, cfg.pogo.group_size)
    root = state_root(theta, layout)
    save_state(chain.genesis, theta)
    beacon_anchor = (LocalHashChainBeacon(chain.beacon_dir) if (chain.beacon_dir / "beacon.json").exists()
                     else LocalHashChainBeacon.create(chain.beacon_dir)).anchor()
    rules = chain_rules(cfg)
    meta = {
        "chain_id": cfg.pogo.chain_id,
        "genesis_root": root.hex(),
        "layout_hash": layout.layout_hash().hex(),
        "layout": layout.manifest(),
        "data_root": ds.data_root.hex(),
        "data_manifest": ds.manifest,
        "leaf_size": layout.leaf_size,
        "group_size": layout.group_size,
        "n_leaves": layout.n_leaves,
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "rules": dataclasses.asdict(rules),
        "beacon_kind": "hash-chain",
        "beacon_anchor": beacon_anchor.hex(),
    }
    ledger = Ledger.create(chain.ledger, meta)
    ledger.add_participant(public_bytes(load_private_pem(miner_key)), "miner", "miner", cfg.pogo.stake)
    for i, p in enumerate(verifier_keys):
        ledger.add_participant(public_bytes(load_private_pem(p)), "verifier", f"verifier-{i}", cfg.pogo.stake)
    return chain, ledger
