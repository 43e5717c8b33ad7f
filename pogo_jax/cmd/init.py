"""Create a chain directory: genesis model, ledger, beacon, registered miner and verifier keys.

Keys are PEM files from `pogo keygen`; without --miner-key/--verifier-key, fresh keys are
written to DIR/keys. The chain's config (model, data, k, m, quorum) is fixed here for good.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="chain directory to create")
    p.add_argument("--config", default="tiny", help="config name or path (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", default=None, help="packed dataset (pogo data pack); default: embedded corpus")
    p.add_argument("--miner-key", type=Path, default=None, help="miner's private key PEM")
    p.add_argument("--verifier-key", type=Path, action="append", default=None,
                   help="a verifier's private key PEM (repeatable)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.config import load_config
    from pogo_jax.errors import UserError

    overrides = list(args.overrides) + ([f"data.path={args.data}"] if args.data else [])
    cfg = load_config(args.config, overrides)
    if (args.miner_key is None) != (args.verifier_key is None):
        raise UserError("give both --miner-key and --verifier-key, or neither (fresh keys are then made)")
    for p in [args.miner_key, *(args.verifier_key or [])]:
        if p is not None and not p.is_file():
            raise UserError(f"key file {p} does not exist (make one with pogo keygen --out {p})")
    from pogo_jax.genesis import create_chain

    chain, ledger = create_chain(args.out, cfg, args.miner_key, args.verifier_key)
    meta = ledger.meta()
    print(json.dumps({"chain": str(chain.root), "chain_id": meta["chain_id"], "genesis_root": meta["genesis_root"],
                      "layout_hash": meta["layout_hash"], "data_root": meta["data_root"],
                      "n_leaves": meta["n_leaves"], "participants": len(ledger.participants())}))
    return 0
