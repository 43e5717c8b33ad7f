"""``pogo demo``: a local chain on loopback that mines, verifies, attests and finalizes a few blocks.

The beacon and the node are child processes on free loopback ports; the miner(s) and verifiers are
``pogo mine`` / ``pogo attest --watch`` clients, each in its own directory with its own key, talking
to the node over HTTP. The demo itself holds the governance key (it creates the chain and registers
participants) and watches the chain through its own replay of the log; the tables and the report it
writes come from that replay, never from what a role says about itself.

    DIR/beacon/  DIR/node/  DIR/governance/  DIR/miner-0/  DIR/verifier-<i>/  DIR/adversary-<name>/
    DIR/logs/<process>.log      DIR/report/{report.json,blocks.md,loss.png,adversary-<name>.json}

``--out DIR`` keeps everything, so a second run continues the chain.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import time
from fractions import Fraction
from pathlib import Path

from rich.console import Console
from rich.live import Live

from pogo_jax.chain.view import ChainView
from pogo_jax.config import Config
from pogo_jax.demo import report
from pogo_jax.demo.adversary import ADVERSARIES, ALL, EXPECTED, VERIFIER_ADVERSARIES
from pogo_jax.demo.procs import Procs
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.roles.governance import create_chain, register_record
from pogo_jax.spec.keys import generate_key, load_private_pem, public_bytes, save_private_pem
from pogo_jax.spec.records import Participant
from pogo_jax.train.data import cache_dir

ADVERSARY_SUBMIT_WINDOW_MS = 30_000  # long enough for an honest block to join a round a lazy cheat opened


def role_key(d: Path):  # noqa: ANN201 - a private key, made on first use and kept in the role's directory
    d.mkdir(parents=True, exist_ok=True)
    p = d / "key.pem"
    if not p.exists():
        save_private_pem(generate_key(), p)
    return load_private_pem(p)


@dataclasses.dataclass
class Layout:
    out: Path

    @property
    def beacon(self) -> Path:
        return self.out / "beacon"

    @property
    def node(self) -> Path:
        return self.out / "node"

    @property
    def governance(self) -> Path:
        return self.out / "governance"

    def miner(self, i: int) -> Path:
        return self.out / f"miner-{i}"

    def verifier(self, i: int) -> Path:
        return self.out / f"verifier-{i}"

    def adversary(self, name: str) -> Path:
        return self.out / f"adversary-{name}"

    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def logs(self) -> Path:
        return self.out / "logs"


def _config_args(cfg_name: str, overrides: list[str]) -> list[str]:
    out = ["--config", cfg_name]
    for o in overrides:
        out += ["--set", o]
    return out


class Demo:
    def __init__(self, cfg: Config, cfg_name: str, overrides: list[str], out: Path, console: Console) -> None:
        self.cfg, self.cfg_name, self.overrides = cfg, cfg_name, overrides
        self.d = Layout(Path(out))
        self.console = console
        self.procs = Procs(self.d.logs)
        self.view = None
        self.url = ""
        self.status: dict[str, str] = {}

    # -------------------------------------------------------------------- setting up
    def start_chain(self, n_verifiers: int, n_full: int, extra: list[tuple[str, str]]) -> None:
        """Beacon, then (first time) the genesis, then the node; returns when the node answers."""
        from pogo_jax.chain.client import BeaconClient, NodeClient

        d = self.d
        beacon = self.procs.start("beacon", ["beacon", "serve", "--dir", str(d.beacon), "--port", "0"])
        burl = beacon.wait_url()
        if not (d.node / "ledger.sqlite").exists():
            self._genesis(BeaconClient(burl).info(), n_verifiers, n_full, extra)
        node = self.procs.start("node", ["node", "serve", "--dir", str(d.node), "--port", "0", "--beacon", burl])
        self.url = node.wait_url()
        self.view = ChainView(NodeClient(self.url))
        self._register(n_verifiers, extra)

    def _participants(self, n_verifiers: int, extra: list[tuple[str, str]]) -> list[tuple[bytes, str, str]]:
        d = self.d
        out = [(public_bytes(role_key(d.miner(0))), "miner", "miner-0")]
        out += [(public_bytes(role_key(d.verifier(i))), "verifier", f"verifier-{i}") for i in range(n_verifiers)]
        out += [(public_bytes(role_key(d.adversary(name))), role, f"adversary-{name}") for name, role in extra]
        return out

    def _genesis(self, beacon: dict, n_verifiers: int, n_full: int, extra: list[tuple[str, str]]) -> None:
        cfg = self.cfg
        if n_full < cfg.chain.min_full:
            self.console.print(f"[yellow]only {n_full} full verifier(s): this chain decides blocks with min_full="
                               f"{n_full} (a real chain wants at least 2)[/]")
            cfg = dataclasses.replace(cfg, chain=dataclasses.replace(cfg.chain, min_full=max(1, n_full)))
        gov = role_key(self.d.governance)
        parts = [Participant(k, role, name, cfg.demo.stake) for k, role, name in self._participants(n_verifiers, extra)]
        self.console.print(f"creating chain '{cfg.chain.chain_id}' in {self.d.node} (config '{cfg.name}', "
                           f"{len(parts)} participants)")
        create_chain(self.d.node, cfg, gov, generate_key(), beacon, parts).close()

    def _register(self, n_verifiers: int, extra: list[tuple[str, str]]) -> None:
        """Participants this run needs that the chain does not know yet (governance records)."""

        st = self.view.state
        gov = role_key(self.d.governance)
        for k, role, name in self._participants(n_verifiers, extra):
            if k not in st.participants:
                rec = register_record(st.genesis.chain_id, gov, k, role, name, self.cfg.demo.stake)
                self.view.client.submit_register(rec)
        self.view.refresh()

    def start_verifier(self, i: int, full: bool, adversary: str | None = None) -> None:
        d = self.d.adversary(adversary) if adversary else self.d.verifier(i)
        name = f"adversary-{adversary}" if adversary else f"verifier-{i}"
        argv = ["attest", "--node", self.url, "--key", str(d / "key.pem"), "--workdir", str(d), "--watch", "--events"]
        if full:
            argv.append("--full")
        if adversary:
            argv += ["--adversary", adversary]
        self.procs.start(name, argv, {"JAX_PLATFORMS": "cpu", **_xla_cache()})

    def start_miner(self, i: int | None, rounds: int, adversary: str | None = None,  # noqa: ANN201 - Proc
                    after_height: int = 0):
        d = self.d.adversary(adversary) if adversary else self.d.miner(i)
        name = f"adversary-{adversary}" if adversary else f"miner-{i}"
        argv = ["mine", "--node", self.url, "--key", str(d / "key.pem"), "--workdir", str(d), "--rounds",
                str(rounds), "--events", *_config_args(self.cfg_name, self.overrides)]
        if adversary:
            argv += ["--adversary", adversary]
        if after_height:
            argv += ["--after-height", str(after_height)]
        return self.procs.start(name, argv, _xla_cache())

    # -------------------------------------------------------------------- watching
    def wait(self, done, timeout: float, what: str) -> None:  # noqa: ANN001
        """Refresh the replica and show progress until ``done(state)``."""

        end = time.monotonic() + timeout
        with Live(console=self.console, refresh_per_second=4, transient=True) as live:
            while True:
                self.procs.check()
                self.view.refresh()
                self._drain_events()
                st = self.view.state
                if done(st):
                    return
                r = st.round
                parts = [f"round ({r.height}, {r.round}) {r.phase}", f"{len(r.candidates)} candidate(s)"]
                parts += [f"{k}: {v}" for k, v in sorted(self.status.items())]
                live.update("  |  ".join(parts)[: self.console.width - 1])
                if time.monotonic() > end:
                    raise UserError(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.d.logs}")
                time.sleep(0.25)

    def _drain_events(self) -> None:
        while True:
            try:
                ev = self.procs.events.get_nowait()
            except queue.Empty:
                return
            who, kind = ev["_proc"], ev.get("event")
            if kind == "step":
                self.status[who] = f"step {ev['step']} loss {ev['loss']:.3f}"
            elif kind == "verdict":
                self.status[who] = f"{'accept' if ev['accept'] else 'reject'}/{ev['tier']} {ev['reason']}"
            elif kind in ("training", "submitted", "proved", "outcome", "refused"):
                self.status[who] = kind if kind != "outcome" else f"{ev.get('status')}"

    def stop(self) -> None:
        self.procs.stop_all()


def _xla_cache() -> dict:
    """One persistent XLA compilation cache for the demo's jax processes (compiled programs, not chain data:
    it sits outside every role's directory), so a second process or a second run does not compile again."""

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return {}

    return {"JAX_COMPILATION_CACHE_DIR": str(cache_dir() / "xla")}


