"""The adversary suite: named cheating miners (and verifiers), each a small deviation from the honest role.

Every cheat is a ``MinerHooks`` (or ``VerifierHooks``) subclass that overrides one or two of the
honest role's choices and nothing else, so a cheating block runs through the same training,
quantization, commitment, proving and verification code as an honest one. ``pogo demo --adversary
NAME`` runs one in its own process next to the honest roles; ``EXPECTED`` says which rule stops it and
where (docs/adversaries.md explains each row). No jax at import.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pogo_jax.demo.synthetic import perturb_update, pick_rows, swap_openings, tamper_leaves  # noqa: I001
from pogo_jax.errors import UserError
from pogo_jax.roles.miner import Miner, MinerHooks, state_digests
from pogo_jax.roles.verify import Verdict, VerifierHooks
from pogo_jax.spec import update as upd
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.challenge import challenge_leaves
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.header import sign_header
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves
from pogo_jax.spec.merkle import root
from pogo_jax.spec.records import Epoch
from pogo_jax.spec.state import apply_update, update_leaves, update_root


def _host(arrays: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def last_update(miner: Miner) -> np.ndarray:
    """The wire leaves of the last confirmed block (fetched from the chain by its recorded hash)."""
    st = miner.view.state
    if not st.blocks:
        raise UserError("this adversary needs a confirmed block to copy from (run an honest block first)")
    return update_leaves(miner.view.fetch(st.blocks[-1].update_sha256), miner.layout)


def zero_update(layout: Layout) -> np.ndarray:
    n, s, g = layout.n_leaves, layout.leaf_size, layout.group_size
    return upd.pack_leaves(np.full((n, s // g), -12, np.int8), np.zeros((n, s), np.int8))


class Cheat(MinerHooks):
    """A cheating miner submits whatever its block gives: it skips the honest miner's self-check."""

    def self_check(self, miner, improvement, delta):
        return True


class Tamper(Cheat):
    """Commits a theta_next in which a fraction ``f`` of the leaves differ from theta_prev + update."""

    name = "tamper"

    def __init__(self, fraction: float = 0.01, seed: int = 0) -> None:
        self.fraction, self.rng = fraction, np.random.default_rng(seed)

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        self.rows = pick_rows(lay.n_leaves, self.fraction, self.rng)
        return from_leaves(tamper_leaves(to_leaves(_host(theta_next), lay), upd.valid_counts(lay), self.rows),
                           lay), packed


class InconsistentUpdate(Cheat):
    """Publishes a 4-bit update that differs from the one that produced root_next (every leaf by default)."""

    name = "inconsistent-update"

    def __init__(self, fraction: float = 1.0, seed: int = 0) -> None:
        self.fraction, self.rng = fraction, np.random.default_rng(seed)

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        rows = pick_rows(lay.n_leaves, self.fraction, self.rng)
        return theta_next, perturb_update(np.asarray(packed), rows, lay.leaf_size, lay.group_size,
                                          upd.valid_counts(lay))


class Lazy(Cheat):
    """Does not train; commits an all-zero update, consistently, and reports a loss decrease it did not make."""

    name = "lazy"

    def train(self, miner, steps, on_step):
        return []

    def update(self, miner, theta_prev, theta_next, packed):
        q = zero_update(miner.layout)
        return apply_update(_host(theta_prev), q, miner.layout), q

    def losses(self, miner, measure):
        lp, _ = measure()
        return lp, lp - 0.1


class FakeLoss(Cheat):
    """Trains honestly but reports losses it never measured."""

    name = "fake-loss"

    def losses(self, miner, measure):
        lp, ln = measure()
        return lp + 0.5, ln - 0.5


