"""Make an Ed25519 key (PKCS#8 PEM, mode 0600) and print its public key in hex.

Miners sign headers and verifiers sign attestations with such a key; register the printed public
key in the ledger. An existing file is never replaced unless --force is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.spec.keys import generate_key, public_bytes, save_private_pem


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, required=True, metavar="FILE.pem", help="where to write the private key"
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE.pem if it exists")


def run(args: argparse.Namespace) -> int:
    key = generate_key()
    save_private_pem(key, args.out, force=args.force)
    print(public_bytes(key).hex())
    return 0