def _stake(st, key: bytes) -> int:  # noqa: ANN001
    return st.stakes.get(key, 0)


def honest_blocks(blocks: int | None, adversary: str | None, tip_height: int) -> int:
    """Honest blocks to mine before the cheat: ``--blocks`` when given, else 3 without an adversary, and
    with one, one on a fresh chain (a cheat is judged against a chain that has made progress; the default
    config's first block from random weights lowers the loss under almost any update) and none on a
    chain that has blocks. Cheats that copy a confirmed block get one even with ``--blocks 0``."""
    if adversary is None:
        return 3 if blocks is None else blocks
    honest = (1 if tip_height == 0 else 0) if blocks is None else blocks
    if tip_height == 0 and honest == 0 and adversary in ("replay", "lazy-replay", "frontrun"):
        honest = 1
    return honest


def run_demo(cfg: Config, cfg_name: str, overrides: list[str], out: Path, blocks: int, verifiers: int, full: int,
             adversary: str | None = None, console: Console | None = None, timeout: float = 1800.0) -> dict:
    """Run ``blocks`` honest blocks (then, with ``adversary``, one round with that cheat); returns the report."""

    console = console or Console()
    if adversary is not None and adversary not in ALL:
        raise UserError(f"unknown adversary {adversary!r}; choose one of: {', '.join(ALL)}")
    if not 0 <= full <= verifiers or verifiers < 1:
        raise UserError("--verifiers must be >= 1 and --full between 0 and --verifiers")
    out = Path(out)
    fresh = not (out / "node" / "ledger.sqlite").exists()
    if adversary is not None and fresh and not any(o.startswith("chain.submit_window_ms") for o in overrides):
        rules = dataclasses.replace(cfg.chain, submit_window_ms=ADVERSARY_SUBMIT_WINDOW_MS)
        cfg = dataclasses.replace(cfg, chain=rules)
    extra = [] if adversary is None else [(adversary, "verifier" if adversary in VERIFIER_ADVERSARIES else "miner")]
    demo = Demo(cfg, cfg_name, overrides, out, console)
    t0 = time.perf_counter()
    try:
        demo.start_chain(verifiers, full, extra)
        st = demo.view.state
        console.print(f"chain '{st.genesis.chain_id}' at height {st.tip_height} on {demo.url} (explorer: {demo.url}/); "
                      f"{verifiers} verifiers ({full} full), windows submit {st.rules.submit_window_ms / 1000:g} s, "
                      f"prove {st.rules.prove_window_ms / 1000:g} s, attest {st.rules.attest_window_ms / 1000:g} s")
        light_quorum = adversary == "light-quorum"
        vprocs = {}
        for i in range(verifiers):
            demo.start_verifier(i, i < full)
            vprocs[i] = demo.procs.procs[-1]
        honest = honest_blocks(blocks, adversary, st.tip_height)
        start = st.tip_height
        miner = None
        if honest or adversary is not None:
            miner = demo.start_miner(0, 0)
        early = None
        if adversary in ADVERSARIES:  # starts now, gets ready, and mines once the honest blocks are in
            early = demo.start_miner(None, 2 if adversary == "frontrun" else 1, adversary, after_height=start + honest)
        if honest:
            demo.wait(lambda s: s.tip_height >= start + honest, timeout, f"{honest} confirmed block(s)")
        adv_rec = None
        if light_quorum:  # the cheat's round: the honest miner sits out, one full verifier and the light ones attest
            if miner is not None:
                demo.procs.stop(miner)
                miner = None
            for i in range(1, full):
                demo.procs.stop(vprocs[i])
        if adversary is not None:
            adv_rec = _run_adversary(demo, adversary, early, timeout, VERIFIER_ADVERSARIES)
            adv_rec["expected"] = dataclasses.asdict(EXPECTED[adversary])
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the chain's processes; rerun with the same --out to continue[/]")
        raise
    finally:
        demo.stop()
    rep = report.build(demo.view.state, out, time.perf_counter() - t0)
    report.write(out / "report", rep, adv_rec)
    report.show(console, rep, adv_rec)
    console.print(f"report: {out / 'report'}; logs: {out / 'logs'}; chain: {out / 'node'}")
    return {"report": rep, "adversary": adv_rec}


