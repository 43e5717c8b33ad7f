"""Mine: train a block from the chain's tip, submit it, prove it when challenged, and follow the outcome.

The update goes with the header; the round's challenge is answered with a signed bundle; round after
round with ``--rounds`` (0: until interrupted). A block that falls short of the miner's own self-check is
not submitted: the miner waits for the next round (backing off up to a round's length) and says once
what to change.

The miner's optimizer, batch and quantizer choices come from ``--config`` (the chain fixes only the
model and the rules). Its private state stays in ``--workdir``; rerunning after a crash resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.cli._common import add_config_args, add_node_arg, client, load_cfg, load_key, print_events
from pogo_jax.roles.miner import HONEST, Miner, mine_rounds


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_node_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the miner's private key PEM")
    p.add_argument("--workdir", type=Path, required=True, help="the miner's own directory")
    add_config_args(p)
    p.add_argument("--rounds", type=int, default=1, help="rounds to take part in (0: until interrupted)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for any one phase")
    p.add_argument("--events", action="store_true", help="print one JSON line per event (for pogo demo)")
    p.add_argument("--after-height", type=int, default=0, metavar="H",
                   help="get ready, then wait until the chain's confirmed height reaches H before mining")
    p.add_argument("--adversary", default=None, help=argparse.SUPPRESS)  # pogo demo's cheating miners


def run(args: argparse.Namespace) -> int:
    hooks = HONEST
    if args.adversary:
        from pogo_jax.demo.adversary import make_adversary

        hooks = make_adversary(args.adversary)
    cfg = load_cfg(args)
    events = print_events if args.events else None

    def step(i: int, m: dict) -> None:
        if args.events:
            print_events({"event": "step", "step": i, "loss": round(m["loss"], 4)})

    miner = Miner(client(args.node), load_key(args.key), args.workdir, cfg, hooks, events)
    for note in miner.notes:
        print(f"note: {note}", flush=True)
    if args.after_height:
        miner.prepare()
        miner.view.wait(lambda st: st.tip_height >= args.after_height, args.timeout,
                        what=f"confirmed height {args.after_height}")
    mine_rounds(miner, args.rounds, args.timeout, step, say=lambda line: print(line, flush=True),
                outcomes=not args.events)
    return 0
