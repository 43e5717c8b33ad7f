"""Mine one block: train from the confirmed state, quantize, commit, record the signed header.

Writes DIR/blocks/<h>/{header.json,update.qupd} for everyone and keeps the miner's private
state (trainer checkpoint, error feedback, theta_next) in --workdir. Safe to rerun after a crash.
With --init-from CHECKPOINT --data PACKED it first starts a fine-tuning epoch: the next block
extends the checkpoint (published as DIR/states/epoch-N.npz) and trains on the packed data.
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
    p.add_argument("--data", default=None, help="packed dataset, if the embedded corpus here differs; with "
                   "--init-from: the new epoch's dataset (pogo data pack)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start a fine-tuning epoch from this orbax checkpoint directory (pogo train) or .npz "
                        "of float32 arrays; needs --data")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.errors import UserError

    if args.init_from is not None and args.data is None:
        raise UserError("--init-from needs --data PACKED (the new epoch's dataset, made by pogo data pack)")
    chain, ledger = open_chain(args.chain)
    key = load_key(args.key)
    from pogo_jax.miner import Miner

    if args.init_from is not None:
        miner = Miner(chain, ledger, key, args.workdir, load_data=False)
        epoch = miner.start_epoch(args.init_from, args.data)
    else:
        miner = Miner(chain, ledger, key, args.workdir, args.data)
        epoch = None
    mined = miner.mine()
    print(json.dumps({"height": mined.height, "header_hash": mined.header_hash.hex(), "resumed": mined.resumed,
                      "epoch": miner.epoch, "started_epoch": epoch,
                      "train_loss_last": mined.train_losses[-1] if mined.train_losses else None,
                      "seconds": {k: round(v, 3) for k, v in mined.timings.items()}}))
    return 0
