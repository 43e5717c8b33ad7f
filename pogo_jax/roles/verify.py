"""The verifier role: ``verify(bundle, ctx, tier)`` decides, ``Verifier`` fetches, signs and posts.

Everything comes from the chain through the role's own ``ChainView``: the context (never the
bundle's word for the beacon, the windows or the window count), the bundle bytes by the hash the
log recorded (which the attestation then names as ``evidence``), and for the full tier the stored
update, the recorded dataset (whose sealed shard the released key opens) and the verifier's own
rebuilt ``theta_prev``. The light path imports no jax: the full tier is loaded only when a verifier
runs it.

A light verdict is posted at once. A full vote (PROTOCOL 16) is signed with fresh salt, kept in
``WORK/votes/<header hash>.json`` before anything is posted (a verifier killed after committing still
reveals after a restart), committed by its hash while the commit window is open, and revealed once the
commit window has closed: nobody can copy its numbers, and it cannot change them after seeing others'.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pogo_jax.chain.view import ChainView
from pogo_jax.chain.witness import Witness
from pogo_jax.errors import NodeFault, UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.roles.data import chain_dataset
from pogo_jax.roles.full import verify_full
from pogo_jax.spec.attestation import ATTEST_VERSION, Attestation, read_signed_attestation, sign_attestation
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import PrivateKey, public_bytes
from pogo_jax.spec.light import verify_light
from pogo_jax.spec.records import VoteCommit


@dataclass(frozen=True)
class Verdict:
    accept: bool
    tier: str
    reason: str
    detail: str
    losses_prev: tuple[float, ...] | None = None
    losses_next: tuple[float, ...] | None = None
    timings: tuple[tuple[str, float], ...] = ()

    @property
    def loss_prev(self) -> float | None:
        """The mean of the per-window losses of theta_prev (for display)."""
        return None if self.losses_prev is None else float(sum(self.losses_prev) / len(self.losses_prev))

    @property
    def loss_next(self) -> float | None:
        return None if self.losses_next is None else float(sum(self.losses_next) / len(self.losses_next))


class FullInputs:
    """What the full tier needs besides the bundle, fetched lazily from the chain by hash."""

    def __init__(self, view: ChainView, workdir: Path, evaluator_for: Callable[[], object]) -> None:
        self.view, self.workdir, self.evaluator_for = view, workdir, evaluator_for
        self._ds: dict[bytes, object] = {}

    def theta_prev(self, ctx: BlockContext):  # noqa: ANN201 - StateCache
        return self.view.confirmed(ctx.height - 1)

    def update(self, ctx: BlockContext) -> bytes:
        return self.view.fetch(ctx.update_sha256)

    def dataset(self, ctx: BlockContext):  # noqa: ANN201 - Dataset
        return self.dataset_of(ctx.data)

    def dataset_of(self, ref):  # noqa: ANN001, ANN201 - DataRef -> Dataset, fetched and checked once
        if ref.blob not in self._ds:
            self._ds = {ref.blob: chain_dataset(self.view.client, ref, self.workdir)}
        return self._ds[ref.blob]


def verify(bundle: Bundle, ctx: BlockContext, tier: str, full: FullInputs | None = None) -> Verdict:
    """Light checks first (cost independent of model size); the full tier only on a light accept."""
    t0 = time.perf_counter()
    light = verify_light(bundle, ctx)
    timings = [("light", time.perf_counter() - t0)]
    if not light.accept or tier == "light":
        return Verdict(light.accept, "light", light.reason, light.detail, timings=tuple(timings))
    if full is None:
        raise UserError("the full tier needs the chain's update, dataset and confirmed state")

    t0 = time.perf_counter()
    res = verify_full(bundle, ctx, full.theta_prev(ctx), full.update(ctx), full.dataset(ctx), full.evaluator_for())
    timings.append(("full", time.perf_counter() - t0))
    timings += list(res.timings.items())  # its parts: rebuild (update, theta_next, roots) and loss
    return Verdict(res.accept, "full", res.reason, res.detail, res.losses_prev, res.losses_next, tuple(timings))


class VerifierHooks:
    """The honest verifier's choices; ``pogo_jax.demo.adversary`` overrides them for cheating verifiers."""

    name = "honest"

    def verdict(self, verifier: Verifier, ctx: BlockContext, verdict: Verdict) -> Verdict:
        """The verdict to sign (a full one is committed now and revealed later)."""
        return verdict

    def reveal(self, verifier: Verifier, header_hash: bytes, vote: bytes) -> bytes | None:
        """The signed full vote to reveal for a commitment (None: reveal nothing)."""
        return vote


