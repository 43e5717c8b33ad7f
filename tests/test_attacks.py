"""Every attack of the "Consensus v2" issue (numbered as there) and of PROTOCOL section 8, performed against
the chain's rules on a synthetic model: the attacker gains nothing (not confirmed, not paid, slashed where
the protocol says) and the honest miner loses nothing. Each docstring says what the attack did to v1 and
which rule stops it now; without that rule the assertion that follows is exactly what would fail.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from chainkit import Kit

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import LocalClient, Refused
from pogo_jax.chain.view import ChainView
from pogo_jax.errors import MalformedInput, Rejected
from pogo_jax.spec import update as upd
from pogo_jax.spec.envelope import Signed, seal
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Epoch


@pytest.fixture
def kit(tmp_path):
    return Kit(tmp_path)


def stakes(k: Kit) -> dict[str, int]:
    return {p.name: k.st.stakes[x] for x, p in k.st.participants.items()}


def clean(k: Kit) -> None:
    rep = audit(k.chain.ledger.entries(), k.chain.ledger.tables(), k.chain.fetch)
    assert rep.clean, rep.differences


def winner_of_last_round(k: Kit):  # noqa: ANN201
    r = k.st.history[-1]
    return None if r.winner is None else r.candidates[r.winner]


# ------------------------------------------------------------------------------------------ 1, 2


def test_1_frontrun_a_rivals_update_is_hidden_then_a_copy_is_a_replay(kit: Kit) -> None:
    """v1: a rival copied update.qupd between its appearance and the header's recording, was paid, and got
    the honest miner slashed. Now the update arrives with the header and is served to nobody while the
    submission window is open; a copy after it closes is too late, and in a later round it is a replay."""
    honest = kit.make(0)
    kit.submit(honest)
    sha = kit.st.round.candidates[honest.hash].update_sha256
    with pytest.raises(Refused) as e:
        LocalClient(kit.chain).blob(sha)
    assert e.value.status == 404 and not kit.chain.visible(sha)
    kit.close_submit()
    copied = np.frombuffer(LocalClient(kit.chain).blob(sha), np.uint8).reshape(kit.layout.n_leaves, -1)
    thief = kit.make(1, q=copied)
    with pytest.raises(Rejected, match="WINDOW_CLOSED"):
        kit.submit(thief)
    kit.chain.submit_bundle(kit.bundle(honest))
    kit.vote_all(honest)
    assert winner_of_last_round(kit).hash == honest.hash
    thief2 = kit.make(1, q=copied)  # the same update against the new tip: a replay of a recorded update
    acc = kit.submit(thief2)
    assert acc.result == "evidence" and kit.stake(kit.miners[1]) == 0
    assert kit.stake(kit.miners[0]) == 1000 + winner_of_last_round(kit).reward
    clean(kit)


def test_2_epoch_grief_only_governance_from_the_next_round(kit: Kit, tmp_path) -> None:
    """v1: any registered key started an epoch (with paths of its choosing), turning the honest header into
    WRONG_DATA and slashing its miner. Now an epoch is signed by the governance key named at genesis, names
    blobs by hash (no path field exists), and takes effect only when the next round opens."""
    from chainkit import make_dataset

    from pogo_jax.chain.genesis import data_ref

    honest = kit.make(0)
    kit.submit(honest)
    f = make_dataset(tmp_path / "ft.pogodata", seed=5)
    ref = data_ref(f, hashlib.sha256(f.read_bytes()).digest())
    miner = kit.miners[1]
    body = Epoch(kit.chain_id, public_bytes(miner), 1, ref, None)
    with pytest.raises(Rejected, match="WRONG_SIGNER"):
        kit.chain.submit_epoch(seal(body, miner).to_bytes(), [f.read_bytes()], None)
    gov_body = replace(body, governance_key=public_bytes(kit.gov))
    forged = Signed(gov_body, seal(body, miner).signature)
    with pytest.raises(Rejected, match="WRONG_SIGNER"):
        kit.chain.submit_epoch(forged.to_bytes(), [f.read_bytes()], None)
    obj = seal(gov_body, kit.gov).to_obj()
    obj["body"]["data"]["path"] = "../../etc/passwd"
    from pogo_jax.spec.encoding import canonical
    from pogo_jax.spec.records import read_record

    with pytest.raises(MalformedInput, match="unknown field 'path'"):
        read_record(canonical(obj), "epoch")
    old_data = kit.st.round.data.data_root
    kit.chain.submit_epoch(seal(gov_body, kit.gov).to_bytes(), [f.read_bytes()], None)  # the governance key
    assert kit.st.round.data.data_root == old_data  # the open round is untouched
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(honest))
    kit.vote_all(honest)
    assert winner_of_last_round(kit).hash == honest.hash and kit.stake(kit.miners[0]) > 1000
    assert kit.st.round.data.data_root == ref.data_root  # it applies from the next round on
    clean(kit)


# ------------------------------------------------------------------------------------------ 3, 4


def test_3_light_accepts_do_not_confirm_a_lazy_block(kit: Kit) -> None:
    """v1: two light accepts confirmed an all-zero update with invented losses, even against a full-tier
    LOSS_NOT_DECREASED, and finalize could run the moment two attestations existed. Now only full-tier
    votes decide the loss and finalize waits for the window (or every verifier)."""
    lay = kit.layout
    zero = upd.pack_leaves(np.full((lay.n_leaves, 4), -12, np.int8), np.zeros((lay.n_leaves, 256), np.int8))
    lazy = kit.make(0, q=zero)
    votes = {(0, 0): ("reject", "full", "LOSS_NOT_DECREASED", (2.0, 2.0)),
             (0, 1): ("accept", "light", None, None), (0, 2): ("accept", "light", None, None)}
    kit.submit(lazy)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(lazy))
    for (_, v), (verdict, tier, reason, losses) in votes.items():
        kit.vote(v, lazy, verdict, tier, reason, losses)
        kit.chain.tick()
        assert kit.st.round.finalized_at is None
    assert kit.st.history == []
    kit.settle()
    r = kit.st.history[-1]
    assert r.winner is None and r.candidates[lazy.hash].status == "undecided"
    assert kit.stake(kit.miners[0]) == 1000 and kit.st.tip_height == 0
    assert (kit.st.round.height, kit.st.round.round) == (1, 2)  # the height goes on with a new attempt
    clean(kit)


def test_4_grinding_needs_the_beacon_secret_and_a_rebuild_beats_light_accepts(kit: Kit) -> None:
    """v1: the beacon secret sat in the shared chain directory, a miner ground its nonce until the challenge
    missed its tampered leaves, and light accepts outvoted a full-tier ROOT_NEXT_MISMATCH, after which nobody
    could sync. Now the secret lives only in the beacon's directory, one value per round is released only
    after the node's signed close, and a root mismatch is an objective claim the finalizer rebuilds."""
    node_files = {p.name for p in (kit.tmp / "node").rglob("*")}
    assert "secret.key" not in node_files and (kit.tmp / "beacon" / "secret.key").is_file()
    n = kit.layout.n_leaves
    cheat = kit.make(0, tamper_rows=[n - 1])  # one leaf: a challenge of k < n leaves may miss it
    kit.submit(cheat)
    kit.close_submit()
    b = kit.st.round.beacon
    leaves = kit.st.context(cheat.hash).leaves()
    assert b is not None and len(leaves) == kit.rules.k_leaves
    kit.chain.submit_bundle(kit.bundle(cheat))
    kit.chain.tick()
    lp = (2.0, 1.5)  # what the bundle reports
    if n - 1 in leaves:  # caught by the light tier directly
        kit.vote(2, cheat, "reject", "light", "APPLY_MISMATCH", None)
    kit.vote(0, cheat, "reject", "full", "ROOT_NEXT_MISMATCH", None)
    kit.vote(1, cheat, "accept", "full", None, lp)
    if n - 1 not in leaves:
        kit.vote(2, cheat, "accept", "light", None, None)
    kit.settle()
    c = kit.st.history[-1].candidates[cheat.hash]
    assert c.status == "fraud" and kit.stake(kit.miners[0]) == 0 and kit.st.tip_height == 0
    assert kit.stake(kit.verifiers[0]) == 1000 + kit.rules.verifier_reward  # the true claim is a vote that counts
    honest = kit.make(1)
    kit.run_round([honest])
    assert kit.st.tip_height == 1  # the chain moved on from the honest block, and everyone can rebuild it
    from pogo_jax.chain.history import confirmed_state

    assert confirmed_state(kit.st, 1, kit.chain.fetch).root == honest.signed.body.root_next
    clean(kit)


