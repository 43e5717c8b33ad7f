"""The ``pogo`` command. Each subcommand lives in ``pogo_jax/cli/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports (jax) happen inside ``run`` so
that the light-tier commands (``pogo verify``, ``pogo attest`` without ``--full``) never import jax.

Exit codes: 0 success/accept, 1 reject (or an audit difference), 2 unusable input (one line on
stderr, nothing written), 130 interrupted (Ctrl-C or SIGTERM: what was written is kept).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from pogo_jax.errors import Rejected, UserError
from pogo_jax.interrupt import terminate_as_interrupt

# command name -> module under pogo_jax.cli (order = order in --help)
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "train": "train",
    "data": "data",
    "commit": "commit",
    "keygen": "keygen",
    "init": "init",
    "beacon": "beacon",
    "node": "node",
    "mine": "mine",
    "attest": "attest",
    "verify": "verify",
    "chain": "chain",
    "sync": "sync",
    "audit": "audit",
    "fetch": "fetch",
    "govern": "govern",
    "bench": "bench",
    "report": "report",
    "costs": "costs",
}


class Parser(argparse.ArgumentParser):
    """A bad command line is one line on stderr (exit 2), not argparse's usage block."""

    def error(self, message: str) -> None:  # noqa: D401
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def plain(doc: str) -> str:
    """A module docstring as terminal text: RST's double backquotes become single ones."""
    return doc.replace("``", "`")


def summary(doc: str) -> str:
    """The first sentence of a docstring, unwrapped and without backquotes: one entry of ``pogo --help``."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    first = re.split(r"(?<=[.!?])\s", para, maxsplit=1)[0]
    return first.replace("`", "")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pogo", description="PoGO: proof of gradient optimization (mine, prove, verify, attest).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(f"pogo_jax.cli.{modname}")
        doc = mod.__doc__ or ""
        p = sub.add_parser(name, help=summary(doc), description=plain(doc),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _log_opens() -> None:
    """With POGO_OPEN_LOG=FILE, append every path this process opens to FILE (the tests use it to
    show that no role opens a file under another role's directory)."""
    path = os.environ.get("POGO_OPEN_LOG")
    if not path:
        return
    log = open(path, "a", buffering=1)  # noqa: SIM115 - kept open for the life of the process

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            p = os.fsdecode(args[0])
            if p != path:
                log.write(os.path.abspath(p) + "\n")

    sys.addaudithook(hook)


def main(argv: list[str] | None = None) -> int:
    _log_opens()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with terminate_as_interrupt():  # SIGTERM (timeout, systemd, kill) takes Ctrl-C's path below
            return int(args._run(args) or 0)
    except Rejected as e:
        print(f"REJECT {e.code}: {e.detail}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was written is kept; rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
