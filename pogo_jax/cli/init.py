"""Create a chain directory for ``pogo node serve``, with its signed genesis and first participants.

The genesis record (signed by the governance key) fixes the model, the dataset, the rules, the beacon's
anchor and the node's own key; the first participants get their stakes. A chain decides a block only on
``chain.min_full`` revealed full votes, so fewer registered verifiers than that is refused.

Participants are given by public key (64 hex digits, or a PEM file whose public half is used).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pogo_jax.cli._common import add_config_args, load_cfg, load_key
from pogo_jax.errors import UserError
from pogo_jax.roles.governance import create_chain
from pogo_jax.spec.keys import generate_key, public_bytes
from pogo_jax.spec.records import Participant


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, required=True, help="new chain directory (the node's)")
    add_config_args(p, "small")
    p.add_argument("--data", type=Path, default=None, metavar="SEALED",
                   help="the chain's dataset, with sealed evaluation shards (pogo data pack --sealed-eval N); "
                        "its keys go to the beacon (pogo beacon serve --eval-keys KEYS)")
    p.add_argument("--beacon", required=True, metavar="URL", help="the beacon service (pogo beacon serve)")
    p.add_argument("--governance-key", type=Path, required=True, help="PEM key that signs genesis and epochs")
    p.add_argument("--miner", action="append", default=[], metavar="KEY", help="a miner's public key (repeatable)")
    p.add_argument("--verifier", action="append", default=[], metavar="KEY",
                   help="a verifier's public key (repeatable; at least the rules' chain.min_full, 2 by default, "
                        "who will attest with --full, or no block is ever decided)")
    p.add_argument("--stake", type=int, default=1000, help="initial stake of every participant")


def public_key_arg(s: str) -> bytes:
    """64 hex digits, or a PEM private key file (its public key)."""

    if len(s) == 64:
        try:
            return bytes.fromhex(s)
        except ValueError:
            pass
    if Path(s).is_file():
        return public_bytes(load_key(Path(s)))
    raise UserError(f"{s!r} is neither 64 hex digits nor a key file")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.chain.client import BeaconClient

    if (args.dir / "ledger.sqlite").exists():
        raise UserError(f"a chain already exists in {args.dir}")
    if args.stake <= 0:
        raise UserError("--stake must be positive")
    cfg = load_cfg(args)
    if len(args.verifier) < cfg.chain.min_full:
        lower = f", or --set chain.min_full={len(args.verifier)}" if args.verifier else ""
        raise UserError(f"a block is decided on {cfg.chain.min_full} revealed full votes (chain.min_full) and "
                        f"{len(args.verifier)} verifier(s) would be registered: no block could ever be confirmed; "
                        f"give --verifier KEY for each full verifier (at least {cfg.chain.min_full}){lower}")
    if args.data is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(args.data)))
    gov = load_key(args.governance_key)
    beacon = BeaconClient(args.beacon).info()
    parts = [Participant(public_key_arg(k), "miner", f"miner-{i}", args.stake) for i, k in enumerate(args.miner)]
    parts += [Participant(public_key_arg(k), "verifier", f"verifier-{i}", args.stake)
              for i, k in enumerate(args.verifier)]
    chain = create_chain(args.dir, cfg, gov, generate_key(), beacon, parts)
    st = chain.state
    print(json.dumps({"dir": str(args.dir), "chain_id": st.genesis.chain_id, "genesis_hash": st.genesis_hash.hex(),
                      "node_key": st.genesis.node_key.hex(), "participants": len(parts),
                      "n_leaves": st.genesis.layout.n_leaves}))
    chain.close()
    return 0
