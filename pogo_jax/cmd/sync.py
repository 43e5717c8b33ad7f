"""Rebuild the confirmed model at a height from genesis + the confirmed 4-bit updates alone.

Checks the genesis root, every update's root_q and every rebuilt root_next, so a late-joining
verifier trusts no checkpoint. Host only (numpy + hashlib); writes an npz of float32 arrays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.cmd._common import add_chain_arg, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--to", type=int, default=None, help="height to rebuild (default: the confirmed tip)")
    p.add_argument("--out", type=Path, required=True, help="where to write the state (.npz)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.chain import save_state
    from pogo_jax.roles.chainops import sync

    chain, ledger = open_chain(args.chain)
    theta, root, h = sync(chain, ledger, args.to)
    save_state(args.out, theta)
    print(json.dumps({"height": h, "root": root.hex(), "out": str(args.out), "tensors": len(theta)}))
    return 0