# ------------------------------------------------------------------------------------------ 5, 6


def test_5_no_candidate_without_its_whole_update(kit: Kit) -> None:
    """v1: deleting update.qupd after the header was recorded made full verifiers abstain while light ones
    confirmed. Now the chain records a header only with its whole update, hashed to root_q, in its store."""
    m = kit.make(0)
    before = kit.chain.ledger.tables()
    for data, code in ((m.update[: len(m.update) // 2], "BAD_LENGTH"), (b"", "BAD_LENGTH"),
                       (bytes(len(m.update)), "ROOT_Q_MISMATCH")):
        with pytest.raises(Rejected, match=code):
            kit.submit(m, update=data)
    assert kit.chain.ledger.tables() == before and kit.st.round.candidates == {}
    kit.submit(m)
    sha = kit.st.round.candidates[m.hash].update_sha256
    assert kit.chain.blobs.has(sha) and hashlib.sha256(kit.chain.blobs.get(sha)).digest() == sha


def test_6_token_work_is_not_paid_in_full(kit: Kit) -> None:
    """v1: re-applying half of the last update, or one step instead of twenty, was confirmed and paid the full
    reward. Now the reward is reward_per_nat times the verified improvement, the best improvement of the
    round wins, and an improvement whose bound is under delta is weak (a fee, not a reward)."""
    k2 = Kit(kit.tmp / "k2", n_miners=3, delta=Fraction(1, 100))
    real, token, lazy = k2.make(0), k2.make(1, scale=-14), k2.make(2)
    votes = {}
    for v in range(3):
        votes[(0, v)] = ("accept", "full", None, (2.5, 2.0))  # 0.5 nats
        votes[(1, v)] = ("accept", "full", None, (2.5, 2.48))  # 0.02 nats: valid, not best
        votes[(2, v)] = ("reject", "full", "LOSS_NOT_DECREASED", (2.5, 2.495))  # under delta
    k2.run_round([real, token, lazy], votes)
    r = k2.st.history[-1]
    assert r.winner == real.hash and r.candidates[real.hash].reward == 50
    assert r.candidates[token.hash].status == "valid" and r.candidates[token.hash].reward == 0
    assert r.candidates[lazy.hash].status == "weak"
    assert (k2.stake(k2.miners[1]), k2.stake(k2.miners[2])) == (1000, 1000 - k2.rules.candidate_fee
                                                                 - 3 * k2.rules.verifier_reward)
    # alone, a token improvement is paid in proportion: floor(100 * (2.5 - 2.47)) = 2 (v2 paid it the cap)
    k3 = Kit(kit.tmp / "k3")
    token = k3.make(0)
    k3.run_round([token], {(0, v): ("accept", "full", None, (2.5, 2.47)) for v in range(3)})
    assert k3.st.history[-1].candidates[token.hash].reward == 2


# ------------------------------------------------------------------------------------------ 7, 8


def test_7_a_published_bundle_can_neither_be_replaced_nor_escape_its_fraud_proof(kit: Kit) -> None:
    """v1: replacing the published bundle after a fraud reject made finalize fail forever; deleting it turned
    FRAUD_CONFIRMED into pending; attestations named no evidence. Now the chain stores the bundle and its hash
    at publication, serves exactly those bytes, and every attestation must name that hash."""
    n = kit.layout.n_leaves
    cheat = kit.make(0, tamper_rows=range(n))
    kit.submit(cheat)
    kit.close_submit()
    first = kit.bundle(cheat)
    kit.chain.submit_bundle(first)
    kit.chain.tick()
    kit.vote(0, cheat, "reject", "light", "APPLY_MISMATCH", None)
    other = kit.bundle(cheat, losses=(2.0, 1.0))  # a second, differently signed answer
    with pytest.raises(Rejected, match="BUNDLE_FIXED"):
        kit.chain.submit_bundle(other)
    with pytest.raises(Rejected, match="EVIDENCE_MISMATCH"):
        kit.chain.submit_attestation(kit.attest(1, cheat, "accept", "full", evidence=hashlib.sha256(other).digest()))
    assert LocalClient(kit.chain).blob(hashlib.sha256(first).digest()) == first
    kit.settle()
    assert kit.st.history[-1].candidates[cheat.hash].status == "fraud" and kit.stake(kit.miners[0]) == 0
    clean(kit)
    kit.chain.blobs.path(hashlib.sha256(first).digest()).chmod(0o644)
    kit.chain.blobs.path(hashlib.sha256(first).digest()).unlink()  # the node operator deleting it on disk
    rep = audit(kit.chain.ledger.entries(), kit.chain.ledger.tables(), kit.chain.fetch)
    assert not rep.clean and any("bundle" in d for d in rep.differences)


def test_8_an_unanswered_header_does_not_stall_the_height(kit: Kit) -> None:
    """v1: a recorded header that was never answered stalled its height forever. Now the proof window closes
    on the chain's clock, the candidate is withheld (its miner loses withhold_fraction) and the round ends."""
    staller, honest = kit.make(0), kit.make(1)
    kit.submit(staller)
    kit.submit(honest)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(honest))
    kit.chain.tick()
    assert kit.st.round.phase == "proof"  # waits for the staller ... until the deadline
    kit.clock.advance(kit.rules.prove_window_ms)
    kit.chain.tick()
    assert kit.st.round.candidates[staller.hash].status == "withheld"
    with pytest.raises(Rejected, match="WINDOW_CLOSED"):
        kit.chain.submit_bundle(kit.bundle(staller))
    kit.vote_all(honest)
    assert kit.st.tip_height == 1 and winner_of_last_round(kit).hash == honest.hash
    assert kit.stake(kit.miners[0]) == 900 and kit.stake(kit.miners[1]) == 1050
    clean(kit)


# ------------------------------------------------------------------------------------------ 9, 10, 11


def test_9_the_window_count_and_the_dataset_come_from_the_chain(kit: Kit, tmp_path) -> None:
    """v1: the light tier took the number of loss windows from the header (leave it out: no check), and data
    files were checked against their own manifest. Now the windows are the round's, drawn below the count the
    recorded manifest implies (one sealed shard's worth), and a dataset must hash to the recorded data_root
    and manifest hash."""
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    ctx = kit.st.context(m.hash)
    assert ctx.n_windows == (ctx.data.manifest["sealed"]["shard_bytes"] - 1) // 16
    kit.chain.submit_bundle(kit.bundle(m, windows=[w + 1 for w in ctx.windows]))
    from pogo_jax.spec.bundle import Bundle
    from pogo_jax.spec.light import verify_light

    stored = kit.chain.blobs.get(kit.st.context(m.hash).bundle_sha256)
    res = verify_light(Bundle.from_bytes(stored), kit.st.context(m.hash))
    assert res.reason == "WRONG_CHALLENGE" and res.fraud_proof
    # a dataset file with one flipped token byte, for the recorded root: refused
    from pogo_jax.roles.data import chain_dataset

    good = kit.chain.blobs.get(ctx.data.blob)
    bad = bytearray(good)
    bad[-10] ^= 1

    class FakeClient:
        url = "fake"

        def blob_to_file(self, sha, path, progress=None):  # noqa: ANN001, ANN201
            from pathlib import Path
            Path(path).write_bytes(bytes(bad))
            return path

    from pogo_jax.errors import UserError

    with pytest.raises(UserError, match="data_root|manifest|hash"):
        chain_dataset(FakeClient(), replace(ctx.data, blob=hashlib.sha256(bytes(bad)).digest()), tmp_path / "v")
    assert chain_dataset(LocalClient(kit.chain), ctx.data, tmp_path / "w").data_root == ctx.data.data_root


def test_10_no_fraud_flag_without_a_recheck_and_no_unsigned_epoch(kit: Kit) -> None:
    """v1: Ledger.set_fraud_confirmed slashed an honest, accepted block on nothing but a call, and start_epoch
    checked no signature. Now there is no such call: a fraud claim is an attestation the finalizer re-checks
    from the stored bytes, and a false one slashes the verifier who signed it."""
    honest = kit.make(0)
    kit.submit(honest)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(honest))
    kit.vote(0, honest, "reject", "light", "BAD_PROOF", None)
    kit.vote(1, honest)
    kit.vote(2, honest, "reject", "full", "ROOT_NEXT_MISMATCH", None)
    kit.settle()
    assert not hasattr(kit.chain, "set_fraud_confirmed")
    c = kit.st.history[-1].candidates[honest.hash]
    s = stakes(kit)
    assert s["verifier0"] == 0 and s["verifier2"] == 0 and s["verifier1"] == 1000 and s["miner0"] == 1000
    assert c.status == "undecided"  # with the liars out, one full accept is too few: not confirmed, not slashed
    clean(kit)


