"""Arguments shared by the role commands (one definition, so every role names things alike)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.chain import ChainDir
from pogo_jax.errors import UserError


def add_chain_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--chain", type=Path, required=required, metavar="DIR",
                   help="chain directory holding ledger.sqlite (made by pogo demo or pogo init)")


def open_chain(path: Path | None):  # noqa: ANN201 - (ChainDir, Ledger)
    """Open the chain directory's ledger; a missing ledger is one clear line, exit 2."""
    from pogo_jax.ledger import Ledger

    if path is None:
        raise UserError("--chain DIR is required")
    chain = ChainDir(path)
    if not chain.ledger.is_file():
        raise UserError(f"no ledger at {chain.ledger} (create a chain with 'pogo init' or 'pogo demo --out DIR')")
    return chain, Ledger.open(chain.ledger)


def load_key(path: Path):  # noqa: ANN201 - private key
    from pogo_jax.spec.keys import load_private_pem

    return load_private_pem(path)
