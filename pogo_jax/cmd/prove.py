"""Answer the challenge of a recorded block whose beacon is revealed: write its proof bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.cmd._common import add_chain_arg, load_key, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the miner's private key PEM")
    p.add_argument("--workdir", type=Path, default=Path("miner"), help="the miner's work directory")
    p.add_argument("--height", type=int, default=None, help="block height (default: the pending block)")
    p.add_argument("--data", default=None, help="packed dataset, if the embedded corpus here differs")


def run(args: argparse.Namespace) -> int:
    chain, ledger = open_chain(args.chain)
    key = load_key(args.key)
    from pogo_jax.miner import Miner

    path, info = Miner(chain, ledger, key, args.workdir, args.data).prove(args.height)
    print(json.dumps({"bundle": str(path), "bytes": info["bytes"], "k": info["k"],
                      "loss_prev": info["loss_prev"], "loss_next": info["loss_next"]}))
    return 0
