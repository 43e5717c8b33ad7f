"""Mine one block: train from the confirmed state, quantize, commit, record the signed header.

Writes DIR/blocks/<h>/{header.json,update.qupd} for everyone and keeps the miner's private
state (trainer checkpoint, error feedback, theta_next) in --workdir. Safe to rerun after a crash.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.cmd._common import add_chain_arg, load_key, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the miner's private key PEM")
    p.add_argument("--workdir", type=Path, default=Path("miner"), help="miner-private state (default ./miner)")
    p.add_argument("--data", default=None, help="packed dataset, if the embedded corpus here differs")


def run(args: argparse.Namespace) -> int:
    chain, ledger = open_chain(args.chain)
    key = load_key(args.key)
    from pogo_jax.miner import Miner

    mined = Miner(chain, ledger, key, args.workdir, args.data).mine()
    print(json.dumps({"height": mined.height, "header_hash": mined.header_hash.hex(), "resumed": mined.resumed,
                      "train_loss_last": mined.train_losses[-1] if mined.train_losses else None,
                      "seconds": {k: round(v, 3) for k, v in mined.timings.items()}}))
    return 0
