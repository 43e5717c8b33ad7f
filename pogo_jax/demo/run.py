"""``pogo demo``: a local chain on loopback that mines, verifies, attests and finalizes a few blocks.

The beacon and the node are child processes on free loopback ports; the miner(s) and verifiers are
``pogo mine`` / ``pogo attest --watch`` clients, each in its own directory with its own key, talking
to the node over HTTP. The demo itself holds the governance key (it creates the chain and registers
participants) and watches the chain through its own replay of the log; the tables and the report it
writes come from that replay, never from what a role says about itself.

    DIR/beacon/  DIR/node/  DIR/governance/  DIR/miner-0/  DIR/verifier-<i>/  DIR/adversary-<name>/
    DIR/logs/<process>.log      DIR/report/{report.json,blocks.md,loss.png,adversary-<name>.json}

Governance seals the chain's evaluation data first (``DIR/governance/sealed.pogodata``: the embedded
corpus with ``demo.sealed_shards`` shards sealed, one per round) and hands the keys file to the beacon,
which alone releases each round's key. ``--out DIR`` keeps everything, so a second run continues the
chain (until its shards run out: the demo then says how to add more).
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
from pogo_jax.demo.adversary import ADVERSARIES, ALL, COALITIONS, EXPECTED, VERIFIER_ADVERSARIES
from pogo_jax.demo.procs import Procs
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.interrupt import terminate_as_interrupt
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

    @property
    def sealed(self) -> Path:
        return self.governance / "sealed.pogodata"

    @property
    def eval_keys(self) -> Path:
        """Written by governance, read once by the beacon (which copies it into its own directory)."""
        return self.governance / "eval.keys"

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
        self.xchain: dict = {}

    # -------------------------------------------------------------------- setting up
    def start_chain(self, n_verifiers: int, n_full: int, extra: list[tuple[str, str]]) -> None:
        """Beacon, then (first time) the genesis, then the node; returns when the node answers."""
        from pogo_jax.chain.client import BeaconClient, NodeClient

        d = self.d
        fresh = not (d.node / "ledger.sqlite").exists()
        if fresh:
            self._seal()
        keys = ["--eval-keys", str(d.eval_keys)] if d.eval_keys.is_file() else []
        beacon = self.procs.start("beacon", ["beacon", "serve", "--dir", str(d.beacon), "--port", "0", *keys])
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

    def _seal(self) -> None:
        """Governance's sealed copy of the chain's dataset (the embedded corpus, or ``data.path``)."""
        from pogo_jax.train.data import SealSpec, load_dataset, seal_dataset

        d, n = self.d, self.cfg.demo.sealed_shards
        for f in (d.sealed, d.eval_keys):
            f.unlink(missing_ok=True)
        d.governance.mkdir(parents=True, exist_ok=True)
        m, seq = self.cfg.chain.m_windows, self.cfg.model.seq_len
        src = load_dataset(self.cfg.data)
        size = (m * seq + 1) * src.width  # exactly the round's windows, in bytes of the token stream
        self.console.print(f"sealing {n} evaluation shards of {m * seq + 1} tokens (one per round; keys for the "
                           "beacon only)")
        seal_dataset(src.path, d.sealed, SealSpec(n, size, d.eval_keys))

    def _genesis(self, beacon: dict, n_verifiers: int, n_full: int, extra: list[tuple[str, str]]) -> None:
        cfg = dataclasses.replace(self.cfg, data=dataclasses.replace(self.cfg.data, path=str(self.d.sealed)))
        if n_full < cfg.chain.min_full:
            self.console.print(f"[yellow]only {n_full} full verifier(s): this chain decides blocks with min_full="
                               f"{n_full} (a real chain wants at least 2)[/]")
            cfg = dataclasses.replace(cfg, chain=dataclasses.replace(cfg.chain, min_full=max(1, n_full)))
        gov = role_key(self.d.governance)
        parts = [Participant(k, role, name, cfg.demo.stake) for k, role, name in self._participants(n_verifiers, extra)]
        self.console.print(f"creating chain '{cfg.chain.name}' in {self.d.node} (config '{cfg.name}', "
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

    def start_verifier(self, i: int, full: bool, adversary: str | None = None, dirname: str | None = None) -> None:
        dirname = dirname or adversary
        d = self.d.adversary(dirname) if adversary else self.d.verifier(i)
        name = f"adversary-{dirname}" if adversary else f"verifier-{i}"
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
                if st.round.phase == "waiting":
                    n = len(st.round.data.manifest["sealed"]["shards"])
                    raise UserError(
                        f"the chain has judged a round on each of its {n} sealed evaluation shards and no round can "
                        f"open without one: demo another chain (a new --out), or add shards: pogo data seal --out "
                        f"NEW.pogodata --sealed-eval N --keys-out NEW.keys; pogo beacon add-keys --dir {self.d.beacon} "
                        f"--eval-keys NEW.keys; pogo govern epoch --node {self.url} --key {self.d.governance}/key.pem "
                        f"--data NEW.pogodata")
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
            elif kind == "xchain":
                self.xchain = ev.get("codes", {})

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


def adversary_roles(adversary: str | None) -> list[tuple[str, str]]:
    """(directory name, role) of the adversary's participants: a miner, a verifier, or both for a coalition."""
    if adversary is None:
        return []
    if adversary in COALITIONS:
        return [(adversary, "miner"), (f"{adversary}-verifier", "verifier")]
    return [(adversary, "verifier" if adversary in VERIFIER_ADVERSARIES else "miner")]


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
    extra = adversary_roles(adversary)
    demo = Demo(cfg, cfg_name, overrides, out, console)
    t0 = time.perf_counter()
    adv_rec = None
    with terminate_as_interrupt():
        try:
            demo.start_chain(verifiers, full, extra)
            st = demo.view.state
            console.print(f"chain '{st.genesis.name}' ({st.genesis.chain_id[:16]}...) at height {st.tip_height} on "
                          f"{demo.url} (explorer: {demo.url}/); {verifiers} verifiers ({full} full), windows submit "
                          f"{st.rules.submit_window_ms / 1000:g} s, prove {st.rules.prove_window_ms / 1000:g} s, "
                          f"commit {st.rules.attest_window_ms / 1000:g} s, reveal "
                          f"{st.rules.reveal_window_ms / 1000:g} s")
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
                if adversary == "xchain-replay":
                    write_json(demo.d.adversary(adversary) / "sister-records.json", sister_records(demo))
                early = demo.start_miner(None, 2 if adversary == "frontrun" else 1, adversary,
                                         after_height=start + honest)
            if honest:
                demo.wait(lambda s: s.tip_height >= start + honest, timeout, f"{honest} confirmed block(s)")
            if light_quorum:  # the cheat's round: the honest miner sits out, one full verifier and the light ones
                if miner is not None:
                    demo.procs.stop(miner)
                    miner = None
                for i in range(1, full):
                    demo.procs.stop(vprocs[i])
            if adversary is not None:
                adv_rec = _run_adversary(demo, adversary, early, timeout)
                adv_rec["expected"] = dataclasses.asdict(EXPECTED[adversary])
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping the chain's processes; rerun with the same --out to "
                          "continue[/]")
            raise
        finally:
            demo.stop()
    rep = report.build(demo.view.state, out, time.perf_counter() - t0)
    report.write(out / "report", rep, adv_rec)
    report.show(console, rep, adv_rec)
    console.print(f"report: {out / 'report'}; logs: {out / 'logs'}; chain: {out / 'node'}")
    return {"report": rep, "adversary": adv_rec}


