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

from pogo_jax.chain.audit import AuditReport, audit
from pogo_jax.chain.equivocation import check_receipts, receipt_files
from pogo_jax.errors import MalformedInput, UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="node URL (http://...) or chain directory")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--receipts", action="append", default=[], metavar="DIR",
                   help="receipts the node signed (a role's WORK/witness/receipts, or files): any the log "
                        "contradicts is node equivocation or omission, a difference (repeatable)")


def _read(what: str, fn, problems: list[str]):  # noqa: ANN001, ANN202
    """``fn()``, or None with the reason in ``problems``: a log or tables the node serves that cannot be read
    is a difference (exit 1), not a traceback; a node that cannot be reached stays a UserError (exit 2)."""
    try:
        return fn()
    except UserError as e:
        if not isinstance(e, MalformedInput):
            raise
        problems.append(f"{what} cannot be read ({e})")
    except Exception as e:  # noqa: BLE001 - whatever the node served, named with its type
        problems.append(f"{what} cannot be read ({type(e).__name__}: {str(e)[:200]})")
    return None


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    if args.target.startswith(("http://", "https://")):
        from pogo_jax.chain.client import NodeClient

        c = NodeClient(args.target)
        entries, tables, fetch = _read("the node's log", c.entries, problems), \
            _read("the node's tables", c.tables, problems), c.blob
    else:
        from pogo_jax.chain.blobs import BlobStore
        from pogo_jax.chain.ledger import Ledger

        d = Path(args.target)
        if not (d / "ledger.sqlite").is_file():
            hint = f"; try {d / 'node'}" if (d / "node" / "ledger.sqlite").is_file() else ""
            raise UserError(f"{d} is neither a node URL nor a chain directory (no ledger.sqlite){hint}")
        try:
            ledger = Ledger.open(d / "ledger.sqlite", readonly=True)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - not a ledger this version reads
            raise UserError(f"{d / 'ledger.sqlite'} cannot be opened ({type(e).__name__}: {str(e)[:200]})") from None
        store = BlobStore(d / "blobs", readonly=True)
        entries, tables, fetch = _read("the ledger's log", ledger.entries, problems), \
            _read("the ledger's tables", ledger.tables, problems), store.get
    files = receipt_files(args.receipts)
    rep = audit(entries, tables, fetch) if entries is not None else AuditReport()
    rep.differences[:0] = problems
    if files and entries is not None:
        rr = check_receipts(entries, files)
        rep.differences += rr.differences
        for line in rr.ignored:
            print(f"ignored: {line}", file=sys.stderr)
        print(f"checked {rr.checked} node-signed receipts against the log", file=sys.stderr)
    if args.json:
        print(json.dumps(rep.to_obj()))
    else:
        later = f" ({rep.unpublished} update(s) of the open submission window: not public yet)" \
            if rep.unpublished else ""
        print(f"audited {rep.entries} log entries, {rep.rounds} finished rounds, {rep.blocks} confirmed blocks, "
              f"{rep.blobs_checked} blobs, {rep.rechecks} objective re-checks{later}: "
              f"{'no difference' if rep.clean else f'{len(rep.differences)} difference(s)'}")
        for d in rep.differences:
            print(f"  DIFFERENCE: {d}")
    return 0 if rep.clean else 1