class LossUp(Cheat):
    """Commits an update that raises the loss (the trained step negated, scaled up until the loss on the
    eval split goes up), consistently, and reports its measured losses swapped so that they seem to fall."""

    name = "loss-up"

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        prev = _host(theta_prev)
        exps, codes = upd.unpack_leaves(np.asarray(packed), lay.leaf_size, lay.group_size)
        from pogo_jax.train.data import n_eval_windows

        probe = list(range(min(8, n_eval_windows(miner.ds, miner.cfg.model.seq_len))))
        base = miner.evaluator.loss(prev, miner.ds, probe)
        for shift in (0, 2, 4, 6, 8):
            e = np.clip(exps.astype(np.int16) + shift, upd.E_MIN, upd.E_MAX).astype(np.int8)
            q = upd.pack_leaves(e, -codes)
            nxt = apply_update(prev, q, lay)
            if miner.evaluator.loss(nxt, miner.ds, probe) > base:
                return nxt, q
        return nxt, q

    def losses(self, miner, measure):
        lp, ln = measure()
        return max(lp, ln), min(lp, ln)


class Replay(Cheat):
    """Re-publishes the last confirmed block's update under a fresh, otherwise correct header."""

    name = "replay"

    def train(self, miner, steps, on_step):
        return []

    def update(self, miner, theta_prev, theta_next, packed):
        q = last_update(miner)
        return apply_update(_host(theta_prev), q, miner.layout), q


class Swap(Cheat):
    """Swaps inside the proofs: the leaf data of two openings (``mode="leaves"``) or their positions."""

    name = "swap"

    def __init__(self, mode: str = "leaves") -> None:
        self.mode = mode

    def openings(self, miner, openings):
        return swap_openings(openings, self.mode)


