"""Audit a chain: re-derive every decision from its signed log and stored bytes and report any difference.

TARGET is a node URL (the log, tables and blobs are fetched over HTTP) or a chain directory (read
directly, the node may be stopped). Exit 0 when everything the node holds follows from the log,
1 on any difference, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pogo_jax.chain.audit import audit
from pogo_jax.chain.equivocation import check_receipts, receipt_files
from pogo_jax.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="node URL (http://...) or chain directory")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--receipts", action="append", default=[], metavar="DIR",
                   help="receipts the node signed (a role's WORK/witness/receipts, or files): any the log "
                        "contradicts is node equivocation or omission, a difference (repeatable)")


def run(args: argparse.Namespace) -> int:
    if args.target.startswith(("http://", "https://")):
        from pogo_jax.chain.client import NodeClient

        c = NodeClient(args.target)
        entries, tables, fetch = c.entries(), c.tables(), c.blob
    else:
        from pogo_jax.chain.blobs import BlobStore
        from pogo_jax.chain.ledger import Ledger

        d = Path(args.target)
        if not (d / "ledger.sqlite").is_file():
            hint = f"; try {d / 'node'}" if (d / "node" / "ledger.sqlite").is_file() else ""
            raise UserError(f"{d} is neither a node URL nor a chain directory (no ledger.sqlite){hint}")
        ledger = Ledger.open(d / "ledger.sqlite", readonly=True)
        store = BlobStore(d / "blobs", readonly=True)
        entries, tables, fetch = ledger.entries(), ledger.tables(), store.get
    files = receipt_files(args.receipts)
    rep = audit(entries, tables, fetch)
    if files:
        rr = check_receipts(entries, files)
        rep.differences += rr.differences
        for line in rr.ignored:
            print(f"ignored: {line}", file=sys.stderr)
        print(f"checked {rr.checked} node-signed receipts against the log", file=sys.stderr)
    if args.json:
        print(json.dumps(rep.to_obj()))
    else:
        print(f"audited {rep.entries} log entries, {rep.rounds} finished rounds, {rep.blocks} confirmed blocks, "
              f"{rep.blobs_checked} blobs, {rep.rechecks} objective re-checks: "
              f"{'no difference' if rep.clean else f'{len(rep.differences)} difference(s)'}")
        for d in rep.differences:
            print(f"  DIFFERENCE: {d}")
    return 0 if rep.clean else 1
