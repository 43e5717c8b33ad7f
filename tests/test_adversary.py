"""Every named cheating miner is rejected and slashed, on one in-process `tiny` chain.

One chain (3 verifiers: 2 full, 1 light; 3 steps per block) carries an honest block, then one
block per adversary, each from its own registered miner key; at the end the honest miner still
extends the chain. Where each cheat is caught (record / light / full), with which reason code and
how the miner is slashed is ``pogo_jax.adversary.EXPECTED``; docs/adversaries.md explains it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from rich.progress import Progress

from pogo_jax.adversary import EXPECTED, make_adversary, synthetic_block
from pogo_jax.errors import UserError

N_VERIFIERS = 3
SET = ["pogo.block_steps=3", f"pogo.n_verifiers={N_VERIFIERS}", "pogo.m_windows=4"]


class World:
    def __init__(self, root) -> None:
        from pogo_jax.config import load_config
        from pogo_jax.demo import VerifierNode
        from pogo_jax.genesis import create_chain
        from pogo_jax.miner import Miner
        from pogo_jax.spec.keys import load_private_pem

        self.cfg = load_config("tiny", SET)
        self.chain, self.ledger = create_chain(root / "chain", self.cfg)
        keys = sorted(self.chain.keys_dir.glob("verifier-*.pem"))
        self.nodes = [VerifierNode(p.stem, load_private_pem(p), "light" if i == len(keys) - 1 else "full")
                      for i, p in enumerate(keys)]
        self.miner = Miner(self.chain, self.ledger, load_private_pem(self.chain.keys_dir / "miner.pem"),
                           root / "miner")
        self.console = Console(file=io.StringIO())
        self.root = root

    def honest_block(self) -> dict:
        from pogo_jax.demo import run_block

        with Progress(console=self.console) as progress:
            return run_block(self.chain, self.ledger, self.miner, self.nodes, progress, self.console)

    def cheat(self, name: str, **options) -> dict:
        from pogo_jax.demo import adversary_key, run_adversary_block

        adv = make_adversary(name, **options)
        key = adversary_key(self.chain, self.ledger, name, self.cfg.pogo.stake)
        cheat = self.miner.fork(key, self.root / "adversaries" / name, adv)
        with Progress(console=self.console) as progress:
            return run_adversary_block(self.chain, self.ledger, cheat, self.nodes, progress)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("adversary"))
    rec = w.honest_block()
    assert rec["outcome"] == "confirmed", rec
    return w


def _check_slashed(w: World, name: str, rec: dict, exp=None) -> None:
    exp = exp or EXPECTED[name]
    tip_before = rec["height"] - 1
    assert rec["outcome"] == "slashed", rec
    assert rec["stage"] == ("record" if exp.stage == "record" else "verify"), rec
    assert rec["outcome_reason"] == exp.outcome, rec
    assert rec["stake"][1] == 0 and rec["stake"][0] > 0, rec
    assert w.ledger.participant(bytes.fromhex(rec["miner_key"]))["slashed"]
    assert w.ledger.tip()["height"] == tip_before  # the cheat never became part of the chain
    if exp.stage == "record":
        assert rec["record_reason"] in exp.reasons and not rec["verifiers"], rec
        blk = w.ledger.blocks()[-1]
        assert (blk["status"], blk["reason"], blk["fraud_confirmed"]) == ("slashed", exp.outcome, True)
        return
    by_tier = {v["verifier"]: v for v in rec["verifiers"]}
    assert len(by_tier) == N_VERIFIERS
    for node in w.nodes:
        v = by_tier[node.name]
        if exp.stage == "light":
            # An objective fraud proof: every verifier, light or full, rejects in the light tier.
            assert (v["verdict"], v["tier"]) == ("reject", "light") and v["reason"] in exp.reasons, v
        elif node.tier == "full":
            assert (v["verdict"], v["tier"]) == ("reject", "full") and v["reason"] in exp.reasons, v
        else:  # the light tier cannot see a consistent update that does not lower the loss
            assert (v["verdict"], v["tier"], v["reason"]) == ("accept", "light", "OK"), v
    if exp.stage == "light":
        assert rec["fraud_evidence"].startswith(tuple(exp.reasons)), rec


@pytest.mark.parametrize("name", list(EXPECTED))
def test_adversary_is_rejected_and_slashed(world: World, name: str) -> None:
    _check_slashed(world, name, world.cheat(name))


@pytest.mark.parametrize(("name", "options", "stage", "reasons", "outcome"), [
    # A random update may lower the loss a little by chance; the fake report is then LOSS_MISMATCH.
    ("lazy", {"mode": "random"}, "full", {"LOSS_NOT_DECREASED", "LOSS_MISMATCH"}, "QUORUM_REJECT"),
    ("replay", {"mode": "header"}, "record", {"WRONG_PARENT"}, "WRONG_PARENT"),
    ("swap", {"mode": "indices"}, "light", {"WRONG_CHALLENGE"}, "FRAUD_CONFIRMED"),
    ("wrong-layout", {"mode": "data"}, "record", {"WRONG_DATA"}, "WRONG_DATA"),
    ("tamper", {"fraction": 0.3}, "light", {"APPLY_MISMATCH"}, "FRAUD_CONFIRMED"),
])
def test_adversary_variants(world: World, name, options, stage, reasons, outcome) -> None:
    from pogo_jax.adversary import Expected

    _check_slashed(world, name, world.cheat(name, **options), Expected(stage, frozenset(reasons), outcome))


def test_verbatim_replayed_header_is_refused_without_slashing_anyone(world: World) -> None:
    """Re-sending the last confirmed block's signed header: refused at record, and since its
    signer is the honest miner who did nothing wrong, nobody is slashed."""
    from pogo_jax.errors import Rejected
    from pogo_jax.roles.chainops import chain_rules
    from pogo_jax.spec.header import SignedHeader

    led = world.ledger
    tip = led.tip()
    old = SignedHeader.from_bytes(led.block(height=tip["height"], status="confirmed")["header_bytes"])
    stakes = {p["key"]: p["stake"] for p in led.participants()}
    with pytest.raises((Rejected, UserError)):
        led.record_header(old, bytes(32), "x")
    with pytest.raises(UserError, match="already recorded|not provably invalid|does not extend"):
        led.report_invalid_header(old, bytes(32), "x", chain_rules(led))
    assert {p["key"]: p["stake"] for p in led.participants()} == stakes


def test_honest_miner_still_extends_the_chain_after_the_cheats(world: World) -> None:
    h = world.ledger.tip()["height"]
    rec = world.honest_block()
    assert rec["outcome"] == "confirmed" and rec["height"] == h + 1, rec
    assert all(v["verdict"] == "accept" for v in rec["verifiers"])
    # A newcomer's sync rebuilds exactly the miner's state: the slashed blocks left no trace in it.
    from pogo_jax.chain import load_state
    from pogo_jax.roles.chainops import sync

    theta, _, _ = sync(world.chain, world.ledger)
    mine = load_state(world.miner.state_file(h + 1))
    assert all(np.array_equal(theta[k].view(np.uint32), mine[k].view(np.uint32)) for k in mine)


def test_unknown_adversary_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="unknown adversary 'nope'; choose one of: tamper"):
        make_adversary("nope")


def test_tamper_with_k_below_n_is_caught_at_the_sampling_rate() -> None:
    """k < n: a light check opens k = 16 of 512 leaves of a block with 32 tampered leaves; the
    measured detection rate over fresh beacons matches the exact (hypergeometric) rate."""
    from math import comb

    from pogo_jax.adversary import fresh_beacon
    from pogo_jax.roles.light import verify_light

    seed = int(np.random.default_rng().integers(2**31))
    n, k, bad, trials = 512, 16, 32, 300
    blk = synthetic_block(n, 64, 32, seed=seed, tamper=bad / n)
    hits = 0
    for i in range(trials):
        beacon = fresh_beacon(seed.to_bytes(8, "little"), i)
        res = verify_light(blk.bundle(beacon, k, 2), blk.policy(beacon, k, 2))
        assert res.accept or (res.reason == "APPLY_MISMATCH" and res.fraud_proof), (seed, res)
        hits += not res.accept
    p = 1 - comb(n - bad, k) / comb(n, k)  # 0.65
    sd = (p * (1 - p) / trials) ** 0.5
    assert abs(hits / trials - p) < 5 * sd, (seed, hits, p)
