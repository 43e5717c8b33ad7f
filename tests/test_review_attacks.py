"""Attacks found by the second review, each performed against the rules: without the rule named in its
docstring the attacker gains (an honest miner slashed, a winner chosen by one verifier, a free stall, a
stalled chain, a free disk write, an escaped equivocation); with it, nothing."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from chainkit import Kit, key

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import LocalClient
from pogo_jax.chain.view import ChainView
from pogo_jax.errors import MalformedInput, NodeFault, Rejected
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import MAX_CLOSE_BYTES, MAX_ROUND_CANDIDATES, Close, Finalize, Recheck


@pytest.fixture
def kit(tmp_path) -> Kit:
    return Kit(tmp_path / "chain")


def _run_to_attest(kit: Kit, mades) -> None:  # noqa: ANN001
    for m in mades:
        kit.submit(m)
    kit.close_submit()
    for m in mades:
        kit.chain.submit_bundle(kit.bundle(m))
    kit.chain.tick()


def test_a_node_that_serves_other_update_bytes_cannot_get_the_miner_slashed(kit: Kit) -> None:
    """The node admits a candidate only with an update that hashes to root_q. A node that records the honest
    header with other bytes under its name made honest full verifiers find ROOT_Q_MISMATCH, an 'objective'
    reason, and the honest miner was slashed for fraud. Now that mismatch is the node's fault: verifiers
    sign nothing, the reason counts as no claim, and the miner keeps its stake."""
    honest, decoy = kit.make(0), kit.make(1).update
    with kit.chain.lock:  # the node, lying: the honest signed header, another blob of the right length
        sha = kit.chain.blobs.put(decoy)
        kit.chain._append("candidate", honest.header_bytes, {"update_sha256": sha.hex()})
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(honest))
    kit.chain.tick()
    v = Verifier(LocalClient(kit.chain), kit.verifiers[0], kit.tmp / "v0", "full")
    with pytest.raises(NodeFault, match="the node is faulty"):
        v.check(honest.hash)
    for i in range(3):  # even verifiers that signed the mismatch cannot make a fraud claim of it
        with pytest.raises(MalformedInput, match="per-window losses"):
            kit.vote(i, honest, "reject", "full", "ROOT_Q_MISMATCH", None)
    kit.settle()
    c = kit.st.history[-1].candidates[honest.hash]
    assert c.status != "fraud" and public_bytes(kit.miners[0]) not in kit.st.barred
    assert kit.stake(kit.miners[0]) == 1000
    rep = audit(kit.chain.ledger.entries(), kit.chain.ledger.tables(), kit.chain.fetch)
    assert any("does not hash to the header's root_q" in d for d in rep.differences)


def test_roles_redo_the_nodes_rechecks_and_refuse_a_false_one(kit: Kit) -> None:
    """A node's Finalize names the result of re-checking every objective claim, and that result decides who
    is slashed. A node colluding with a verifier's false light claim wrote fails=True: every role's replay
    slashed the honest miner. Now ChainView redoes each re-check from the stored bytes (a NodeFault on a lie),
    and pogo audit reports it."""
    honest = kit.make(0)
    _run_to_attest(kit, [honest])
    kit.vote(0, honest, "reject", "light", "BAD_PROOF", None)  # false claim
    for v in (1, 2):
        kit.vote(v, honest)
    kit.close_commits()
    kit.reveal_all()
    kit.clock.advance(kit.rules.reveal_window_ms)
    assert kit.chain.recheck(honest.hash, "light").fails is False
    with kit.chain.lock:
        now = kit.clock()
        rec = kit.chain._node_record(Finalize, at=now, rechecks=(Recheck(honest.hash, "light", True, "BAD_PROOF"),))
        kit.chain._append("finalize", rec, at=now)
    with pytest.raises(NodeFault, match="the node is faulty"):
        ChainView(LocalClient(kit.chain))
    rep = audit(kit.chain.ledger.entries(), kit.chain.ledger.tables(), kit.chain.fetch)
    assert any("re-check" in d and "fails=True" in d for d in rep.differences), rep.differences


def test_a_full_vote_is_held_to_its_own_numbers_and_one_l_prev_per_round(tmp_path) -> None:
    """The verified improvement is a median of the votes' numbers. Accepts were taken with any numbers: one
    verifier reported L(next) = -1e38 for its favourite (which won), or an increase, or another L(prev) for
    each candidate. Now every full vote's verdict must be the one its own numbers imply (accept: a bound at
    delta or above and the bundle's reported losses within tolerance), with one L(prev) per verifier per
    round; a vote that breaks this is refused at its reveal, and its unrevealed commitment costs its fee."""
    kit = Kit(tmp_path, n_verifiers=6)
    a, b = kit.make(0), kit.make(1)
    _run_to_attest(kit, [a, b])  # both bundles report (2.0, 1.5)
    lies = [((2.0, -1e38), "OK", "LOSS_MISMATCH"), ((2.0, 2.5), "OK", "LOSS_NOT_DECREASED"),
            ((2.0, 1.4), "OK", "LOSS_MISMATCH"), ((2.0, 1.5), "LOSS_NOT_DECREASED", "OK")]
    votes = [kit.attest(i, a, losses=losses, reason=said) for i, (losses, said, _) in enumerate(lies)]
    for v in votes:
        kit.chain.submit_commit(kit.commit(v))
    kit.vote(4, a)
    jitter = float(np.float32(2.0 * (1 + 1e-4)))  # inside the tolerance, but not the L(prev) it measured for a
    shifted = kit.attest(4, b, losses=([jitter] * 4, [1.5] * 4))
    kit.chain.submit_commit(kit.commit(shifted))
    kit.close_commits()
    for v, (_, said, implied) in zip(votes, lies, strict=True):
        with pytest.raises(Rejected, match=f"INCONSISTENT_LOSS.*own numbers say {implied}, the vote says {said}"):
            kit.chain.submit_attestation(v)
    kit.reveal_all()
    with pytest.raises(Rejected, match=r"INCONSISTENT_LOSS.*other L\(prev\)"):
        kit.chain.submit_attestation(shifted)
    assert kit.st.round.loss_prev == {public_bytes(kit.verifiers[4]): (2.0,) * 4}
    kit.finish()
    fee = kit.rules.verifier_fee
    assert [kit.stake(kit.verifiers[i]) for i in range(5)] == [1000 - fee] * 4 + [1000 - fee]  # v4: b unrevealed



def test_any_nonzero_penalty_costs_at_least_one(tmp_path) -> None:
    """floor(stake * fraction): with stake 9 withholding (10%) cost nothing, so a miner saw the beacon and the
    windows first and withheld for free, holding every round open for the proof window; with stake 1 a full
    reject cost nothing. Now penalties round up."""
    k = Kit(tmp_path / "k9", stake=9)
    staller = k.make(0)
    k.submit(staller)
    k.close_submit()
    k.clock.advance(k.rules.prove_window_ms)
    k.chain.tick()
    assert k.st.find(staller.hash)[1].status == "withheld" and k.stake(k.miners[0]) == 8
    k1 = Kit(tmp_path / "k1", stake=1)
    m = k1.make(0)
    k1.run_round([m], {(0, v): ("reject", "full", "LOSS_NOT_DECREASED", (2.0, 2.0)) for v in range(3)})
    assert k1.st.history[-1].candidates[m.hash].status == "weak" and k1.stake(k1.miners[0]) == 0
    rng = np.random.default_rng()
    for stake in rng.integers(1, 10**6, size=50).tolist():
        for frac in (k.rules.withhold_fraction, k.rules.loss_slash_fraction, k.rules.slash_fraction):
            burn = k.rules.slashed(stake, frac)
            assert 1 <= burn <= stake and burn >= stake * frac and burn - stake * frac < 1


def test_a_round_admits_a_bounded_number_of_candidates(tmp_path, monkeypatch) -> None:
    """Nothing capped candidates per round: from about 980 the submit Close outgrew what the beacon reads
    (64 KiB) and the round could never get its beacon value: the chain stalled for good. Now the first
    MAX_ROUND_CANDIDATES are admitted and a Close at the cap fits the beacon's limit."""
    monkeypatch.setattr("pogo_jax.chain.state.MAX_ROUND_CANDIDATES", 2)
    k = Kit(tmp_path, n_miners=3)
    ms = [k.make(i) for i in range(3)]
    k.submit(ms[0])
    k.submit(ms[1])
    with pytest.raises(Rejected, match="ROUND_FULL"):
        k.submit(ms[2])
    close = Close(k.chain_id, public_bytes(key("node")), 1, 1, "submit", 0, bytes(32),
                  tuple(hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(MAX_ROUND_CANDIDATES)),
                  bytes(32), 4095)
    from pogo_jax.spec.envelope import seal

    assert len(seal(close, key("node")).to_bytes()) < MAX_CLOSE_BYTES // 2
    with pytest.raises(MalformedInput, match="too many"):
        Close.from_obj({**close.to_obj(), "candidates": [h.hex() for h in close.candidates] + ["00" * 32]})