def test_11_a_verifier_that_signs_both_verdicts_is_slashed_when_seen(kit: Kit) -> None:
    """v1: an equivocating verifier was slashed only if the block was later decided. Now at once: two light
    verdicts, or two commitments to different full votes, on one candidate."""
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(m))
    kit.vote(0, m, "accept", "light", None, None)
    with pytest.raises(Rejected, match="ALREADY_ATTESTED"):
        kit.vote(0, m)  # a full commitment beside its light vote
    acc = kit.chain.submit_attestation(kit.attest(0, m, "reject", "light", "BAD_PROOF", None))
    assert acc.result == "evidence" and kit.stake(kit.verifiers[0]) == 0
    kit.vote(1, m)
    other = kit.attest(1, m, losses=(2.0, 1.25))  # another full vote, committed too
    acc = kit.chain.submit_commit(kit.commit(other))
    assert acc.result == "evidence" and kit.stake(kit.verifiers[1]) == 0
    assert kit.st.round.finalized_at is None  # the round has not decided anything yet
    clean(kit)


# ------------------------------------------------------------------------------------------ section 8


def test_miner_equivocation_slashes_at_once_and_voids_its_candidate(kit: Kit) -> None:
    a = kit.make(0)
    kit.submit(a)
    b = kit.make(0, header_changes={"train": {"steps": 2}})
    acc = kit.submit(b)
    assert acc.result == "evidence" and kit.stake(kit.miners[0]) == 0
    assert list(kit.st.round.candidates) == [a.hash]
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(a))
    kit.vote_all(a)
    assert kit.st.history[-1].candidates[a.hash].status == "void" and kit.st.tip_height == 0
    clean(kit)


