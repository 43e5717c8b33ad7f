"""The miner: train one block from the confirmed state, publish a signed header (phase 1), and
after the beacon answer the challenge with a proof bundle (phase 4).

Miner-private state lives in its work directory and is written before the header is recorded:

    WORK/trainer/           orbax CheckpointManager: params, optimizer state, step
    WORK/quant-<step>.npz   error-feedback residual and PRNG key matching that trainer step
    WORK/states/<h>.npz     theta_next of every block it mined (what it proves from)

Where a miner could deviate from the protocol, ``Miner`` calls a ``MinerHooks`` method; the
defaults are the honest behaviour and ``pogo_jax/adversary.py`` overrides them, one named cheat
each, so every cheat runs through this same code and differs from it only where it says.

A miner killed at any point resumes: a block already recorded is not mined again, a block whose
files were written but not recorded is recorded, anything else is trained again from the last
checkpoint. The roots are computed with the device hasher (``pogo_jax.merkle``) on whatever
backend jax runs; the host reference would give the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pogo_jax.chain import ChainDir, file_sha256, load_state, save_state, state_root
from pogo_jax.commit import merkle, quant
from pogo_jax.commit.block import BlockQuantState, finish_block, init_block_state, make_trainer, replicated_key
from pogo_jax.config import Config, config_from_dict
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_open, atomic_write_bytes
from pogo_jax.ledger import Ledger
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.challenge import make_challenge
from pogo_jax.spec.header import Header, SignedHeader, sign_header
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.merkle import TAG_PARAM, TAG_QUPD
from pogo_jax.train.data import check_data_root, load_dataset, n_eval_windows
from pogo_jax.train.evaluate import Evaluator


class MinerHooks:
    """The honest miner's choices at each point where a cheating miner could deviate."""

    name = "honest"

    def train(self, miner: Miner, steps: int, progress) -> list[dict]:
        """Run the block's optimizer steps; returns per-step metrics."""
        return miner.trainer.train_steps(miner.ds, steps, on_step=progress)

    def update(self, miner: Miner, theta_prev: dict, theta_next: dict, packed: np.ndarray) -> tuple[dict, np.ndarray]:
        """What is committed as theta_next and published as the 4-bit update (wire leaves)."""
        return theta_next, packed

    def header(self, miner: Miner, header: Header) -> Header:
        """The header to sign."""
        return header

    def challenge_beacon(self, miner: Miner, header_hash: bytes, beacon: bytes) -> bytes:
        """The beacon value the miner derives its challenge from."""
        return beacon

    def openings(self, miner: Miner, openings: tuple[LeafOpening, ...]) -> tuple[LeafOpening, ...]:
        """The opened leaves put in the bundle."""
        return openings

    def losses(self, miner: Miner, measure) -> tuple[float, float]:
        """Reported (loss_prev, loss_next); ``measure()`` evaluates both on the challenge windows."""
        return measure()


HONEST = MinerHooks()


@dataclass
class MinedBlock:
    height: int
    header_hash: bytes
    train_losses: list[float] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    update_bytes: int = 0
    resumed: str = ""  # "" (mined now), "recorded" (found in ledger), "files" (found on disk)


