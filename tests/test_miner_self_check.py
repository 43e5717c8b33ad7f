"""An honest miner does not submit a block that its own estimate says would be slashed: the chain rejects
(and slashes by loss_slash_fraction) any block whose verified improvement is under delta, honest or not.
Seen on a ``tiny`` adversary demo before this check: the honest block at height 2 raised the loss on the
round's windows by 0.0014 nats and its miner lost half its stake."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from chainkit import FakeClock, key, keys_of, make_dataset

from pogo_jax.chain.beacon import BeaconService
from pogo_jax.chain.client import LocalClient
from pogo_jax.config import load_config
from pogo_jax.roles.governance import create_chain
from pogo_jax.roles.miner import Abstained, Miner, MinerHooks
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Participant


def _miner(tmp, *overrides: str) -> tuple[Miner, object]:  # noqa: ANN001
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = load_config("tiny", ["miner.block_steps=3", "chain.k_leaves=16", "chain.m_windows=8",
                               f"data.path={make_dataset(tmp / 'd.pogodata')}", *overrides])
    clock = FakeClock()
    beacon = BeaconService.create(tmp / "beacon", length=16, secret=hashlib.sha256(tmp.name.encode()).digest(),
                                  clock=clock)
    beacon.add_keys(keys_of(tmp / "d.pogodata"))
    m = key(f"self-check miner {tmp.name}")
    chain = create_chain(tmp / "node", cfg, key("gov"), key("node"), beacon.info(),
                         [Participant(public_bytes(m), "miner", "m", 1000)], clock=clock)
    chain.beacon = beacon
    beacon.bind(chain.state.genesis.chain_id, public_bytes(key("node")))
    return Miner(LocalClient(chain), m, tmp / "miner", cfg), chain


@pytest.mark.parametrize(("policy", "event"), [("extend", "extending"), ("retrain", "retraining")])
def test_a_block_under_the_margin_is_grown_or_retrained_then_not_submitted(tmp_path, policy, event) -> None:
    """A margin no block can reach (1000 x delta): the miner extends the block (or trains a new one from the
    tip) up to max_tries, each judged on fresh windows, then submits nothing; the chain holds no candidate
    and its stake is untouched."""
    miner, chain = _miner(tmp_path, "miner.self_check_margin=1000", "miner.max_tries=2",
                          f"miner.short_block={policy}")
    events = []
    miner.events = events.append
    out = miner.mine_round(timeout=60)
    assert out["status"] == "abstained" and out["reason"] == "SELF_CHECK", out
    assert "fell short" in out["detail"] and ("extended to 6 steps" in out["detail"]) == (policy == "extend")
    assert [e["event"] for e in events] == ["training", event, "abstained"], events
    assert miner.block.trainer.step == 2 * 3  # two tries of three steps
    st = miner.view.state
    assert not st.round.candidates and st.stakes[miner.pub] == 1000
    assert not (miner.work / "candidates").exists() or not any((miner.work / "candidates").rglob("header.json"))


def test_an_extended_block_is_one_update_from_the_tip(tmp_path) -> None:
    """Seen in the usefulness bench: once the loss flattens, a fresh block of block_steps never clears the
    margin again and the chain stalls on a fixed delta. Extending keeps training where the short try
    stopped; what is committed must still be one 4-bit update applied to the tip (a verifier rebuilds
    theta_next from theta_prev and the update alone) and the header must count every step."""
    from pogo_jax.spec.state import rebuild

    miner, _ = _miner(tmp_path, "miner.max_tries=3")
    verdicts = iter([False, False, True])

    class ShortTwice(MinerHooks):  # the first two tries "fall short", whatever they measure
        def self_check(self, m, improvement, delta):  # noqa: ANN001, ANN202
            improvement()
            return next(verdicts)

    miner.hooks = ShortTwice()
    events = []
    miner.events = events.append
    ctx = miner.view.context()
    tip, _ = miner.tip_state(ctx)
    tip = {k: np.array(v) for k, v in tip.items()}
    made = miner.make_candidate(ctx)
    body = made.signed.body
    assert [e["event"] for e in events].count("extending") == 2
    assert body.train["steps"] == 9 and body.train["step_start"] == 0 and len(made.train_losses) == 9
    # rebuilt from the tip and the update alone (quantizing from the second try's end would miss root_next)
    theta_next, _ = rebuild(tip, made.update_path.read_bytes(), miner.layout, body.root_q, body.root_next)
    assert body.root_prev == ctx.root_prev
    assert any(not np.array_equal(theta_next[k], tip[k]) for k in tip)


def test_a_first_block_passes_the_check_and_an_unchecked_miner_submits_anyway(tmp_path) -> None:
    """From random weights a few steps lower the loss by more than 2 x delta: a candidate. With the
    check off (0 windows) even the impossible margin submits, which is what the chain then slashes."""
    miner, _ = _miner(tmp_path / "a")
    made = miner.make_candidate(miner.view.context())
    # (three steps inside the lr warmup may fall short once: then a second block of three steps is trained)
    assert miner._estimate >= 2 * float(miner.view.state.rules.delta) and miner.block.trainer.step in (3, 6, 9)
    assert made.seconds["self_check"] > 0
    off, _ = _miner(tmp_path / "b", "miner.self_check_windows=0", "miner.self_check_margin=1000")
    assert off.make_candidate(off.view.context()).hash


def test_bad_self_check_settings_are_one_line_errors(tmp_path) -> None:
    from pogo_jax.errors import UserError

    for bad in ("miner.max_tries=0", "miner.self_check_windows=-1", "miner.self_check_margin=-1"):
        with pytest.raises(UserError, match=bad.split("=")[0]):
            load_config("tiny", [bad])
    assert issubclass(Abstained, UserError)


def test_a_block_of_no_steps_saves_the_trainer_again(tmp_path) -> None:
    """A miner whose block trains no step (one that copies or re-applies an update) saved its trainer at a step
    already saved, and orbax refused (StepAlreadyExistsError: the frontrun demo crashed on its second round)."""
    from pogo_jax.demo.adversary import Lazy

    miner, _ = _miner(tmp_path, "miner.self_check_windows=0")
    miner.hooks = Lazy()
    miner.make_candidate(miner.view.context())
    step = miner.block.trainer.step
    miner._save_trainer()  # the same step again
    assert miner.block.trainer.step == step
    miner._block = None  # a fresh process resumes from it
    assert miner.block.trainer.step == step