def test_a_beacon_the_miner_supplied_or_another_challenge_is_fraud(kit: Kit) -> None:
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    from pogo_jax.spec.bundle import Bundle
    from pogo_jax.spec.light import verify_light

    ctx = kit.st.context(m.hash)
    ground = hashlib.sha256(b"my own beacon").digest()
    for beacon in (ground,):
        b = Bundle.from_bytes(kit.bundle(m, beacon=beacon))
        res = verify_light(b, ctx)
        assert not res.accept and res.reason == "BEACON_MISMATCH" and res.fraud_proof
    forged = bytearray(kit.bundle(m))
    forged[-1] ^= 1  # somebody else's corrupted copy proves nothing about the miner
    with pytest.raises(Rejected, match="BAD_SIGNATURE"):
        kit.chain.submit_bundle(bytes(forged))


def test_round_with_two_honest_and_one_lazy_confirms_the_best_and_pays_only_it(tmp_path) -> None:
    k = Kit(tmp_path, n_miners=3)
    a, b, lazy = k.make(0), k.make(1), k.make(2)
    votes = {}
    for v in range(3):
        votes[(0, v)] = ("accept", "full", None, (3.0, 2.6))
        votes[(1, v)] = ("accept", "full", None, (3.0, 2.7))
        votes[(2, v)] = ("reject", "full", "LOSS_NOT_DECREASED", (3.0, 3.0))
    k.run_round([a, b, lazy], votes)
    s = stakes(k)
    pay = 3 * k.rules.verifier_reward  # each verifier: one vote on each candidate
    fee = k.rules.candidate_fee + pay  # the weak candidate pays its fee and its three votes
    assert winner_of_last_round(k).hash == a.hash and s == {"miner0": 1040, "miner1": 1000, "miner2": 1000 - fee,
                                                            "verifier0": 1000 + pay, "verifier1": 1000 + pay,
                                                            "verifier2": 1000 + pay}
    clean(k)


