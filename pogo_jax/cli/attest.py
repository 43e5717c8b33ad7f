"""Attest: check the open round's candidates and post signed verdicts; ``--watch`` keeps doing it.

Light tier by default (numpy + pycryptodome, no jax); ``--full`` adds the rebuild from the verifier's
own synced state and the per-window losses on the round's sealed shard (jax on CPU is enough). A full
vote is committed first and revealed after the commit window closes: without ``--watch`` the command
waits for that (up to ``--timeout``) and reveals before it exits, since an unrevealed commitment costs
its ``verifier_fee``; a rerun after a crash reveals what the work directory kept.
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
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="without --watch: seconds to wait for the reveal window of committed full votes")
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
    if not v.pending() and not v.unrevealed():
        print(json.dumps({"event": "nothing", "detail": "no candidate with a bundle awaits this verifier"}))
        return 0
    tried: set = set()
    v.step(tried, report)
    r = v.view.state.round
    mine = [h for h, c in r.candidates.items() if v.pub in c.commits and v.pub not in c.votes]
    if mine:  # committed: stay for the reveal window, then reveal
        key = (r.height, r.round)
        v.view.wait(lambda st: (st.round.height, st.round.round) != key or st.round.phase == "reveal", args.timeout,
                    what="the reveal window of the committed votes")
        v.step(tried, report)
    return 0