def _run_adversary(demo: Demo, name: str, adv, timeout: float, verifiers: dict) -> dict:  # noqa: ANN001
    st = demo.view.state
    akey = public_bytes(role_key(demo.d.adversary(name)))
    hkey = public_bytes(role_key(demo.d.miner(0)))
    before = {"attacker": _stake(st, akey), "honest": _stake(st, hkey)}
    first_event = len(st.events)
    start_round = (st.round.height, st.round.round)
    if name in verifiers:
        demo.start_verifier(0, False, adversary=name)
        h = st.tip_height
        demo.wait(lambda s: s.tip_height > h, timeout, "a block with the cheating verifier")
    else:
        demo.wait(lambda s: not adv.alive() and (s.round.height, s.round.round) != start_round
                  and not any(c.miner == akey for c in s.round.candidates.values()), timeout,
                  f"the '{name}' round(s)")
        if adv.p.returncode not in (0, None):
            raise UserError(f"the adversary process failed (code {adv.p.returncode}); see "
                            f"{demo.d.logs}/adversary-{name}.log")
    demo.view.refresh()
    st = demo.view.state
    cands = [(r, c) for r in st.history for c in r.candidates.values() if c.miner == akey]
    claims = [(r, c, v) for r in st.history for c in r.candidates.values() for k, v in c.votes.items() if k == akey]
    paid = sum(e.delta for e in st.events[first_event:] if e.key == akey and e.reason == "REWARD")
    evidence = [why for seq, why, who in st.evidence if who == akey]
    if cands:
        outcome = ", ".join(f"{c.status} ({c.reason})" for _, c in cands)
    elif evidence:
        outcome = f"slashed at submission ({', '.join(evidence)})"
    elif claims:
        outcome = ", ".join(f"claim {v.body.reason} -> " + next(
            (e.reason for e in st.events[first_event:] if e.key == akey), "no change") for _, _, v in claims)
    else:
        outcome = "refused (never recorded)"
    return {"adversary": name, "outcome": outcome, "attacker_paid": paid > 0, "attacker_reward": paid,
            "attacker_stake": [before["attacker"], _stake(st, akey)],
            "honest_stake": [before["honest"], _stake(st, hkey)],
            "candidates": [{"round": [r.height, r.round], "status": c.status, "reason": c.reason,
                            "improvement": None if c.improvement is None else float(Fraction(c.improvement)),
                            "votes": {st.participants[k].name: f"{v.body.verdict}/{v.body.tier}/{v.body.reason}"
                                      for k, v in c.votes.items()}} for r, c in cands],
            "evidence": evidence,
            "stake_events": [{"who": st.participants[e.key].name, "delta": e.delta, "reason": e.reason}
                             for e in st.events[first_event:]]}


def write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())