def test_an_empty_round_opens_attempt_two_with_a_fresh_beacon(kit: Kit) -> None:
    m = kit.make(0)
    kit.run_round([m], {(0, v): None for v in range(3)})  # nobody attests
    r1 = kit.st.history[-1]
    assert r1.winner is None and (kit.st.round.height, kit.st.round.round) == (1, 2)
    with pytest.raises(Rejected, match="WRONG_ROUND"):
        kit.submit(kit.make(1, header_changes={"round": 1}))
    m2 = kit.make(1)
    kit.run_round([m2])
    r2 = kit.st.history[-1]
    assert r2.winner == m2.hash and r2.beacon != r1.beacon and r2.beacon_index == r1.beacon_index + 1
    clean(kit)


def test_audit_finds_an_edited_stake_row_and_the_node_refuses_to_start(kit: Kit) -> None:
    import sqlite3

    from pogo_jax.chain.chain import Chain
    from pogo_jax.errors import UserError

    kit.run_round([kit.make(0)])
    clean(kit)
    kit.chain.close()
    db = sqlite3.connect(kit.tmp / "node" / "ledger.sqlite")
    db.execute("UPDATE participants SET stake = stake + 5000 WHERE name = 'miner1'")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="differs from what its log implies"):
        Chain(kit.tmp / "node", kit.clock, kit.beacon)
    from pogo_jax.chain.blobs import BlobStore
    from pogo_jax.chain.ledger import Ledger

    ledger = Ledger.open(kit.tmp / "node" / "ledger.sqlite", readonly=True)
    rep = audit(ledger.entries(), ledger.tables(), BlobStore(kit.tmp / "node" / "blobs", readonly=True).get)
    assert not rep.clean and any("participants" in d and "6000" in d for d in rep.differences)