def test_a_bundle_that_cannot_be_stored_is_refused_before_a_byte_is_written(kit: Kit) -> None:
    """The node parsed a bundle whole and wrote it to its blob store, under the chain lock, before asking
    whether it answered a candidate: anyone could make it parse and fsync a 34 MB bundle per request. Now
    the metadata's header is checked first (a candidate of the open round in its proof window)."""
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    stranger = key("nobody")
    real = Bundle.from_bytes(kit.bundle(m))
    forged = [dataclasses.replace(real, signed_header=other.signed).signed(k_).to_bytes()  # answers nothing recorded
              for other, k_ in ((kit.make(0, key_=stranger), stranger), (kit.make(1), kit.miners[1]))]
    puts: list[int] = []  # temp files opened for a bundle (an upload, then stored under its hash)
    orig = kit.chain.blobs.upload
    kit.chain.blobs.upload = lambda n, *a: (puts.append(n), orig(n, *a))[1]
    parsed: list[int] = []
    import pogo_jax.chain.chain as chain_mod

    real_from_bytes = chain_mod.Bundle.from_bytes
    chain_mod.Bundle.from_bytes = staticmethod(lambda d: (parsed.append(len(d)), real_from_bytes(d))[1])
    try:
        for data in forged:
            with pytest.raises(Rejected, match="UNKNOWN_HEADER"):
                kit.chain.submit_bundle(data)
        assert puts == [] and parsed == []
        kit.chain.submit_bundle(kit.bundle(m))  # the real one is parsed and stored once
        assert len(puts) == 1 and len(parsed) == 1
        with pytest.raises(Rejected, match="BUNDLE_FIXED"):
            kit.chain.submit_bundle(kit.bundle(m, losses=(2.0, 1.25)))
        assert len(puts) == 1 and len(parsed) == 1
    finally:
        chain_mod.Bundle.from_bytes = real_from_bytes


