"""Arguments shared by the role commands (one definition, so every role names things alike)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pogo_jax.config import load_config
from pogo_jax.spec.keys import load_private_pem


def add_node_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, metavar="URL", help="the chain node, e.g. http://127.0.0.1:8700")


def add_config_args(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--config", default=default, help="config name or TOML file (configs/*.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable)")


def load_cfg(args: argparse.Namespace, default: str = "small"):  # noqa: ANN201 - Config

    return load_config(args.config or default, args.set)


def load_key(path: Path):  # noqa: ANN201 - private key

    return load_private_pem(path)


def client(url: str):  # noqa: ANN201 - NodeClient
    from pogo_jax.chain.client import NodeClient

    return NodeClient(url)


def print_events(event: dict) -> None:
    print(json.dumps(event), flush=True, file=sys.stdout)
