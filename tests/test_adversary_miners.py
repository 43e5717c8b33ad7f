"""Attack 12 of the v2 issue: ``pogo demo --adversary loss-up`` in a fresh directory ran no honest block, and at
height 1 its negated update still lowered the loss (random weights fall under almost any update), so the "cheat"
was confirmed. Now the demo runs an honest block first, and ``loss-up`` commits an update that raises the loss
at any height, which the full tier rejects, while it reports losses that seem to fall."""

from __future__ import annotations

from chainkit import make_dataset, role_chain

from pogo_jax.config import load_config
from pogo_jax.demo.adversary import LossUp
from pogo_jax.demo.run import honest_blocks
from pogo_jax.roles.miner import Miner
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec.bundle import Bundle


def test_an_adversary_demo_runs_an_honest_block_first_on_a_fresh_chain() -> None:
    assert honest_blocks(None, "loss-up", 0) == 1 and honest_blocks(None, "tamper", 0) == 1
    assert honest_blocks(None, "loss-up", 4) == 0  # a continued chain has made progress already
    assert honest_blocks(0, "loss-up", 0) == 0  # asked for: --blocks 0
    assert honest_blocks(0, "replay", 0) == honest_blocks(0, "frontrun", 0) == 1  # they copy a confirmed block
    assert honest_blocks(None, None, 0) == 3 and honest_blocks(2, None, 5) == 2


def test_12_loss_up_raises_the_loss_at_height_1_and_the_full_tier_rejects_it(tmp_path) -> None:
    cfg = load_config("tiny", ["miner.block_steps=3", "chain.k_leaves=16",
                               f"data.path={make_dataset(tmp_path / 'd.pogodata', seed=5)}"])
    rc = role_chain(tmp_path, cfg, "loss-up", verifiers=("verifier",), beacon_length=64)
    chain, client, clock = rc.chain, rc.client, rc.clock
    miner = Miner(client, rc.keys["miner"], tmp_path / "miner", cfg, hooks=LossUp())
    assert miner.view.context().height == 1  # a fresh chain: random weights
    made = miner.make_candidate(miner.view.context())
    client.submit_candidate(made.header_bytes, made.update_path)
    clock.advance(cfg.chain.submit_window_ms)
    chain.tick()
    miner.view.refresh()
    data = miner.prove(made)
    client.submit_bundle(data)
    chain.tick()
    claimed = Bundle.from_bytes(data)
    assert claimed.loss_next < claimed.loss_prev  # what the cheat reports: a decrease
    verdict, _ = Verifier(client, rc.keys["verifier"], tmp_path / "verifier", "full").attest(made.hash)
    assert verdict.loss_next > verdict.loss_prev, verdict  # what it committed: the loss went up
    assert not verdict.accept and verdict.reason in ("LOSS_NOT_DECREASED", "LOSS_MISMATCH"), verdict
