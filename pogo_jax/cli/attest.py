"""Attest: check the open round's candidates and post signed verdicts; ``--watch`` keeps doing it.

Light tier by default (numpy + pycryptodome, no jax); ``--full`` adds the rebuild from the verifier's
own synced state and the loss check on the round's windows (jax on CPU is enough).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.cli._common import add_node_arg, client, load_key, print_events
from pogo_jax.roles.verify import Verifier


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_node_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the verifier's private key PEM")
    p.add_argument("--workdir", type=Path, required=True, help="the verifier's own directory")
    p.add_argument("--full", action="store_true", help="full tier (rebuild theta_next, measure the losses)")
    p.add_argument("--watch", action="store_true", help="keep attesting every new candidate until interrupted")
    p.add_argument("--events", action="store_true", help="print one JSON line per verdict (for pogo demo)")
    p.add_argument("--adversary", default=None, help=argparse.SUPPRESS)  # pogo demo's cheating verifiers


def run(args: argparse.Namespace) -> int:
    hooks = None
    if args.adversary:
        from pogo_jax.demo.adversary import make_verifier_adversary

        hooks = make_verifier_adversary(args.adversary)
    v = Verifier(client(args.node), load_key(args.key), args.workdir, "full" if args.full else "light", hooks)

    def report(hh: bytes, verdict, acc: dict) -> None:  # noqa: ANN001
        out = {"event": "verdict", "header_hash": hh.hex(), "accept": verdict.accept, "tier": verdict.tier,
               "reason": verdict.reason, "detail": verdict.detail, "loss_prev": verdict.loss_prev,
               "loss_next": verdict.loss_next, "seconds": dict(verdict.timings), "recorded": acc}
        print_events(out) if args.events else print(json.dumps(out), flush=True)

    if args.watch:
        v.watch(on_verdict=report)
        return 0
    todo = v.pending()
    if not todo:
        print(json.dumps({"event": "nothing", "detail": "no candidate with a bundle awaits this verifier"}))
    for hh in todo:
        verdict, acc = v.attest(hh)
        report(hh, verdict, acc)
    return 0
