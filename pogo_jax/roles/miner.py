"""The miner role: train a block from the chain's confirmed tip, submit it with its whole update, answer
the round's challenge with a signed bundle, and follow the outcome.

Everything it needs from others comes through its own ``ChainView`` (the tip, the round, the beacon,
the windows, the dataset by hash); everything it keeps is in its own work directory, written before
it acts on it, so a miner killed at any point resumes without ever signing a second, different
header for a round (which would be equivocation):

    WORK/trainer/                 orbax CheckpointManager: params, optimizer state, step
    WORK/quant-<step>.npz         the block quantizer's state (residual, key) for that trainer step
    WORK/states/<root>.npz        committed states it holds, by root, with ``<root>.digests`` (32-byte leaf
                                  hashes): a state whose root is known is never hashed again
    WORK/candidates/<h>-<a>/      the candidate of round (h, a): header.json, update.qupd, its leaf hashes
                                  update.digests.npy, meta.json (written last: the candidate is complete)
    WORK/data/<sha>.pogodata      the chain's dataset, fetched by hash and checked once

Where a miner could deviate from the protocol, ``Miner`` calls a ``MinerHooks`` method; the defaults
are the honest behaviour and ``pogo_jax.demo.adversary`` overrides them, one named cheat each, so every
cheat runs through this same code and differs from it only where it says.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pogo_jax.chain.view import ChainView
from pogo_jax.chain.witness import Witness
from pogo_jax.commit import merkle
from pogo_jax.commit.hasher import param_leaf_hashes
from pogo_jax.config import Config
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.roles.chaincfg import chain_config
from pogo_jax.spec import merkle as mh
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.challenge import challenge_leaves
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.header import Header, read_signed_header, sign_header
from pogo_jax.spec.keys import PrivateKey, public_bytes
from pogo_jax.spec.state import State, load_state, save_state, update_size

Event = Callable[[dict], None]


class MinerHooks:
    """The honest miner's choices at each point where a cheating miner could deviate."""

    name = "honest"

    def train(self, miner: Miner, steps: int, on_step) -> list[float]:  # noqa: ANN001
        """Run the block's optimizer steps from the tip; returns the training losses."""
        return miner.block.run_block(miner.ds, steps, on_step).train_losses

    def update(self, miner: Miner, theta_prev: State, theta_next: State,
               packed: np.ndarray) -> tuple[State, np.ndarray]:
        """What is committed as theta_next and published as the 4-bit update (wire leaves)."""
        return theta_next, packed

    def self_check(self, miner: Miner, improvement: Callable[[], float], delta: float) -> bool:
        """Submit only a block that lowers the miner's own estimate of the loss by ``delta`` with room to
        spare: the chain slashes a block under ``delta`` as it slashes a lazy one, honest or not."""
        return miner.cfg.miner.self_check_windows == 0 or improvement() >= delta * miner.cfg.miner.self_check_margin

    def header(self, miner: Miner, header: Header) -> Header:
        return header

    def submit(self, miner: Miner, made: Made) -> dict:
        """Hand the signed header and the whole update to the chain."""
        return miner.view.client.submit_candidate(made.header_bytes, made.update_path)

    def beacon(self, miner: Miner, ctx: BlockContext) -> bytes:
        """The beacon value the miner derives its challenge from (the bundle always names the round's)."""
        return ctx.beacon

    def windows(self, miner: Miner, ctx: BlockContext) -> tuple[int, ...]:
        return ctx.windows

    def openings(self, miner: Miner, openings: tuple[LeafOpening, ...]) -> tuple[LeafOpening, ...]:
        return openings

    def losses(self, miner: Miner, measure: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        """Reported (loss_prev, loss_next); ``measure()`` evaluates both on the round's windows."""
        return measure()

    def publish(self, miner: Miner, made: Made, bundle: bytes) -> dict | None:
        """Send the bundle (None: send nothing)."""
        return miner.view.client.submit_bundle(bundle)


HONEST = MinerHooks()
UPDATE_DIGESTS = "update.digests.npy"  # beside update.qupd: its leaf hashes, kept from the commit


class Abstained(UserError):
    """The miner's own estimate says its block would not lower the loss by delta: nothing was submitted."""


@dataclass
class Made:
    """A candidate as its miner keeps it."""

    height: int
    round: int
    header_bytes: bytes
    update_path: Path
    root_prev: bytes
    root_next: bytes
    train_losses: list[float] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    @property
    def signed(self):  # noqa: ANN201
        return read_signed_header(self.header_bytes)

    @property
    def hash(self) -> bytes:
        return self.signed.hash


class Miner:
    def __init__(self, client, key: PrivateKey, workdir: str | Path, cfg: Config | None = None,  # noqa: ANN001
                 hooks: MinerHooks = HONEST, events: Event | None = None, view: ChainView | None = None) -> None:
        self.view = view or ChainView(client)
        if self.view.witness is None:  # receipts and the last head seen, in this role's directory
            self.view.attach(Witness(Path(workdir) / "witness"))
        self.key, self.pub, self.hooks = key, public_bytes(key), hooks
        st = self.view.state
        p = st.participants.get(self.pub)
        if p is None or p.role != "miner":
            raise UserError(f"key {self.pub.hex()[:16]}... is not a registered miner of chain {st.genesis.chain_id!r}")
        cfg, self.notes = chain_config(st.genesis, cfg)
        self.cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=miner_seed(cfg.train.seed,
                                                                                                self.pub)))
        self.layout = st.genesis.layout
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.events = events or (lambda e: None)
        self.view.dataset = self.dataset_of  # the node's word on each round's sealed shard is re-derived
        self._block = None
        self._evaluator = None
        self._ds = None
        self._ds_blob = b""
        self.theta_root = b""  # root of the committed state the trainer continues from
        self._estimate = float("nan")  # the last self-check's estimated improvement (nats)

    # ------------------------------------------------------------------------ lazily built (jax)
    @property
    def block(self):  # noqa: ANN201 - commit.block.BlockMiner
        if self._block is None:
            from pogo_jax.commit.block import BlockMiner, layout_of

            if layout_of(self.cfg).layout_hash() != self.layout.layout_hash():
                raise UserError("this pogo lays the chain's model out differently from its genesis record")
            self._block = BlockMiner(self.cfg)
            self._resume_trainer()
        return self._block

    @property
    def evaluator(self):  # noqa: ANN201
        if self._evaluator is None:
            from pogo_jax.train.evaluate import Evaluator

            self._evaluator = Evaluator(self.cfg)
        return self._evaluator

    @property
    def ds(self):  # noqa: ANN201 - the dataset of the open round
        return self.dataset_of(self.view.state.round.data)

    def dataset_of(self, ref):  # noqa: ANN001, ANN201 - DataRef -> spec.dataset.Dataset
        """A recorded dataset, fetched into the work directory and checked once (kept while it is the round's)."""
        if self._ds is None or self._ds_blob != ref.blob:
            from pogo_jax.roles.data import chain_dataset

            self._ds, self._ds_blob = chain_dataset(self.view.client, ref, self.work), ref.blob
        return self._ds

    def prepare(self) -> None:
        """Build the trainer and the evaluator and fetch the dataset now (compiles happen on first use)."""
        _ = self.block, self.evaluator, self.ds

    # ------------------------------------------------------------------------ private state
    def _state_files(self, root: bytes) -> tuple[Path, Path]:
        d = self.work / "states"
        return d / f"{root.hex()}.npz", d / f"{root.hex()}.digests"

    def keep_state(self, arrays: State, digests: list[bytes]) -> bytes:
        root = mh.root(digests)
        npz, dg = self._state_files(root)
        save_state(npz, arrays)
        atomic_write_bytes(dg, b"".join(digests))
        return root

    def held_state(self, root: bytes) -> tuple[State, list[bytes]] | None:
        npz, dg = self._state_files(root)
        if not (npz.is_file() and dg.is_file()):
            return None
        raw = dg.read_bytes()
        digests = [raw[i:i + 32] for i in range(0, len(raw), 32)]
        if len(digests) != self.layout.n_leaves or mh.root(digests) != root:
            return None
        return load_state(npz, self.layout), digests

    def tip_state(self, ctx: BlockContext) -> tuple[State, list[bytes]]:
        """The round's theta_prev: our own copy if we hold its root, else rebuilt from the chain."""
        held = self.held_state(ctx.root_prev)
        if held is not None:
            return held
        sc = self.view.confirmed(ctx.height - 1)
        self.keep_state(sc.arrays, sc.digests)
        return sc.arrays, sc.digests

    def _trainer_dir(self) -> Path:
        return self.work / "trainer"

    def _save_trainer(self) -> None:
        from pogo_jax.train import checkpoint

        b = self._block
        mngr = checkpoint.open_manager(self._trainer_dir(), 2)
        if b.trainer.step in mngr.all_steps():  # a block of no steps (a copied or re-applied update) saves at
            mngr.delete(b.trainer.step)         # a step already saved: a crash now resumes from the one before
        b.trainer.save(mngr, {"theta_root": self.theta_root.hex()})
        mngr.wait_until_finished()
        mngr.close()
        q = self.work / f"quant-{b.trainer.step}.npz"
        with open(q.with_suffix(".tmp"), "wb") as f:
            np.savez(f, **b.quantizer.save(b.state))
        q.with_suffix(".tmp").replace(q)
        for old in self.work.glob("quant-*.npz"):
            if old != q:
                old.unlink(missing_ok=True)

    def _resume_trainer(self) -> None:
        from pogo_jax.train import checkpoint

        d = self._trainer_dir()
        if not d.is_dir():
            return
        mngr = checkpoint.open_manager(d, 2, create=False)
        if checkpoint.latest_step(mngr) is None:
            return
        b = self._block
        meta = b.trainer.load(mngr)
        q = self.work / f"quant-{b.trainer.step}.npz"
        if q.is_file():
            with np.load(q, allow_pickle=False) as z:
                b.state = b.quantizer.load({k: z[k] for k in z.files}, b.trainer.params())
        import jax.numpy as jnp

        b.theta = {k: jnp.copy(v) for k, v in b.trainer.params().items()}
        self.theta_root = bytes.fromhex(meta.get("theta_root", ""))

    def _cand_dir(self, height: int, rnd: int) -> Path:
        return self.work / "candidates" / f"{height:06d}-{rnd:04d}"

    def saved_candidate(self, height: int, rnd: int) -> Made | None:
        d = self._cand_dir(height, rnd)
        if not (d / "meta.json").is_file():
            return None
        meta = json.loads((d / "meta.json").read_text())
        return Made(height, rnd, (d / "header.json").read_bytes(), d / "update.qupd",
                    bytes.fromhex(meta["root_prev"]), bytes.fromhex(meta["root_next"]), meta.get("train_losses", []),
                    meta.get("seconds", {}))

    # ------------------------------------------------------------------------ one round
    def make_candidate(self, ctx: BlockContext, on_step=None) -> Made:  # noqa: ANN001
        """Train a block from the round's tip and keep everything needed to prove it (not yet submitted)."""
        from pogo_jax.commit import quant

        t: dict[str, float] = {}
        t0 = time.perf_counter()
        arrays, _ = self.tip_state(ctx)
        b = self.block
        if self.theta_root != ctx.root_prev:
            b.set_theta(arrays)
            self.theta_root = ctx.root_prev
        ds = self.ds
        t["load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mc = self.cfg.miner
        steps, delta, extend = mc.block_steps, float(ctx.rules.delta), mc.short_block == "extend"
        tries = max(1, mc.max_tries)
        tip_theta, tip_quant = b.theta, b.state  # the block is measured from the tip whatever it grows to
        losses: list[float] = []
        for attempt in range(tries):
            if attempt:  # the last try fell short: grow the block, or train a new one from the tip
                self.events({"event": "extending" if extend else "retraining", "height": ctx.height,
                             "round": ctx.round, "attempt": attempt + 1, "estimated_improvement": self._estimate})
                if extend:  # keep training from where the last try stopped; quantize the whole from the tip
                    b.theta, b.state = tip_theta, tip_quant
                else:
                    b.set_theta(arrays)
            losses = (losses if extend else []) + list(self.hooks.train(self, steps, on_step))
            t["train"] = t.get("train", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            q = quant.last_codes(b.state)
            packed = quant.pack_update(q, self.layout)
            theta_next = {k: np.asarray(v) for k, v in b.theta.items()}
            out_theta, packed = self.hooks.update(self, arrays, theta_next, packed)
            t["quantize"] = t.get("quantize", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            estimate = functools.partial(self._estimate_improvement, ctx, arrays, out_theta, attempt)
            ok = self.hooks.self_check(self, estimate, delta)
            t["self_check"] = t.get("self_check", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            if ok:
                break
        else:
            self.theta_root = b""  # the trainer holds a rejected block: reset to the tip next time
            tried = (f"a block extended to {tries * steps} steps" if extend
                     else f"{tries} block(s) of {steps} steps")
            raise Abstained(f"{tried} fell short of {delta * mc.self_check_margin:.4f} nats "
                            f"({mc.self_check_margin:g} x delta) on {mc.self_check_windows} evaluation windows "
                            f"(the last: {self._estimate:.4f}): not submitting a block the chain would slash")
        steps = steps * (attempt + 1) if extend else steps
        del ds
        digests = state_digests(b.theta if out_theta is theta_next else out_theta, self.layout)
        if out_theta is not theta_next:  # a hook changed what is committed: the trainer continues from that
            b.set_theta(out_theta, reset_residual=False)
        root_next = mh.root(digests)
        packed = np.ascontiguousarray(packed)
        cq = merkle.commit_leaves(packed, mh.TAG_QUPD, self.layout)  # hashed once, kept with the candidate
        root_q = cq.root
        t["commit"] = time.perf_counter() - t0
        r = self.view.state.round
        header = Header(
            version=3, chain_id=ctx.chain_id, height=ctx.height, round=ctx.round, parent_hash=ctx.parent_hash,
            miner_key=self.pub, layout_hash=self.layout.layout_hash(), data_root=r.data.data_root,
            root_prev=ctx.root_prev, root_next=root_next, root_q=root_q, leaf_size=self.layout.leaf_size,
            group_size=self.layout.group_size, n_leaves=self.layout.n_leaves,
            train={"steps": steps, "step_start": b.trainer.step - steps, "tokens": steps * self.cfg.train.batch_size
                   * self.cfg.model.seq_len, "optimizer": "adamw", "quant_mode": self.cfg.miner.quant_mode,
                   "config_hash": self.cfg.config_hash()})
        signed = sign_header(self.hooks.header(self, header), self.key)
        t0 = time.perf_counter()
        self.keep_state(out_theta, digests)
        self.theta_root = root_next
        self._save_trainer()
        d = self._cand_dir(ctx.height, ctx.round)
        atomic_write_bytes(d / "update.qupd", packed.tobytes())
        cq.save(d / UPDATE_DIGESTS)
        atomic_write_bytes(d / "header.json", signed.to_bytes())
        made = Made(ctx.height, ctx.round, signed.to_bytes(), d / "update.qupd", ctx.root_prev, root_next,
                    [float(x) for x in losses], {k: round(v, 3) for k, v in t.items()})
        t["keep"] = time.perf_counter() - t0
        made.seconds = {k: round(v, 3) for k, v in t.items()}
        atomic_write_bytes(d / "meta.json", json.dumps({
            "root_prev": ctx.root_prev.hex(), "root_next": root_next.hex(), "header_hash": signed.hash.hex(),
            "train_losses": made.train_losses, "seconds": made.seconds}).encode())
        return made

    def _estimate_improvement(self, ctx: BlockContext, theta_prev: State, theta_next: State, attempt: int) -> float:
        """L(prev) - L(next) on windows of the miner's own choosing from the dataset's public held-out split,
        which it does not train on (the round's windows are in a shard sealed until submission closes),
        fresh for every attempt so a retry is not judged on the windows it was chosen for."""
        from pogo_jax.train.data import n_eval_windows

        n = n_eval_windows(self.ds, self.cfg.model.seq_len)
        w = min(self.cfg.miner.self_check_windows, n)
        seed = hashlib.sha256(b"pogo/miner-self-check/v1" + self.pub + ctx.parent_hash +
                              struct.pack("<III", ctx.height, ctx.round, attempt)).digest()
        windows = np.random.default_rng(int.from_bytes(seed[:8], "little")).choice(n, size=w, replace=False)
        ds = self.ds
        self._estimate = self.evaluator.loss(theta_prev, ds, windows) - self.evaluator.loss(theta_next, ds, windows)
        return self._estimate

    def _state_commitment(self, digests: list[bytes]) -> merkle.Commitment:
        """A held state's tree, from the leaf hashes kept with it (``held_state`` checked their root)."""
        return merkle.Commitment.from_digests(np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 32),
                                              mh.TAG_PARAM, self.layout)

    def update_commitment(self, made: Made, packed: np.ndarray) -> merkle.Commitment:
        """The update's leaf hashes as kept at commit, refused unless they give the header's root_q (a
        candidate kept by an older version has none: its update is hashed once more, here)."""
        root_q = made.signed.body.root_q
        path = made.update_path.parent / UPDATE_DIGESTS
        if path.is_file():
            try:
                return merkle.Commitment.load(path, root_q, mh.TAG_QUPD, self.layout)
            except ValueError as e:
                raise UserError(f"{path}: {e} (corrupt work dir?)") from None
        c = merkle.commit_leaves(packed, mh.TAG_QUPD, self.layout)
        if c.root != root_q:
            raise UserError(f"{made.update_path}: the kept update does not give the header's root_q "
                            "(corrupt work dir?)")
        return c

    def prove(self, made: Made) -> bytes:
        """The signed bundle for a recorded candidate whose round's beacon is revealed."""
        ctx = self.view.context(made.hash)
        t0 = time.perf_counter()
        prev = self.held_state(made.root_prev)
        nxt = self.held_state(made.root_next)
        if prev is None or nxt is None:
            raise UserError(f"{self.work}: the states of this candidate are missing: cannot prove it")
        (ap, dp), (an, dn) = prev, nxt
        packed = np.fromfile(made.update_path, dtype=np.uint8)
        if packed.size != update_size(self.layout):
            raise UserError(f"{made.update_path}: {packed.size} bytes, an update is {update_size(self.layout)} "
                            "(corrupt work dir?)")
        packed = packed.reshape(self.layout.n_leaves, -1)
        beacon = self.hooks.beacon(self, ctx)
        idx = challenge_leaves(made.hash, beacon, self.layout.n_leaves, ctx.rules.k_leaves)

        def opened(where: Path, data: object, c: merkle.Commitment) -> list:
            """Only the k challenged leaves are read, each checked against its kept hash."""
            try:
                return merkle.open_from_digests(data, c, idx)
            except ValueError as e:
                raise UserError(f"{where}: {e} (corrupt work dir?)") from None

        trees = [opened(self.work, ap, self._state_commitment(dp)), opened(self.work, an, self._state_commitment(dn)),
                 opened(made.update_path, packed, self.update_commitment(made, packed))]
        openings = self.hooks.openings(self, tuple(
            LeafOpening(i, a.leaf, bb.leaf, c.leaf, a.path, bb.path, c.path)
            for i, a, bb, c in zip(idx, *trees, strict=True)))
        windows = self.hooks.windows(self, ctx)
        t_open = time.perf_counter() - t0

        def measure() -> tuple[float, float]:
            """Both means on the round's windows of its sealed shard, opened with the released key."""
            from pogo_jax.train.evaluate import mean_loss

            tokens = ctx.eval_tokens(self.ds)
            return (mean_loss(self.evaluator.window_losses(ap, tokens)),
                    mean_loss(self.evaluator.window_losses(an, tokens)))

        t0 = time.perf_counter()
        loss_prev, loss_next = self.hooks.losses(self, measure)
        made.seconds.update({"open": round(t_open, 3), "loss": round(time.perf_counter() - t0, 3)})
        bundle = Bundle(made.signed, ctx.beacon, self.layout, openings, tuple(windows), loss_prev, loss_next)
        return bundle.signed(self.key).to_bytes()

    def mine_round(self, timeout: float = 3600.0, on_step=None) -> dict:  # noqa: ANN001
        """One round as this miner: submit a candidate (or resume the one it has), prove it, and return its
        outcome once the round is finalized. Waits for a round to open if none accepts candidates."""
        from pogo_jax.chain.client import Refused

        v = self.view
        v.refresh()
        r = v.state.round
        ours = [c for c in r.candidates.values() if c.miner == self.pub]
        made = self.saved_candidate(r.height, r.round)
        if not ours:
            if r.phase != "submit":
                key = (r.height, r.round)
                v.wait(lambda st: (st.round.height, st.round.round) != key, timeout, what="the next round")
                return self.mine_round(timeout, on_step)
            if made is None:
                self.events({"event": "training", "height": r.height, "round": r.round})
                try:
                    made = self.make_candidate(v.context(), on_step)
                except Abstained as e:
                    self.events({"event": "abstained", "height": r.height, "round": r.round, "detail": str(e)})
                    return {"height": r.height, "round": r.round, "header_hash": None, "status": "abstained",
                            "reason": "SELF_CHECK", "detail": str(e), "train_losses": []}
            try:
                t0 = time.perf_counter()
                acc = self.hooks.submit(self, made)
                made.seconds["upload"] = round(time.perf_counter() - t0, 3)
            except Refused as e:
                self.events({"event": "refused", "height": r.height, "round": r.round, "code": e.code,
                             "detail": e.detail})
                return {"height": r.height, "round": r.round, "header_hash": made.hash.hex(), "status": "refused",
                        "reason": e.code, "detail": e.detail, "train_losses": made.train_losses}
            self.events({"event": "submitted", "height": r.height, "round": r.round, "header_hash": made.hash.hex(),
                         "accepted": acc})
        elif made is None or made.hash != ours[0].hash:
            raise UserError(f"the chain holds a candidate of this key for round ({r.height}, {r.round}) that "
                            f"{self.work} does not: is another process mining with this key?")
        return self.follow(made, timeout)

    def follow(self, made: Made, timeout: float) -> dict:
        """Prove the recorded candidate when its beacon is out, then wait for the round's outcome."""
        v, hh = self.view, made.hash
        key = (made.height, made.round)

        def beacon_out(st) -> bool:  # noqa: ANN001
            found = st.find(hh)
            return found is None or found[0].beacon is not None or found[0].finalized_at is not None

        st = v.wait(beacon_out, timeout, what="the round's beacon")
        found = st.find(hh)
        if found is not None and found[0].phase == "proof" and found[1].bundle_sha256 is None:
            bundle = self.prove(made)
            t0 = time.perf_counter()
            self.hooks.publish(self, made, bundle)
            made.seconds["bundle_upload"] = round(time.perf_counter() - t0, 3)
            self.events({"event": "proved", "height": made.height, "round": made.round, "bytes": len(bundle)})
        st = v.wait(lambda s: s.find(hh) is None or s.find(hh)[0].finalized_at is not None, timeout,
                    what="the round's finalization")
        found = st.find(hh)
        rnd, cand = found if found is not None else (None, None)
        out = {"height": key[0], "round": key[1], "header_hash": hh.hex(),
               "status": cand.status if cand else "evidence", "reason": cand.reason if cand else "",
               "reward": cand.reward if cand else 0,
               "improvement": None if cand is None or cand.improvement is None else float(cand.improvement),
               "train_losses": made.train_losses, "seconds": made.seconds}
        self.events({"event": "outcome", **out})
        return out


def state_digests(theta, layout) -> list[bytes]:  # noqa: ANN001
    """The 32-byte leaf hashes of a state, computed once per new state (``commit.hasher``: on the devices
    that hold a sharded state, shard by shard; on the host for numpy arrays; the same bits either way)."""

    return [bytes(row) for row in param_leaf_hashes(dict(theta), layout, mh.TAG_PARAM)]


def miner_seed(seed: int, miner_key: bytes) -> int:
    """The seed a miner trains with (data order, initial quantizer key): its own, derived from its key.
    Two honest miners with the config's seed would otherwise make byte-identical updates from the same
    tip, and the second would be slashed for replaying the first."""
    digest = hashlib.sha256(b"pogo/miner-seed/v1" + int(seed).to_bytes(8, "little", signed=True) + miner_key).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------------------- pogo mine's loop, with backoff
def round_length_s(rules) -> float:  # noqa: ANN001 - ChainRules
    """The longest a round can take once a candidate is in: its four windows."""
    return (rules.submit_window_ms + rules.prove_window_ms + rules.attest_window_ms + rules.reveal_window_ms) / 1000


def abstain_hint(cfg: Config, delta: float) -> str:
    """What a miner whose blocks keep falling short can change (said once, not at every abstention)."""
    mc, lr = cfg.miner, cfg.optim.lr
    grow = (f"let a block grow further (--set miner.max_tries={2 * mc.max_tries}, now {mc.max_tries} x "
            f"{mc.block_steps} steps)" if mc.short_block == "extend" else
            f"train more per block (--set miner.short_block=extend, or miner.block_steps={2 * mc.block_steps})")
    return (f"hint: blocks keep falling short of the self-check ({mc.self_check_margin:g} x the chain's delta "
            f"{delta:g} nats): {grow} or use a larger learning rate (--set optim.lr={2 * lr:g}, now {lr:g}); the "
            f"delta itself is the chain's (set at pogo init); a smaller miner.self_check_margin risks stake")


@dataclass
class AbstainBackoff:
    """A miner that abstained does not train again at once: it waits for the next round, or while the round
    stays open (nobody else submits) ``first_s``, then twice that, ... up to ``cap_s`` (a round's length)
    before it tries the same round again. ``streak`` counts abstentions in a row; a line is worth printing
    at the 1st, 2nd, 4th, 8th... of them, so a stuck miner logs a handful of lines an hour, not one a second."""

    cap_s: float
    first_s: float = 1.0
    streak: int = 0

    def abstained(self) -> float:
        """Count one more abstention; the seconds to wait before the next try."""
        self.streak += 1
        return min(self.cap_s, self.first_s * 2.0 ** min(self.streak - 1, 60))

    def worth_a_line(self) -> bool:
        return self.streak & (self.streak - 1) == 0

    def reset(self) -> int:
        """A round taken part in ends the streak; returns how long it was."""
        n, self.streak = self.streak, 0
        return n


def wait_for_round_change(view: ChainView, key: tuple[int, int], seconds: float,
                          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                          poll: float = 0.5) -> bool:
    """Up to ``seconds`` for the open round to be another than ``key``; True when it is."""
    end = clock() + seconds
    while (left := end - clock()) > 0:
        sleep(min(poll, left))
        view.refresh()
        if (view.state.round.height, view.state.round.round) != key:
            return True
    return False


def mine_rounds(miner: Miner, rounds: int, timeout: float, on_step=None, say: Callable[[str], None] = print,  # noqa: ANN001
                outcomes: bool = True, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """``pogo mine``'s loop: ``rounds`` rounds (0: until interrupted), each outcome one JSON line through
    ``say`` (with ``outcomes``). An abstention is followed by ``AbstainBackoff``'s wait; a streak of them is
    counted, not repeated, and the hint of what to change is said once. Returns the rounds done."""
    backoff = AbstainBackoff(max(1.0, round_length_s(miner.view.state.rules)))
    hinted = False
    n = 0
    while rounds == 0 or n < rounds:
        out = miner.mine_round(timeout, on_step)
        n += 1
        line = {k: v for k, v in out.items() if k != "train_losses"}
        if out["status"] != "abstained":
            streak = backoff.reset()
            if outcomes:
                say(json.dumps({**line, **({"abstained_before": streak} if streak else {})}))
            continue
        wait = backoff.abstained()
        if backoff.worth_a_line() and outcomes:
            say(json.dumps({**line, "abstentions_in_a_row": backoff.streak, "next_try_s": wait}))
        if not hinted:
            say(abstain_hint(miner.cfg, float(miner.view.state.rules.delta)))
            hinted = True
        if rounds == 0 or n < rounds:
            wait_for_round_change(miner.view, (out["height"], out["round"]), wait, clock, sleep)
    return n
