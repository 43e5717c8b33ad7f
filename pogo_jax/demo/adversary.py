"""The adversary suite: named cheating miners (and verifiers), each a small deviation from the honest role.

Every cheat is a ``MinerHooks`` (or ``VerifierHooks``) subclass that overrides one or two of the
honest role's choices and nothing else, so a cheating block runs through the same training,
quantization, commitment, proving and verification code as an honest one. ``pogo demo --adversary
NAME`` runs one in its own process next to the honest roles; ``EXPECTED`` says which rule stops it and
where (docs/adversaries.md explains each row). No jax at import.
"""

from __future__ import annotations

import hashlib
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
        probe = list(range(min(8, miner.view.context().n_windows)))
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


class FalseFraudClaim(VerifierHooks):
    """A verifier that signs an objective reject (BAD_PROOF) of every bundle, true or not."""

    name = "false-fraud-claim"

    def verdict(self, verifier, ctx, verdict):
        return Verdict(False, "light", "BAD_PROOF", "claimed without checking")


ADVERSARIES: dict[str, Callable[..., MinerHooks]] = {c.name: c for c in (
    Tamper, InconsistentUpdate, Lazy, FakeLoss, LossUp, Replay, Swap, WrongLayout, WrongChallenge, Frontrun,
    EpochGrief, LightQuorum, Grind, WithholdUpdate, WithholdBundle, SwapBundle, Stall, EquivocateMiner, LazyReplay,
    OneStep)}
VERIFIER_ADVERSARIES: dict[str, Callable[..., VerifierHooks]] = {FalseFraudClaim.name: FalseFraudClaim}
ALL = [*ADVERSARIES, *VERIFIER_ADVERSARIES]


@dataclass(frozen=True)
class Expected:
    """Which rule stops an adversary and where. ``stage``: "submit" (the chain refuses or records
    evidence at once), "light" (a fraud proof the finalizer re-checks), "full" (full-tier votes),
    "withheld" (no bundle by the deadline), "finalize" (competition or votes). ``outcome`` is the
    attacker's candidate status (or "refused" when it never became one)."""

    rule: str
    stage: str
    outcome: str


EXPECTED: dict[str, Expected] = {
    "tamper": Expected("light check re-checked by the finalizer", "light", "fraud"),
    "inconsistent-update": Expected("light check re-checked by the finalizer", "light", "fraud"),
    "lazy": Expected("full tier: no decrease / reported losses", "full", "rejected"),
    "fake-loss": Expected("full tier: reported losses within the relative tolerance", "full", "rejected"),
    "loss-up": Expected("full tier: L(next) <= L(prev) - delta", "full", "rejected"),
    "replay": Expected("a recorded root_q is a replay: signer slashed", "submit", "evidence"),
    "swap": Expected("light check (audit paths)", "light", "fraud"),
    "wrong-layout": Expected("candidate must commit to the chain's layout", "submit", "refused"),
    "wrong-challenge": Expected("leaves from the round's beacon", "light", "fraud"),
    "frontrun": Expected("updates hidden until the submission window closes; replay slashed", "submit", "evidence"),
    "epoch-grief": Expected("epochs only by the governance key, from the next round", "submit", "refused"),
    "light-quorum": Expected("light accepts never count; min_full full votes", "finalize", "undecided"),
    "grind": Expected("beacon secret only in the beacon service; one value per round", "light", "fraud"),
    "withhold-update": Expected("data availability at commit (update must hash to root_q)", "submit", "refused"),
    "withhold-bundle": Expected("no bundle by the deadline: withheld, stake cut", "withheld", "withheld"),
    "swap-bundle": Expected("bundles immutable; attestations name the bundle hash", "light", "fraud"),
    "stall": Expected("proof window: the round goes on without it", "withheld", "withheld"),
    "equivocate-miner": Expected("a second header in a round slashes its signer", "submit", "void"),
    "lazy-replay": Expected("the best verified improvement wins; reward by improvement", "finalize", "valid"),
    "one-step": Expected("the best verified improvement wins; reward by improvement", "finalize", "valid"),
    "false-fraud-claim": Expected("objective claims re-checked; a false one slashes its signer", "finalize",
                                  "confirmed"),
}


def make_adversary(name: str, **options) -> MinerHooks:  # noqa: ANN003
    if name not in ADVERSARIES:
        raise UserError(f"unknown miner adversary {name!r}; choose one of: {', '.join(ALL)}")
    return ADVERSARIES[name](**options)


def make_verifier_adversary(name: str) -> VerifierHooks:
    if name not in VERIFIER_ADVERSARIES:
        raise UserError(f"unknown verifier adversary {name!r}; choose one of: {', '.join(VERIFIER_ADVERSARIES)}")
    return VERIFIER_ADVERSARIES[name]()
