"""Sign governance records: register a participant, or start a fine-tuning epoch.

Signed by the chain's governance key: ``register`` a participant, or start a fine-tuning ``epoch`` (a new
dataset, optionally a new initial state from a checkpoint). An epoch takes effect at the next round that
opens after it is recorded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pogo_jax.chain.view import ChainView
from pogo_jax.chain.witness import Witness
from pogo_jax.cli._common import add_node_arg, client, load_key
from pogo_jax.cli.init import public_key_arg
from pogo_jax.errors import UserError
from pogo_jax.roles import governance
from pogo_jax.spec.state import check_state
from pogo_jax.train.param_files import load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["register", "epoch"],
                   help="register: a new miner or verifier; epoch: a new dataset (and state) from the next round")
    add_node_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the governance key PEM")
    p.add_argument("--member", default=None, metavar="KEY", help="register: public key (hex) or PEM file")
    p.add_argument("--role", choices=["miner", "verifier"], default=None, help="register: the role")
    p.add_argument("--name", default=None, help="register: a name (A-Z a-z 0-9 . _ -)")
    p.add_argument("--stake", type=int, default=1000, help="register: the stake")
    p.add_argument("--data", type=Path, default=None, help="epoch: the packed dataset (pogo data pack)")
    p.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                   help="epoch: a new initial state (.npz of float32 arrays, or a pogo train directory)")


def run(args: argparse.Namespace) -> int:
    c = client(args.node)
    view = ChainView(c)
    gov = load_key(args.key)
    view.attach(Witness(args.key.expanduser().resolve().parent / "witness"))  # governance keeps its receipts too
    if args.action == "register":
        if not (args.member and args.role and args.name):
            raise UserError("register needs --member, --role and --name")
        rec = governance.register_record(view.state.genesis.chain_id, gov, public_key_arg(args.member), args.role,
                                         args.name, args.stake)
        print(json.dumps(c.submit_register(rec)))
        return 0
    if args.data is None:
        raise UserError("epoch needs --data PACKED (made by pogo data pack)")
    if not args.data.is_file():
        raise UserError(f"dataset {args.data} does not exist")
    state = None
    if args.init_from is not None:
        state = load_checkpoint(args.init_from, view)
    rec, sb = governance.epoch_record(view, gov, args.data, state)
    print(json.dumps(c.submit_epoch(rec, args.data, sb)))
    return 0


def load_checkpoint(path: Path, view) -> dict:  # noqa: ANN001
    """An .npz of float32 arrays or the params of an orbax checkpoint, checked against the chain's layout."""

    arrays = {k: np.asarray(v) for k, v in load_params(str(path)).items()}
    return check_state(arrays, view.state.genesis.layout, f"checkpoint {path}")