class Verifier:
    def __init__(self, client, key: PrivateKey, workdir: str | Path, tier: str = "light",  # noqa: ANN001
                 hooks: VerifierHooks | None = None, view: ChainView | None = None) -> None:
        if tier not in ("light", "full"):
            raise UserError("tier is 'light' or 'full'")
        self.client, self.key, self.tier = client, key, tier
        self.pub = public_bytes(key)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.view = view or ChainView(client)
        if self.view.witness is None:  # receipts and the last head seen, in this role's directory
            self.view.attach(Witness(self.workdir / "witness"))
        p = self.view.state.participants.get(self.pub)
        if p is None or p.role != "verifier":
            raise UserError(f"key {self.pub.hex()[:16]}... is not a registered verifier of chain "
                            f"{self.view.state.genesis.chain_id!r}")
        self.hooks = hooks or VerifierHooks()
        self._evaluator = None
        self.full_inputs = FullInputs(self.view, self.workdir, self.evaluator) if tier == "full" else None
        if self.full_inputs is not None:  # it holds the dataset: re-derive the node's word on each sealed shard
            self.view.dataset = self.full_inputs.dataset_of

    def evaluator(self):  # noqa: ANN201 - train.evaluate.Evaluator (jax: only for the full tier)
        if self._evaluator is None:
            from pogo_jax.roles.chaincfg import chain_config
            from pogo_jax.train.evaluate import Evaluator

            self._evaluator = Evaluator(chain_config(self.view.state.genesis)[0])
        return self._evaluator

    def pending(self) -> list[bytes]:
        """Candidates of the open round with a stored bundle that this verifier has neither voted nor committed
        on, while votes can still be cast."""
        r = self.view.state.round
        if r.phase not in ("proof", "commit"):
            return []
        return [h for h, c in r.candidates.items()
                if c.bundle_sha256 is not None and self.pub not in c.votes and self.pub not in c.commits]

    def unrevealed(self) -> list[bytes]:
        """Candidates of the open round, in its reveal window, whose commitment of ours is not revealed yet."""
        r = self.view.state.round
        if r.phase != "reveal":
            return []
        return [h for h, c in r.candidates.items() if self.pub in c.commits and self.pub not in c.votes]

    def check(self, header_hash: bytes) -> tuple[Verdict, BlockContext]:
        ctx = self.view.context(header_hash)
        data = self.view.fetch(ctx.bundle_sha256)  # checked against the recorded hash
        bundle = Bundle.from_bytes(data)
        reported = self.view.state.find(header_hash)[1].reported
        if reported != (bundle.loss_prev, bundle.loss_next):  # what the chain will hold a full accept to
            raise NodeFault(f"the node's note of candidate {header_hash.hex()[:16]}... names losses {reported}, "
                            f"its stored bundle reports {(bundle.loss_prev, bundle.loss_next)}: the node is faulty")
        verdict = verify(bundle, ctx, self.tier, self.full_inputs)
        return self.hooks.verdict(self, ctx, verdict), ctx

    def attestation(self, ctx: BlockContext, v: Verdict) -> bytes:
        a = Attestation(version=ATTEST_VERSION, chain_id=ctx.chain_id, height=ctx.height, round=ctx.round,
                        header_hash=ctx.header_hash, verifier_key=self.pub, verdict="accept" if v.accept else "reject",
                        tier=v.tier, reason=v.reason, evidence=ctx.bundle_sha256,
                        salt=os.urandom(32) if v.tier == "full" else None, losses_prev=v.losses_prev,
                        losses_next=v.losses_next, bundle_entry=ctx.bundle_entry)
        return sign_attestation(a, self.key).to_bytes()

    def _vote_file(self, header_hash: bytes) -> Path:
        return self.workdir / "votes" / f"{header_hash.hex()}.json"

    def commit_record(self, ctx: BlockContext, vote: bytes) -> bytes:
        body = VoteCommit(ctx.chain_id, ctx.height, ctx.round, ctx.header_hash, self.pub,
                          read_signed_attestation(vote).hash)
        return seal(body, self.key).to_bytes()

    def attest(self, header_hash: bytes) -> tuple[Verdict, dict]:
        """Check a candidate and cast the vote: a light verdict posted at once, a full one kept and committed."""
        v, ctx = self.check(header_hash)
        vote = self.attestation(ctx, v)
        if v.tier != "full":
            return v, self.client.submit_attestation(vote)
        atomic_write_bytes(self._vote_file(header_hash), vote)  # before the commitment: it must be revealable
        return v, self.client.submit_commit(self.commit_record(ctx, vote))

    def reveal(self, header_hash: bytes) -> dict:
        """Reveal the full vote this verifier committed to on ``header_hash`` (kept in its work directory)."""
        f = self._vote_file(header_hash)
        if not f.is_file():
            raise UserError(f"{f} is missing: the vote committed on {header_hash.hex()[:16]}... cannot be revealed "
                            "(its verifier_fee will be forfeited)")
        vote = self.hooks.reveal(self, header_hash, f.read_bytes())
        if vote is None:
            return {"not_revealed": True}
        return self.client.submit_attestation(vote)

    def step(self, tried: set[bytes], on_verdict: Callable[[bytes, Verdict, dict], None] | None = None) -> None:
        """One pass: vote on new candidates, reveal due commitments; refusals are reported, never fatal."""
        from pogo_jax.chain.client import Refused

        self.view.refresh()
        for hh in self.pending():
            if hh in tried:
                continue
            tried.add(hh)
            try:
                v, acc = self.attest(hh)
            except Refused as e:
                v, acc = Verdict(False, self.tier, e.code, e.detail), {"refused": e.code}
            except NodeFault as e:  # not the miner's doing: sign nothing about this candidate
                v, acc = Verdict(False, self.tier, "NODE_FAULT", str(e)), {"not_attested": "NODE_FAULT"}
            if on_verdict:
                on_verdict(hh, v, acc)
        for hh in self.unrevealed():
            if (b"reveal", hh) in tried:
                continue
            tried.add((b"reveal", hh))
            try:
                acc = self.reveal(hh)
            except Refused as e:
                acc = {"refused": e.code, "detail": e.detail}
            if on_verdict:
                on_verdict(hh, Verdict(True, "full", "REVEALED", "the committed vote, revealed"), acc)

    def watch(self, until: Callable[[], bool] = lambda: False, poll: float = 0.25,
              on_verdict: Callable[[bytes, Verdict, dict], None] | None = None) -> None:
        """Vote on every new candidate and reveal every commitment when due, until ``until()``."""
        tried: set = set()
        while not until():
            self.step(tried, on_verdict)
            time.sleep(poll)