def sister_records(demo: Demo) -> dict:
    """A sister chain with the same name, governance key, participants and data (another node key, so another
    genesis), made in the xchain adversary's directory, and records from its public log: a header the honest
    miner signed for its round (1, 1) with its update, and a governance registration of a 10^6-stake verifier.
    Stands in for what an attacker reads from any other chain the same keys take part in."""
    from pogo_jax.chain.beacon import BeaconService
    from pogo_jax.roles.governance import genesis_params
    from pogo_jax.spec import merkle as mh
    from pogo_jax.spec.header import Header, sign_header
    from pogo_jax.spec.state import apply_update, state_root

    from .adversary import zero_update

    st = demo.view.state
    d = demo.d.adversary("xchain-replay") / "sister"
    if (d / "records.json").is_file():
        return json.loads((d / "records.json").read_text())
    cfg = dataclasses.replace(demo.cfg, chain=st.rules,
                              data=dataclasses.replace(demo.cfg.data, path=str(demo.d.sealed)))
    beacon = BeaconService.open_or_create(d / "beacon", 16)
    gov = role_key(demo.d.governance)
    parts = list(st.genesis.participants)
    theta = genesis_params(cfg)
    sister = create_chain(d / "node", cfg, gov, generate_key(), beacon.info(), parts, arrays=theta)
    sg = sister.state.genesis
    lay, r = sg.layout, sister.state.round
    q = zero_update(lay)
    nxt = apply_update(theta, q, lay)
    honest = role_key(demo.d.miner(0))
    h = Header(version=3, chain_id=sg.chain_id, height=1, round=1, parent_hash=r.parent_hash,
               miner_key=public_bytes(honest), layout_hash=lay.layout_hash(), data_root=r.data.data_root,
               root_prev=r.root_prev, root_next=state_root(nxt, lay), root_q=mh.root(mh.leaf_hashes(mh.TAG_QUPD, q)),
               leaf_size=lay.leaf_size, group_size=lay.group_size, n_leaves=lay.n_leaves, train={"steps": 0})
    header = sign_header(h, honest).to_bytes()
    sister.submit_candidate(header, [q.tobytes()])
    whale = register_record(sg.chain_id, gov, public_bytes(generate_key()), "verifier", "whale", 10**6)
    sister.submit_register(whale)
    sister.close()
    recs = {"chain_id": sg.chain_id, "header": header.decode(), "update": q.tobytes().hex(), "register": whale.decode()}
    write_json(d / "records.json", recs)
    return recs