class Miner:
    def __init__(self, chain: ChainDir, ledger: Ledger, key, workdir: str | Path, data_path: str | None = None,
                 hooks: MinerHooks = HONEST, load_data: bool = True):
        self.chain, self.ledger, self.key = chain, ledger, key
        self.pub = public_bytes(key)
        part = ledger.participant(self.pub)
        if part is None or part["role"] != "miner":
            raise UserError("this key is not registered as a miner in the ledger")
        self.work = Path(workdir)
        self.hooks = hooks
        meta = ledger.meta()
        self.cfg: Config = config_from_dict(meta["config"])
        self.layout = Layout.from_manifest(meta["layout"])
        self._trainer = None
        self._qstate: BlockQuantState | None = None
        self._evaluator: Evaluator | None = None
        if load_data:  # False only when a new epoch (start_epoch) brings its own dataset
            self.use_data(data_path)

    def use_data(self, data_path: str | None = None) -> None:
        """Load the dataset of the epoch the next block belongs to (``data_path`` overrides where
        it is read from; its root must still be the epoch's)."""
        ep = self.ledger.epoch_for(self.ledger.tip()["height"] + 1)
        path = data_path if data_path is not None else (
            str(self.chain.root / ep["data_path"]) if ep["data_path"] else None)
        cfg = self.cfg if path is None else _with_data(self.cfg, path)
        self.epoch = ep["epoch"]
        self.ds = load_dataset(cfg.data)
        check_data_root(self.ds, ep["data_root"], f"the chain's dataset (epoch {ep['epoch']})")
        self.n_windows = n_eval_windows(self.ds, cfg.model.seq_len)

    def fork(self, key, workdir: str | Path, hooks: MinerHooks) -> Miner:
        """Another miner identity that shares this one's compiled trainer, evaluator and dataset
        (tests and ``pogo demo --adversary`` run several miners in one process; compiling once
        saves seconds per miner). Its quantizer state and work directory are its own."""
        import copy

        _ = self.trainer, self.evaluator  # build them here so that the copy shares them
        other = copy.copy(self)
        other.key, other.pub, other.work, other.hooks = key, public_bytes(key), Path(workdir), hooks
        part = self.ledger.participant(other.pub)
        if part is None or part["role"] != "miner":
            raise UserError("this key is not registered as a miner in the ledger")
        return other

    # -- state -----------------------------------------------------------------------------
    def state_file(self, height: int) -> Path:
        return self.chain.genesis if height == 0 else self.work / "states" / f"{height:06d}.npz"

    def confirmed_state(self, height: int, root_hex: str) -> dict[str, np.ndarray]:
        """theta at a confirmed height: own copy if its root matches, else rebuilt by sync."""
        f = self.state_file(height)
        if f.is_file():
            arrays = load_state(f, self.layout)
            if state_root(arrays, self.layout).hex() == root_hex:
                return arrays
        from pogo_jax.roles.chainops import sync

        arrays, _, _ = sync(self.chain, self.ledger, height)
        return arrays

    @property
    def trainer(self):  # noqa: ANN201 - train.Trainer
        if self._trainer is None:
            from pogo_jax.train import checkpoint

            self._trainer = make_trainer(self.cfg)
            ckdir = self.work / "trainer"
            if ckdir.is_dir() and checkpoint.latest_step(checkpoint.open_manager(ckdir, 2, create=False)) is not None:
                self._trainer.load(checkpoint.open_manager(ckdir, 2, create=False))
            self._qstate = self._load_qstate(self._trainer.step)
        return self._trainer

    def _load_qstate(self, step: int) -> BlockQuantState:
        f = self.work / f"quant-{step}.npz"
        params = self._trainer.params()
        if not f.is_file():
            return init_block_state(params, self.cfg.train.seed + 1)
        with np.load(f, allow_pickle=False) as z:
            key = replicated_key(jnp.asarray(z["__key__"]), params)
            res = {k: jax.device_put(jnp.asarray(z[k]), params[k].sharding) for k in params}
        return BlockQuantState(key, res)

    def _save_private(self) -> None:
        from pogo_jax.train import checkpoint

        t = self.trainer
        mngr = checkpoint.open_manager(self.work / "trainer", 2)
        t.save(mngr)
        mngr.wait_until_finished()
        mngr.close()
        res = {k: np.asarray(v) for k, v in self._qstate.residual.items()}
        with atomic_open(self.work / f"quant-{t.step}.npz") as f:
            np.savez(f, __key__=np.asarray(self._qstate.key), **res)
        for old in self.work.glob("quant-*.npz"):
            if old.name != f"quant-{t.step}.npz":
                old.unlink(missing_ok=True)

    # -- fine-tuning: a new epoch ------------------------------------------------------------------
    def start_epoch(self, init_from: str | Path, data_path: str | Path) -> dict:
        """Start a fine-tuning epoch after the confirmed tip: theta_prev of the next block becomes the
        checkpoint ``init_from`` (a ``pogo train`` / miner orbax directory, or an .npz of float32
        arrays; flushed like genesis) and the dataset the packed file ``data_path``. Both are
        published in the chain directory (DIR/states/epoch-N.npz, DIR/data/epoch-N.pogodata) so
        verifiers rebuild from them; the ledger records their roots. The layout must stay the same."""
        import shutil

        from pogo_jax.chain import state_root
        from pogo_jax.config import DataConfig
        from pogo_jax.spec import update as upd

        init_from, data_path = Path(init_from), Path(data_path)
        ds = load_dataset(DataConfig(path=str(data_path)), verify=True)
        if n_eval_windows(ds, self.cfg.model.seq_len) < self.cfg.pogo.m_windows:
            raise UserError(f"{data_path}: the eval split has fewer than pogo.m_windows={self.cfg.pogo.m_windows} "
                            f"windows of {self.cfg.model.seq_len} bytes; pack more text or raise --eval-fraction")
        arrays = self._load_checkpoint(init_from)
        theta = {k: upd.flush(v) for k, v in arrays.items()}
        if not all(np.isfinite(v).all() for v in theta.values()):
            raise UserError(f"{init_from}: the checkpoint holds NaN or Inf")
        lay = Layout.from_arrays(theta, self.layout.leaf_size, self.layout.group_size)
        if lay.layout_hash() != self.layout.layout_hash():
            raise UserError(f"{init_from}: its tensors differ from the chain's layout (fine-tuning keeps the model's "
                            "shapes; start a new chain for another architecture)")
        n = len(self.ledger.epochs()) + 1
        state_rel, data_rel = f"states/epoch-{n:03d}.npz", f"data/epoch-{n:03d}.pogodata"
        save_state(self.chain.root / state_rel, theta)
        (self.chain.root / "data").mkdir(parents=True, exist_ok=True)
        tmp = self.chain.root / f"{data_rel}.tmp"
        shutil.copyfile(ds.path, tmp)
        tmp.replace(self.chain.root / data_rel)
        rec = self.ledger.start_epoch(self.pub, {
            "genesis_root": state_root(theta, self.layout).hex(), "state_path": state_rel,
            "data_root": ds.data_root.hex(), "data_path": data_rel, "data_manifest": ds.manifest,
            "layout_hash": self.layout.layout_hash().hex(), "source": str(init_from)})
        self.use_data()
        return rec

    def _load_checkpoint(self, path: Path) -> dict[str, np.ndarray]:
        if path.is_file():
            return load_state(path, self.layout)
        if not path.is_dir():
            raise UserError(f"checkpoint {path} does not exist (give an orbax directory or an .npz)")
        from pogo_jax.train import checkpoint

        if (path / "checkpoints").is_dir():  # a `pogo train --out DIR` directory
            path = path / "checkpoints"
        mngr = checkpoint.open_manager(path, 2, create=False)
        if checkpoint.latest_step(mngr) is None:
            raise UserError(f"{path}: no orbax checkpoint steps in this directory (a `pogo train` checkpoint "
                            "directory or an .npz of float32 arrays is expected)")
        t = self.trainer
        t.load(mngr)
        return {k: np.asarray(v, dtype=np.float32) for k, v in t.params().items()}

    # -- phase 1: mine and commit ----------------------------------------------------------------
    def mine(self, progress=None) -> MinedBlock:
        tip = self.ledger.tip()
        h = tip["height"] + 1
        pend = self.ledger.block(height=h, status="pending")
        if pend is not None:
            if pend["miner_key"] != self.pub.hex():
                raise UserError(f"block {h} is pending from another miner: finalize it first (pogo finalize)")
            return MinedBlock(h, bytes.fromhex(pend["header_hash"]), resumed="recorded")
        found = self._unrecorded_files(h, tip)
        if found is not None:
            self.ledger.record_header(found, file_sha256(self.chain.update_file(h)),
                                      str(self.chain.update_file(h)))
            return MinedBlock(h, found.header.hash(), resumed="files")

        t = {}
        t0 = time.perf_counter()
        theta_prev_np = self.confirmed_state(h - 1, tip["root"])
        trainer = self.trainer
        trainer.set_params({k: np.array(v) for k, v in theta_prev_np.items()})
        theta_prev = {k: jnp.copy(v) for k, v in trainer.params().items()}
        t["load"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        steps = self.cfg.pogo.block_steps
        start = trainer.step
        metrics = self.hooks.train(self, steps, progress)
        jax.block_until_ready(trainer.state)
        t["train"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        p = self.cfg.pogo
        q, theta_next, self._qstate = finish_block(theta_prev, trainer.params(), self._qstate, self.layout,
                                                   p.bits, p.error_feedback)
        if not bool(quant.all_finite(theta_next)):
            raise UserError("theta_next is not finite: the block diverged (lower optim.lr)")
        packed = quant.pack_update(q, self.layout)
        theta_next, packed = self.hooks.update(self, theta_prev_np, theta_next, packed)
        theta_next = {k: jnp.asarray(v) for k, v in theta_next.items()}
        jax.block_until_ready(theta_next)
        t["quantize"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        root_prev = merkle.commit(theta_prev, p.leaf_size, p.group_size, TAG_PARAM).root
        if root_prev.hex() != tip["root"]:
            raise UserError("the miner's theta_prev does not hash to the confirmed root (corrupt work dir?)")
        root_next = merkle.commit(theta_next, p.leaf_size, p.group_size, TAG_PARAM).root
        root_q = merkle.commit_leaves(packed, TAG_QUPD, self.layout).root
        t["commit"] = time.perf_counter() - t0

        meta = self.ledger.meta()
        header = Header(
            version=1, chain_id=meta["chain_id"], height=h, parent_hash=bytes.fromhex(tip["header_hash"]),
            miner_key=self.pub, layout_hash=bytes.fromhex(meta["layout_hash"]),
            data_root=self.ds.data_root, root_prev=root_prev, root_next=root_next, root_q=root_q,
            leaf_size=p.leaf_size, group_size=p.group_size, n_leaves=self.layout.n_leaves,
            train={"steps": steps, "step_start": start, "tokens": steps * self.cfg.train.batch_size
                   * self.cfg.model.seq_len, "optimizer": "adamw", "quant_mode": p.quant_mode,
                   "config_hash": self.cfg.config_hash(), "seq_len": self.cfg.model.seq_len,
                   "n_windows": self.n_windows, "epoch": self.epoch})
        signed = sign_header(self.hooks.header(self, header), self.key)
        header = signed.header

        t0 = time.perf_counter()
        # Publish the update and the header, keep theta_next, then the private state; record last.
        atomic_write_bytes(self.chain.update_file(h), np.ascontiguousarray(packed).tobytes())
        atomic_write_bytes(self.chain.header_file(h), signed.to_bytes())
        save_state(self.state_file(h), {k: np.asarray(v) for k, v in theta_next.items()})
        trainer.set_params({k: jnp.copy(v) for k, v in theta_next.items()})
        self._save_private()
        self.ledger.record_header(signed, file_sha256(self.chain.update_file(h)), str(self.chain.update_file(h)))
        t["write"] = time.perf_counter() - t0
        return MinedBlock(h, header.hash(), [m["loss"] for m in metrics], t, packed.size)

    def _unrecorded_files(self, h: int, tip: dict) -> SignedHeader | None:
        """A header + update + state written by an earlier run that died before recording them."""
        hf, uf, sf = self.chain.header_file(h), self.chain.update_file(h), self.state_file(h)
        if not (hf.is_file() and uf.is_file() and sf.is_file()):
            return None
        try:
            signed = SignedHeader.from_bytes(hf.read_bytes())
        except UserError:
            return None
        hd = signed.header
        if (hd.miner_key != self.pub or hd.parent_hash.hex() != tip["header_hash"]
                or hd.root_prev.hex() != tip["root"]):
            return None
        return signed

    # -- phase 4: answer the challenge ------------------------------------------------------------
    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(self.cfg)
        return self._evaluator

    def prove(self, height: int | None = None) -> tuple[Path, dict]:
        """Write the proof bundle for a recorded block whose beacon is revealed."""
        from pogo_jax.chain import read_update

        tip = self.ledger.tip()
        h = tip["height"] + 1 if height is None else height
        blk = self.ledger.block(height=h, status="pending")
        if blk is None:
            raise UserError(f"no pending block at height {h} to prove")
        signed = SignedHeader.from_bytes(blk["header_bytes"])
        hd = signed.header
        if hd.miner_key != self.pub:
            raise UserError(f"block {h} was mined by another key")
        beacon = self.ledger.beacon(hd.hash())
        if beacon is None:
            raise UserError(f"the beacon for block {h} is not revealed yet (pogo beacon)")
        t = {}
        t0 = time.perf_counter()
        theta_prev = self.confirmed_state(h - 1, tip["root"])
        theta_next = load_state(self.state_file(h), self.layout)
        packed = read_update(self.chain.update_file(h), self.layout)
        p = self.cfg.pogo
        ch = make_challenge(hd.hash(), self.hooks.challenge_beacon(self, hd.hash(), beacon), hd.n_leaves,
                            p.k_leaves, self.n_windows, p.m_windows)
        idx = list(ch.leaf_indices)
        trees = []
        for params in (theta_prev, theta_next):
            dev = {k: jnp.asarray(v) for k, v in params.items()}
            c = merkle.commit(dev, p.leaf_size, p.group_size, TAG_PARAM)
            trees.append(merkle.open(dev, c, idx))
        cq = merkle.commit_leaves(packed, TAG_QUPD, self.layout)
        trees.append(merkle.open(packed, cq, idx))
        if cq.root != hd.root_q:
            raise UserError("the published update does not match the header (corrupt files?)")
        openings = self.hooks.openings(self, tuple(
            LeafOpening(i, a.leaf, b.leaf, c.leaf, tuple(a.path), tuple(b.path), tuple(c.path))
            for i, a, b, c in zip(idx, *trees, strict=True)))
        t["open"] = time.perf_counter() - t0
        t0 = time.perf_counter()

        def measure() -> tuple[float, float]:
            return (self.evaluator.loss(theta_prev, self.ds, ch.window_indices),
                    self.evaluator.loss(theta_next, self.ds, ch.window_indices))

        lp, ln = self.hooks.losses(self, measure)
        t["loss"] = time.perf_counter() - t0
        bundle = Bundle(signed, beacon, self.layout, openings, ch.window_indices, lp, ln).signed(self.key)
        out = self.chain.bundle_file(h)
        data = bundle.to_bytes()
        atomic_write_bytes(out, data)
        return out, {"loss_prev": lp, "loss_next": ln, "bytes": len(data), "timings": t, "k": len(idx)}


def _with_data(cfg: Config, path: str) -> Config:
    import dataclasses

    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=path))