def test_a_replayed_root_q_slashes_its_signer_and_a_view_replays_the_same(kit: Kit) -> None:
    first = kit.make(0)
    kit.run_round([first])
    again = kit.make(1, q=first.q)
    assert kit.submit(again).result == "evidence" and kit.stake(kit.miners[1]) == 0
    view = ChainView(LocalClient(kit.chain))  # a role's own replay reaches the same stakes
    assert view.state.stakes == kit.st.stakes


def test_equivocation_is_slashed_whenever_it_is_seen_and_counts_for_nothing(tmp_path) -> None:
    """A second verdict after the round closed, a second header after the submission window: still evidence.
    With a partial slash_fraction the equivocator keeps some stake but nothing of it counts any more."""
    k = Kit(tmp_path, slash_fraction=Fraction(1, 2))
    a = k.make(0)
    k.run_round([a])
    assert k.st.tip_height == 1
    late = k.attest(0, a, "reject", losses=(2.0, 2.0))  # after finalization
    assert k.chain.submit_attestation(late).result == "evidence" and k.stake(k.verifiers[0]) == 500
    b2 = k.make(0, header_changes={"height": 1, "round": 1, "train": {"steps": 9}, "parent_hash": bytes(32),
                                   "root_prev": k.st.history[-1].root_prev})  # a second header for (1, 1)
    assert k.submit(b2).result == "evidence" and k.stake(k.miners[0]) == 525
    m = k.make(1)
    k.submit(m)
    k.close_submit()
    k.chain.submit_bundle(k.bundle(m))
    k.chain.tick()
    with pytest.raises(Rejected, match="SLASHED_VERIFIER"):
        k.vote(0, m)
    with pytest.raises(Rejected, match="SLASHED_MINER"):
        k.submit(k.make(0))
    k.vote_all(m, verifiers=(1, 2))
    assert k.st.tip_height == 2
    clean(k)


