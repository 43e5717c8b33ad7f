"""Rebuild the confirmed model at a height from genesis and the confirmed 4-bit updates alone.

The log is replayed and checked, every blob fetched by the hash the log names, every root_q and
rebuilt root_next recomputed: a late-joining verifier trusts no checkpoint. Host only (numpy +
hashlib); writes an npz of float32 arrays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.chain.view import ChainView
from pogo_jax.cli._common import add_node_arg, client
from pogo_jax.errors import UserError
from pogo_jax.roles.sync import sync


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_node_arg(p)
    p.add_argument("--to", type=int, default=None, metavar="HEIGHT",
                   help="height to rebuild, 0 for genesis (default: the confirmed tip)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="where to write the state (.npz)")


def run(args: argparse.Namespace) -> int:
    if args.to is not None and args.to < 0:
        raise UserError(f"--to is a height, 0 (genesis) or more; got {args.to}")
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a directory; name the .npz file to write, e.g. {args.out / 'state.npz'}")
    print(json.dumps(sync(ChainView(client(args.node)), args.to, args.out)))
    return 0