class WrongLayout(Cheat):
    """Commits to another layout (half-size leaves) or another dataset (``mode="data"``)."""

    name = "wrong-layout"

    def __init__(self, mode: str = "layout") -> None:
        self.mode = mode

    def header(self, miner, header):
        if self.mode == "layout":
            lay = miner.layout
            other = Layout.from_shapes(lay.shapes(), lay.leaf_size // 2, lay.group_size)
            return replace(header, layout_hash=other.layout_hash())
        return replace(header, data_root=hashlib.sha256(b"another dataset").digest())


class WrongChallenge(Cheat):
    """Answers the challenge of a beacon value of its own choosing instead of the round's."""

    name = "wrong-challenge"

    def beacon(self, miner, ctx):
        return hashlib.sha256(b"pogo/adversary/ground-beacon" + ctx.beacon).digest()


class Frontrun(Cheat):
    """Copies a rival's update: polls for it while the submission window is open (the chain serves no
    candidate's update before the window closes), then submits the copy under its own key, first for the
    same round and then, refused, for the next one."""

    name = "frontrun"

    def __init__(self) -> None:
        self.copied: np.ndarray | None = None
        self.misses = 0

    def train(self, miner, steps, on_step):
        return []

    def update(self, miner, theta_prev, theta_next, packed):
        if self.copied is None:
            return theta_next, packed
        return apply_update(_host(theta_prev), self.copied, miner.layout), self.copied

    def submit(self, miner, made):
        from pogo_jax.chain.client import Refused

        if self.copied is not None:
            return super().submit(miner, made)
        v = miner.view
        key = (made.height, made.round)
        while True:  # wait for a rival's candidate, then try to read its update until we can
            v.refresh()
            r = v.state.round
            rival = next((c for c in r.candidates.values() if c.miner != miner.pub), None)
            if (r.height, r.round) != key:
                break
            if rival is not None:
                try:
                    self.copied = update_leaves(v.client.blob(rival.update_sha256), miner.layout)
                    break
                except Refused:
                    self.misses += 1
            time.sleep(0.2)
        if self.copied is None:
            raise Refused(409, "NOTHING_TO_COPY", "no rival candidate to copy in this round")
        theta = apply_update(miner.held_state(made.root_prev)[0], self.copied, miner.layout)

        h = replace(made.signed.body, root_next=root(state_digests(theta, miner.layout)),
                    root_q=update_root(self.copied))
        return miner.view.client.submit_candidate(sign_header(h, miner.key).to_bytes(), self.copied.tobytes())


class EpochGrief(Cheat):
    """Tries to start a fine-tuning epoch (to turn a rival's header into WRONG_DATA): signs an epoch record
    with its own key, then one that names the governance key; both are refused, and it has no candidate."""

    name = "epoch-grief"

    def train(self, miner, steps, on_step):
        return []

    def submit(self, miner, made):
        from pogo_jax.chain.client import Refused

        st = miner.view.state
        ref = st.round.data
        codes = []
        for gov in (miner.pub, st.genesis.governance_key):
            body = Epoch(st.genesis.chain_id, gov, len(st.epochs) + 1, ref, None)
            signed = seal(replace(body, governance_key=miner.pub), miner.key)
            rec = signed if gov == miner.pub else type(signed)(body, signed.signature)
            try:
                miner.view.client.submit_epoch(rec.to_bytes(), miner.ds.path, None)
                codes.append("ACCEPTED")
            except Refused as e:
                codes.append(e.code)
        raise Refused(403, "EPOCH_REFUSED", f"the chain refused both epoch records ({', '.join(codes)})")


class LightQuorum(Lazy):
    """The lazy block, on a round where only light verifiers and one full verifier attest."""

    name = "light-quorum"


class Grind(Tamper):
    """Tampers with one leaf, then grinds ``train.nonce`` within the window for a header whose challenge
    (under the last revealed beacon value, its best guess at the next) misses the tampered leaf."""

    name = "grind"

    def __init__(self, tries: int = 2000) -> None:
        super().__init__(fraction=0.0)
        self.tries = tries

    def header(self, miner, header):
        st = miner.view.state
        guess = st.beacon_value or st.genesis.beacon_anchor
        bad = {int(r) for r in self.rows}
        for nonce in range(self.tries):
            h = replace(header, train={**header.train, "nonce": nonce})
            if not bad & set(challenge_leaves(h.hash(), guess, h.n_leaves, st.rules.k_leaves)):
                self.found = nonce
                return h
        self.found = None
        return replace(header, train={**header.train, "nonce": self.tries})


class WithholdUpdate(Cheat):
    """Submits its header without the whole update: first half of the bytes, then none."""

    name = "withhold-update"

    def submit(self, miner, made):
        from pogo_jax.chain.client import Refused

        data = made.update_path.read_bytes()
        codes = []
        for part in (data[: len(data) // 2], b""):
            try:
                miner.view.client.submit_candidate(made.header_bytes, part)
                codes.append("ACCEPTED")
            except Refused as e:
                codes.append(e.code)
        raise Refused(409, "UPDATE_REFUSED", f"the chain refused the header without its update ({', '.join(codes)})")


class WithholdBundle(Cheat):
    """Submits a candidate and never publishes its bundle."""

    name = "withhold-bundle"

    def publish(self, miner, made, bundle):
        return None


class Stall(WithholdBundle):
    """Records a header and then never answers anything: the height must not stall."""

    name = "stall"


class SwapBundle(Tamper):
    """Publishes a bundle that is a fraud proof against it, then tries to replace the published bundle
    (after the first reject) with another to escape the proof."""

    name = "swap-bundle"

    def __init__(self) -> None:
        super().__init__(fraction=0.01)

    def publish(self, miner, made, bundle):
        from pogo_jax.chain.client import Refused

        out = miner.view.client.submit_bundle(bundle)
        hh = made.hash
        miner.view.wait(lambda st: st.find(hh) is None or any(v.body.verdict == "reject" for v in
                                                               st.find(hh)[1].votes.values())
                        or st.find(hh)[0].finalized_at is not None, 300, what="a reject")

        b = Bundle.from_bytes(bundle)
        other = replace(b, openings=b.openings[1:] + b.openings[:1]).signed(miner.key).to_bytes()
        try:
            miner.view.client.submit_bundle(other)
            self.swap = "ACCEPTED"
        except Refused as e:
            self.swap = e.code
        return out


class EquivocateMiner(Cheat):
    """Submits its candidate, then a second, different signed header for the same round."""

    name = "equivocate-miner"

    def submit(self, miner, made):
        from pogo_jax.chain.client import Refused

        out = super().submit(miner, made)
        h = replace(made.signed.body, train={**made.signed.body.train, "nonce": 1})
        try:
            miner.view.client.submit_candidate(sign_header(h, miner.key).to_bytes(), made.update_path)
        except Refused as e:
            self.second = e.code
        return out


class LazyReplay(Cheat):
    """Does not train; re-applies half of the last confirmed update (codes halved) to the tip."""

    name = "lazy-replay"

    def train(self, miner, steps, on_step):
        return []

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        exps, codes = upd.unpack_leaves(last_update(miner), lay.leaf_size, lay.group_size)
        q = upd.pack_leaves(exps, (codes // 2 + (codes < 0) * (codes % 2)).astype(np.int8))
        return apply_update(_host(theta_prev), q, lay), q


class OneStep(Cheat):
    """Trains one step instead of a block."""

    name = "one-step"

    def train(self, miner, steps, on_step):
        return miner.block.run_block(miner.ds, 1, on_step).train_losses


class EvalTrainer(MinerHooks):
    """Trains on the evaluation data of every earlier round as well: the training split and every sealed shard
    revealed so far (v2: the public evaluation split the chain judged on). Otherwise honest, self check
    included. v3 judges the round on a shard sealed until the submission window closes, so this buys no edge on
    the data it is judged on (tests/test_eval_trainer.py measures it over several blocks)."""

    name = "eval-trainer"

    def train(self, miner, steps, on_step):
        return miner.block.run_block(everything_readable(miner), steps, on_step).train_losses


def everything_readable(miner) -> object:  # noqa: ANN001 - a Dataset whose train split is every such byte
    """The training split plus every revealed shard of the round's dataset (the public held-out split stays the
    miner's own self-check data, as for the honest miner)."""
    from dataclasses import replace as dc_replace

    ds = miner.ds
    st = miner.view.state
    lo, hi = ds.train_range
    parts = [np.asarray(ds.tokens[lo:hi])]
    for r in st.history:
        if r.shard_key is not None and r.data.blob == st.round.data.blob:
            parts.append(ds.open_shard(r.shard, r.shard_key))
    tokens = np.concatenate(parts)
    return dc_replace(ds, tokens=tokens, train_range=(0, int(tokens.shape[0])),
                      eval_range=(int(tokens.shape[0]), int(tokens.shape[0])))


class Partner(MinerHooks):
    """The liar's partner: an honest but weaker miner (a quarter of the steps), whose block its colluding
    verifier (``liar-coalition``) vouches for while disputing the honest block. Skips the self check."""

    name = "liar-coalition"

    def train(self, miner, steps, on_step):
        return miner.block.run_block(miner.ds, max(1, steps // 4), on_step).train_losses

    def self_check(self, miner, improvement, delta):
        return True


class LiarVerifier(VerifierHooks):
    """A full verifier that measures honestly and then signs L(next) = L(prev) on every window ("no decrease"),
    to get an honest block rejected (v2: the miner lost half its stake; the liar nothing)."""

    name = "liar-verifier"

    def verdict(self, verifier, ctx, verdict):
        if verdict.tier != "full" or verdict.losses_prev is None:
            return verdict
        return restate(verifier, ctx, verdict, verdict.losses_prev)


def restate(verifier, ctx, verdict: Verdict, losses_next) -> Verdict:  # noqa: ANN001
    """``verdict`` with other L(next) values and the verdict those imply (the chain admits nothing else)."""
    from pogo_jax.spec.verdict import own_verdict

    r = ctx.rules
    reported = verifier.view.state.find(ctx.header_hash)[1].reported
    reason = own_verdict(verdict.losses_prev, losses_next, reported, r.delta, r.lcb_t, r.loss_tolerance)
    return replace(verdict, losses_next=tuple(float(x) for x in losses_next), reason=reason, accept=reason == "OK",
                   detail="restated by the liar")


class LiarCoalition(VerifierHooks):
    """Works for a partner miner (the participant named ``adversary-liar-coalition``): says the partner's block
    gains 0.2 nats more on every window than it does, and that the honest block gains nothing."""

    name = "liar-coalition"

    def verdict(self, verifier, ctx, verdict):
        if verdict.tier != "full" or verdict.losses_prev is None:
            return verdict
        st = verifier.view.state
        partner = next((k for k, p in st.participants.items() if p.name == "adversary-liar-coalition"), None)
        if ctx.header.body.miner_key == partner:
            return restate(verifier, ctx, verdict, [x - 0.2 for x in verdict.losses_next])
        return restate(verifier, ctx, verdict, verdict.losses_prev)


class CopyVerifier(VerifierHooks):
    """Does not want to measure: commits to a placeholder vote, waits for an honest verifier's revealed numbers
    and tries to reveal a copy of them instead (v2: a copied vote looked like work). The copy matches no
    commitment, and the placeholder is never revealed (its verifier_fee is lost)."""

    name = "copy-verifier"

    def __init__(self) -> None:
        self.tries: list[str] = []

    def verdict(self, verifier, ctx, verdict):
        if verdict.tier != "full" or verdict.losses_prev is None:
            return verdict
        m = len(verdict.losses_prev)
        return restate(verifier, ctx, replace(verdict, losses_prev=(1.0,) * m), (1.0,) * m)

    def reveal(self, verifier, header_hash, vote):
        from pogo_jax.spec.attestation import Attestation, read_signed_attestation, sign_attestation

        view = verifier.view
        view.wait(lambda st: st.find(header_hash) is None or any(
            v.body.tier == "full" and k != verifier.pub for k, v in st.find(header_hash)[1].votes.items())
            or st.find(header_hash)[0].finalized_at is not None, 600, what="another verifier's reveal")
        found = view.state.find(header_hash)
        other = next((v.body for k, v in found[1].votes.items() if v.body.tier == "full" and k != verifier.pub),
                     None) if found else None
        if other is None:
            return None
        mine = read_signed_attestation(vote).body
        copied = Attestation(**{**{f: getattr(mine, f) for f in ("version", "chain_id", "height", "round",
                                                                    "header_hash", "verifier_key", "evidence",
                                                                    "bundle_entry")},
                                "verdict": other.verdict, "tier": "full", "reason": other.reason,
                                "salt": os.urandom(32), "losses_prev": other.losses_prev,
                                "losses_next": other.losses_next})
        return sign_attestation(copied, verifier.key).to_bytes()


class FalseFraudClaim(VerifierHooks):
    """A verifier that signs an objective reject (BAD_PROOF) of every bundle, true or not."""

    name = "false-fraud-claim"

    def verdict(self, verifier, ctx, verdict):
        return Verdict(False, "light", "BAD_PROOF", "claimed without checking")


class XChainReplay(Cheat):
    """Replays records from a sister chain with the same name, keys and governance (v2: a header copied from
    there was equivocation evidence here, the honest miner lost its whole stake, and a governance Register of
    stake 10^6 was admitted). ``pogo demo`` puts the sister chain's signed records in this adversary's
    directory (``sister-records.json``: the honest miner's header and a registration, as read from that
    chain's public log); this miner posts them here and records what happens. It submits no candidate."""

    name = "xchain-replay"

    def train(self, miner, steps, on_step):
        return []

    def submit(self, miner, made):
        import json

        from pogo_jax.chain.client import Refused

        recs = json.loads((miner.work / "sister-records.json").read_text())
        self.codes = {}
        for what, post in (("header", lambda b: miner.view.client.submit_candidate(b, b"")),
                           ("header+update", lambda b: miner.view.client.submit_candidate(
                               b, bytes.fromhex(recs["update"]))),
                           ("register", miner.view.client.submit_register)):
            rec = recs["header" if what.startswith("header") else what].encode()
            try:
                self.codes[what] = post(rec).get("result", "ACCEPTED")
            except Refused as e:
                self.codes[what] = e.code
        miner.events({"event": "xchain", "codes": self.codes})
        raise Refused(409, "XCHAIN_REFUSED", f"every record of the sister chain was refused: {self.codes}")


ADVERSARIES: dict[str, Callable[..., MinerHooks]] = {c.name: c for c in (
    Tamper, InconsistentUpdate, Lazy, FakeLoss, LossUp, Replay, Swap, WrongLayout, WrongChallenge, Frontrun,
    EpochGrief, LightQuorum, Grind, WithholdUpdate, WithholdBundle, SwapBundle, Stall, EquivocateMiner, LazyReplay,
    OneStep, EvalTrainer, Partner, XChainReplay)}
VERIFIER_ADVERSARIES: dict[str, Callable[..., VerifierHooks]] = {c.name: c for c in (
    FalseFraudClaim, LiarVerifier, LiarCoalition, CopyVerifier)}
COALITIONS = {"liar-coalition"}  # a miner and a verifier of the same name work together
ALL = [*dict.fromkeys([*ADVERSARIES, *VERIFIER_ADVERSARIES])]


@dataclass(frozen=True)
class Expected:
    """Which rule stops an adversary and where. ``stage``: "submit" (the chain refuses or records
    evidence at once), "light" (a fraud proof the finalizer re-checks), "full" (full-tier votes),
    "withheld" (no bundle by the deadline), "finalize" (competition or votes). ``outcome`` is the
    attacker's candidate status (or "refused" when it never became one)."""

    rule: str
    stage: str
    outcome: str
    fair: bool = False  # allowed behaviour under v3: a reward for verified improvement is no attack success


EXPECTED: dict[str, Expected] = {
    "tamper": Expected("light check re-checked by the finalizer", "light", "fraud"),
    "inconsistent-update": Expected("light check re-checked by the finalizer", "light", "fraud"),
    "lazy": Expected("reported means held to the chain's median measurement: false loss slashed", "full",
                     "false-loss"),
    "fake-loss": Expected("reported means within the relative tolerance of the chain's: false loss slashed", "full",
                          "false-loss"),
    "loss-up": Expected("per-window medians: no decrease; reported means that claim one are slashed", "full",
                        "false-loss"),
    "replay": Expected("a recorded root_q is a replay: signer slashed", "submit", "evidence"),
    "swap": Expected("light check (audit paths)", "light", "fraud"),
    "wrong-layout": Expected("candidate must commit to the chain's layout", "submit", "refused"),
    "wrong-challenge": Expected("leaves from the round's beacon", "light", "fraud"),
    "frontrun": Expected("updates hidden until the submission window closes; replay slashed", "submit", "evidence"),
    "epoch-grief": Expected("epochs only by the governance key, from the next round", "submit", "refused"),
    "light-quorum": Expected("light accepts never count; min_full revealed full votes", "finalize", "undecided"),
    "grind": Expected("beacon secret only in the beacon service; one value per round", "light", "fraud"),
    "withhold-update": Expected("data availability at commit (update must hash to root_q)", "submit", "refused"),
    "withhold-bundle": Expected("no bundle by the deadline: withheld, stake cut", "withheld", "withheld"),
    "swap-bundle": Expected("bundles immutable; attestations name the bundle hash", "light", "fraud"),
    "stall": Expected("proof window: the round goes on without it", "withheld", "withheld"),
    "equivocate-miner": Expected("a second header in a round slashes its signer", "submit", "void"),
    "lazy-replay": Expected("the best verified improvement wins; reward linear in it; a bound under delta pays a fee",
                            "finalize", "weak"),
    "one-step": Expected("the best verified improvement wins; reward linear in it; a bound under delta pays a fee",
                         "finalize", "weak"),
    "false-fraud-claim": Expected("objective claims re-checked; a false one slashes its signer", "finalize",
                                  "confirmed"),
    "eval-trainer": Expected("evaluation data sealed until the submission window closes: no edge on it",
                             "finalize", "competes", fair=True),
    "liar-verifier": Expected("per-window numbers; an outlier among three full votes is slashed and ignored",
                              "finalize", "confirmed"),
    "liar-coalition": Expected("outliers slashed; a disputed candidate leaves the round without a winner",
                               "finalize", "valid"),
    "copy-verifier": Expected("votes committed before revealed; an unrevealed commitment forfeits its fee",
                              "finalize", "confirmed"),
    "xchain-replay": Expected("chain id = genesis hash in every signature: another chain's records are malformed",
                              "submit", "refused"),
}


def make_adversary(name: str, **options) -> MinerHooks:  # noqa: ANN003
    if name not in ADVERSARIES:
        raise UserError(f"unknown miner adversary {name!r}; choose one of: {', '.join(ALL)}")
    return ADVERSARIES[name](**options)


def make_verifier_adversary(name: str) -> VerifierHooks:
    if name not in VERIFIER_ADVERSARIES:
        raise UserError(f"unknown verifier adversary {name!r}; choose one of: {', '.join(VERIFIER_ADVERSARIES)}")
    return VERIFIER_ADVERSARIES[name]()

