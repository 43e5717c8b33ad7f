"""Reveal the beacon for the recorded, pending block (the local hash-chain beacon service).

The ledger refuses a reveal for a header it has not recorded, so the miner cannot know the
challenge when it commits.
"""

from __future__ import annotations

import argparse

from pogo_jax.cmd._common import add_chain_arg, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--height", type=int, default=None, help="block height (default: the pending block)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.roles.chainops import reveal_beacon

    chain, ledger = open_chain(args.chain)
    print(reveal_beacon(chain, ledger, args.height).hex())
    return 0
