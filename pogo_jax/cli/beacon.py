"""Run the beacon service (serve), print its public anchor and key (info), or give it new shard keys (add-keys).

``pogo beacon serve`` runs it; its secret never leaves its directory.

It releases one value per round, only against the node's signed close of that round's submission
window, once its own clock has passed that time, and with it the key of the round's sealed evaluation
shard: ``--eval-keys KEYS`` (the file ``pogo data pack --sealed-eval N --keys-out KEYS`` wrote) is copied
into the beacon's directory; ``pogo beacon add-keys`` does the same for a running beacon (a governance
epoch's new dataset).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.chain.beacon import BeaconService
from pogo_jax.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["serve", "info", "add-keys"],
                   help="serve: run the service; info: print its anchor and key; add-keys: take a new --eval-keys")
    p.add_argument("--dir", type=Path, required=True, help="the beacon's own directory (created on first serve)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this host only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8701, help="port to listen on (default 8701; 0 picks a free one)")
    p.add_argument("--length", type=int, default=4096, help="values in a new hash chain (rounds it can serve)")
    p.add_argument("--node-key", default=None, metavar="HEX", help="serve only the node with this public key")
    p.add_argument("--eval-keys", action="append", default=[], type=Path, metavar="KEYS",
                   help="a sealed dataset's keys file (repeatable); only the beacon ever holds it")
    p.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        print(json.dumps(BeaconService(args.dir).info()))
        return 0
    if args.action == "add-keys":
        if not args.eval_keys:
            raise UserError("add-keys needs --eval-keys KEYS")
        service = BeaconService(args.dir)
        for f in args.eval_keys:
            print(json.dumps({"dataset": service.add_keys(f).hex(), "keys": str(f)}))
        return 0
    node_key = None
    if args.node_key is not None:
        try:
            node_key = bytes.fromhex(args.node_key)
        except ValueError:
            node_key = b""
        if len(node_key) != 32:
            raise UserError("--node-key is 64 hex digits")
    from pogo_jax.chain.beacon_server import serve

    serve(args.dir, args.host, args.port, args.length, node_key, args.ready_file, args.eval_keys)
    return 0