def _run_adversary(demo: Demo, name: str, adv, timeout: float) -> dict:  # noqa: ANN001
    st = demo.view.state
    roles = dict(adversary_roles(name))
    miner_dir = next((n for n, r in roles.items() if r == "miner"), None)
    verifier_dir = next((n for n, r in roles.items() if r == "verifier"), None)
    akey = public_bytes(role_key(demo.d.adversary(miner_dir or verifier_dir)))
    vkey = public_bytes(role_key(demo.d.adversary(verifier_dir))) if verifier_dir else None
    hkey = public_bytes(role_key(demo.d.miner(0)))
    before = {"attacker": _stake(st, akey), "honest": _stake(st, hkey), "verifier": _stake(st, vkey) if vkey else None}
    first_event = len(st.events)
    start_round = (st.round.height, st.round.round)
    if verifier_dir:
        demo.start_verifier(0, name != "false-fraud-claim", adversary=name, dirname=verifier_dir)
    if miner_dir:
        demo.wait(lambda s: not adv.alive() and (s.round.height, s.round.round) != start_round
                  and not any(c.miner == akey for c in s.round.candidates.values()), timeout,
                  f"the '{name}' round(s)")
        if adv.p.returncode not in (0, None):
            raise UserError(f"the adversary process failed (code {adv.p.returncode}); see "
                            f"{demo.d.logs}/adversary-{name}.log")
    else:
        h = st.tip_height
        demo.wait(lambda s: s.tip_height > h, timeout, "a block with the cheating verifier")
    demo.view.refresh()
    st = demo.view.state
    cands = [(r, c) for r in st.history for c in r.candidates.values() if c.miner == akey]
    claims = [(r, c, v) for r in st.history for c in r.candidates.values() for k, v in c.votes.items()
              if k in (akey, vkey)]
    paid = sum(e.delta for e in st.events[first_event:] if e.key in (akey, vkey) and e.delta > 0)
    evidence = [why for seq, why, who in st.evidence if who in (akey, vkey)]
    if cands:
        outcome = ", ".join(f"{c.status} ({c.reason})" for _, c in cands)
    elif evidence:
        outcome = f"slashed at submission ({', '.join(evidence)})"
    elif claims or vkey:
        outcome = "; ".join(sorted({f"{e.reason} {e.delta:+d}" for e in st.events[first_event:] if e.key == vkey})) \
            or "votes ignored"
    elif name == "xchain-replay":
        outcome = "refused (never recorded): " + ", ".join(f"{k} {v}" for k, v in demo.xchain.items())
    else:
        outcome = "refused (never recorded)"
    rounds = {(r.height, r.round) for r, _ in cands}
    rivals = [c for r in st.history if (r.height, r.round) in rounds for c in r.candidates.values() if c.miner == hkey]
    rec = {"adversary": name, "outcome": outcome, "attacker_paid": paid > 0, "attacker_reward": paid,
           "attacker_stake": [before["attacker"], _stake(st, akey)],
           "honest_stake": [before["honest"], _stake(st, hkey)],
           "candidates": [_cand(st, r, c) for r, c in cands],
           "honest_candidates": [_cand(st, *st.find(c.hash)) for c in rivals],
           "evidence": evidence,
           "stake_events": [{"who": st.participants[e.key].name, "delta": e.delta, "reason": e.reason}
                            for e in st.events[first_event:]]}
    if vkey is not None:
        rec["verifier_stake"] = [before["verifier"], _stake(st, vkey)]
        if miner_dir:
            rec["partner_stake"] = rec["attacker_stake"]
    if name == "xchain-replay":
        rec["xchain_codes"] = demo.xchain
    return rec


def _cand(st, r, c) -> dict:  # noqa: ANN001
    m = c.measurement
    return {"round": [r.height, r.round], "status": c.status, "reason": c.reason,
            "improvement": None if c.improvement is None else float(Fraction(c.improvement)),
            "lower_bound": None if m is None else m.bound.lcb,
            "votes": {st.participants[k].name: f"{v.body.verdict}/{v.body.tier}/{v.body.reason}"
                      for k, v in c.votes.items()}}


def write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())