def test_an_equivocation_uploaded_in_parallel_is_still_evidence(kit: Kit) -> None:
    """Two headers of one miner for one round, uploaded at once: both passed the header check, and the second
    to finish was refused (a 400) instead of recorded as evidence, so the equivocation went unpunished."""
    a = kit.make(0)
    b = kit.make(0, header_changes={"train": {"steps": 2}})
    ua, ub = kit.chain.begin_candidate(a.header_bytes), kit.chain.begin_candidate(b.header_bytes)
    for cu, m in ((ua, a), (ub, b)):
        cu.write(m.update)
    assert kit.chain.finish_candidate(ua).result == "admitted"
    assert kit.chain.finish_candidate(ub).result == "evidence"
    assert kit.stake(kit.miners[0]) == 0 and kit.st.evidence[-1][1] == "EQUIVOCATION"
    blobs = set(kit.chain.blobs.all())
    assert hashlib.sha256(b.update).digest() not in blobs  # the evidence's update is not kept


def test_the_node_records_that_no_test_exercised(kit: Kit) -> None:
    """Rules on the node's own records: a submit Close must list every candidate, a Finalize may come only
    when due and must re-check every objective claim, and an attestation after its window is refused."""
    a, b = kit.make(0), kit.make(1)
    kit.submit(a)
    kit.submit(b)
    kit.clock.advance(kit.rules.submit_window_ms)
    with kit.chain.lock:
        now = kit.clock()
        with pytest.raises(Rejected, match="BAD_CLOSE"):
            kit.chain._append("close", kit.chain._node_record(Close, window="submit", at=now, candidates=(a.hash,)),
                              at=now)
    kit.chain.tick()
    for m in (a, b):
        kit.chain.submit_bundle(kit.bundle(m))
    kit.chain.tick()
    kit.vote(0, a, "reject", "light", "BAD_PROOF", None)
    kit.vote(2, a)
    with kit.chain.lock:
        now = kit.clock()
        with pytest.raises(Rejected, match="NOT_DUE"):
            kit.chain._append("finalize", kit.chain._node_record(
                Finalize, at=now, rechecks=(kit.chain.recheck(a.hash, "light"),)), at=now)
    kit.clock.advance(kit.rules.attest_window_ms + 1)
    with pytest.raises(Rejected, match="WINDOW_CLOSED"):
        kit.vote(1, a)  # a commitment after the commit window
    kit.chain.tick()
    with pytest.raises(Rejected, match="NOT_COMMITTED"):
        kit.chain.submit_attestation(kit.attest(1, a))  # a full vote revealed without its commitment
    kit.clock.advance(kit.rules.reveal_window_ms + 1)
    with pytest.raises(Rejected, match="WINDOW_CLOSED"):
        kit.chain.submit_attestation(kit.attest(1, a, "accept", "light", None, None))
    with kit.chain.lock:
        now = kit.clock()
        with pytest.raises(Rejected, match="BAD_FINALIZE"):
            kit.chain._append("finalize", kit.chain._node_record(Finalize, at=now, rechecks=()), at=now)


