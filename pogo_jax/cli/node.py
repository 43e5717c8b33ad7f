"""Serve a chain: ``pogo node serve`` runs the node of a chain directory made by ``pogo init``.

It owns the directory, serves the v1 API and the explorer page at ``/``, and moves rounds forward on its
clock, fetching each round's beacon value."""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["serve"], help="serve: run the node until interrupted")
    p.add_argument("--dir", type=Path, required=True, help="the chain directory (pogo init)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this host only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8700, help="port to listen on (default 8700; 0 picks a free one)")
    p.add_argument("--beacon", default=None, metavar="URL", help="the beacon service (rounds wait without one)")
    p.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from pogo_jax.chain.node import serve

    if not (args.dir / "ledger.sqlite").is_file():
        raise UserError(f"no chain in {args.dir}: create one with pogo init --dir {args.dir} ...")
    serve(args.dir, args.host, args.port, args.beacon, ready_file=args.ready_file)
    return 0
