"""Finalize the pending block: confirm, slash or leave pending (PROTOCOL 4.7).

An objective reject is re-checked on the published bundle before it can slash; equivocating
verifiers are slashed. Prints the outcome as JSON.
"""

from __future__ import annotations

import argparse
import json

from pogo_jax.cmd._common import add_chain_arg, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--height", type=int, default=None, help="block height (default: the pending block)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.roles.chainops import finalize

    chain, ledger = open_chain(args.chain)
    out = finalize(chain, ledger, args.height)
    print(json.dumps({"status": out.status, "reason": out.reason, "accept_stake": out.accept_stake,
                      "reject_stake": out.reject_stake, "slashed": [k.hex() for k in out.slashed_keys]}))
    return 0