def test_attestations_that_prove_nothing_are_refused_and_change_nothing(kit: Kit) -> None:
    """A verdict changed after signing, one signed by the miner itself or by an unregistered key, one for a
    header that is no candidate, or one naming other bundle bytes: each is refused and the log is unchanged.
    Without these checks any key could vote, and a vote could be re-targeted after it was signed."""
    from pogo_jax.spec.keys import key_from_seed

    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(m))
    before = len(kit.chain.ledger.entries())
    from pogo_jax.spec.attestation import read_signed_attestation

    signed = read_signed_attestation(kit.attest(0, m))
    flipped = Signed(replace(signed.body, verdict="reject", reason="LOSS_NOT_DECREASED"), signed.signature)
    stranger = key_from_seed(np.random.default_rng().bytes(32))
    cases = {
        "BAD_SIGNATURE": flipped.to_bytes(),
        "UNREGISTERED_VERIFIER": kit.attest(0, m, key_=stranger),
        "UNREGISTERED_VERIFIER ": kit.attest(0, m, key_=kit.miners[0]),  # the miner's own key
        "EVIDENCE_MISMATCH": kit.attest(1, m, evidence=hashlib.sha256(b"other bytes").digest()),
    }
    for code, raw in cases.items():
        with pytest.raises(Rejected) as e:
            kit.chain.submit_attestation(raw)
        assert e.value.code == code.strip(), (code, e.value)
    # a well-signed vote for a header hash that is no candidate
    other = kit.make(1)
    with pytest.raises(Rejected) as e:
        kit.chain.submit_attestation(_vote_for_unknown(kit, other))
    assert e.value.code == "UNKNOWN_HEADER"
    assert len(kit.chain.ledger.entries()) == before and not kit.st.round.candidates[m.hash].votes
    clean(kit)


def _vote_for_unknown(kit: Kit, other) -> bytes:  # noqa: ANN001
    from pogo_jax.spec.attestation import Attestation, sign_attestation

    r = kit.st.round
    a = Attestation(version=4, bundle_entry=bytes(32), chain_id=kit.chain_id, height=r.height, round=r.round, header_hash=other.hash,
                    verifier_key=public_bytes(kit.verifiers[2]), verdict="accept", tier="full", reason="OK",
                    evidence=hashlib.sha256(b"x").digest(), salt=bytes(32), losses_prev=(2.0,) * 4,
                    losses_next=(1.5,) * 4)
    return sign_attestation(a, kit.verifiers[2]).to_bytes()
