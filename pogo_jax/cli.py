"""The ``pogo`` command. Each subcommand lives in ``pogo_jax/cmd/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports (jax) happen inside ``run`` so
that ``pogo verify`` (light tier) never imports jax.

Exit codes: 0 success/accept, 1 reject, 2 unusable input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pogo_jax.errors import Rejected, UserError

# command name -> module under pogo_jax.cmd (order = order in --help)
COMMANDS: dict[str, str] = {
    "train": "train",
    "data": "data",
    "commit": "commit",
    "keygen": "keygen",
    "demo": "demo",
    "init": "init",
    "mine": "mine",
    "beacon": "beacon",
    "prove": "prove",
    "verify": "verify",
    "attest": "attest",
    "finalize": "finalize",
    "chain": "chain",
    "sync": "sync",
    "bench": "bench",
    "report": "report",
    "costs": "costs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pogo", description="PoGO: proof of gradient optimization (mine, prove, verify, attest)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(f"pogo_jax.cmd.{modname}")
        except ModuleNotFoundError as e:
            if e.name == f"pogo_jax.cmd.{modname}":
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=mod.__doc__.strip().splitlines()[0] if mod.__doc__ else None,
                           description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except Rejected as e:
        print(f"REJECT {e.code}: {e.detail}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished checkpoints and ledger entries are kept; rerun to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