def test_a_barred_verifier_is_not_waited_for(tmp_path) -> None:
    """With slash_fraction < 1 a verifier barred for equivocating kept some stake, still counted among the
    voters finalize waits for, and could not attest: every round waited the whole attestation window."""
    from fractions import Fraction

    k = Kit(tmp_path, slash_fraction=Fraction(1, 2))
    first = k.make(0)
    _run_to_attest(k, [first])
    k.vote(0, first)
    k.chain.submit_commit(k.commit(k.attest(0, first, losses=(2.0, 2.0))))  # a second commitment: both
    assert public_bytes(k.verifiers[0]) in k.st.barred and k.stake(k.verifiers[0]) == 500
    for v in (1, 2):
        k.vote(v, first)
    k.chain.tick()  # the barred verifier is not waited for: the commit window closes at once
    assert k.st.round.phase == "reveal"
    k.reveal_all(skip={public_bytes(k.verifiers[0])})
    k.chain.tick()
    assert k.st.tip_height == 1
    second = k.make(1)
    _run_to_attest(k, [second])
    with pytest.raises(Rejected, match="SLASHED_VERIFIER"):
        k.vote(0, second)
    for v in (1, 2):
        k.vote(v, second)
    k.chain.tick()  # every verifier that can still vote has: the windows close at once, not after their time
    k.reveal_all(skip={public_bytes(k.verifiers[0])})
    k.chain.tick()
    assert k.st.tip_height == 2


def test_two_miners_train_with_their_own_seeds(tmp_path) -> None:
    """Training is a pure function of public inputs: two honest miners with the config's seed would make
    byte-identical updates from one tip, and the second would be slashed for replaying the first. Each now
    trains with a seed derived from its own key."""
    from pogo_jax.config import load_config
    from pogo_jax.roles.miner import Miner, miner_seed

    seeds = {miner_seed(0, public_bytes(key(f"m{i}"))) for i in range(64)}
    assert len(seeds) == 64 and all(0 <= s < 2**31 for s in seeds)
    k = Kit(tmp_path)
    cfg = load_config("tiny")
    a = Miner(LocalClient(k.chain), k.miners[0], tmp_path / "a", cfg)
    b = Miner(LocalClient(k.chain), k.miners[1], tmp_path / "b", cfg)
    assert a.cfg.train.seed != b.cfg.train.seed
    assert a.cfg.train.seed == miner_seed(cfg.train.seed, public_bytes(k.miners[0]))
