"""Fine-tuning epochs: `pogo mine --init-from CHECKPOINT --data PACKED` in process.

A `tiny` chain fine-tunes from an orbax checkpoint (what `pogo train` writes) on a small packed
text, and a block of that epoch is verified (full tier, on the new data's challenge windows) and
confirmed; a second epoch starts from an .npz on other text and confirms too; `sync` follows both
epochs to the miner's exact state.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.progress import Progress

from pogo_jax.errors import UserError

SET = ["pogo.block_steps=3", "pogo.n_verifiers=2", "pogo.m_windows=4"]
REPO = Path(__file__).resolve().parent.parent


def _pack(root: Path, name: str, seed: int) -> Path:
    """A few tens of KB of text (the repo's own docs, shuffled by paragraph) packed with pogo data."""
    from pogo_jax.train import data

    rng = np.random.default_rng(seed)
    paras = [p for f in sorted((REPO / "docs").glob("*.md")) for p in f.read_text().split("\n\n") if p.strip()]
    src = root / f"text-{name}"
    src.mkdir()
    (src / "corpus.txt").write_text("\n\n".join(paras[i] for i in rng.permutation(len(paras))))
    out = root / f"{name}.pogodata"
    data.pack([src], out, shard_size=4096, eval_fraction=0.2)
    return out


class FT:
    def __init__(self, root: Path) -> None:
        from pogo_jax.config import load_config
        from pogo_jax.demo import VerifierNode
        from pogo_jax.genesis import create_chain
        from pogo_jax.miner import Miner
        from pogo_jax.spec.keys import load_private_pem

        self.root = root
        self.cfg = load_config("tiny", SET)
        self.chain, self.ledger = create_chain(root / "chain", self.cfg)
        keys = sorted(self.chain.keys_dir.glob("verifier-*.pem"))
        self.nodes = [VerifierNode(p.stem, load_private_pem(p), t) for p, t in zip(keys, ("full", "light"),
                                                                                     strict=True)]
        self.miner = Miner(self.chain, self.ledger, load_private_pem(self.chain.keys_dir / "miner.pem"),
                           root / "miner", load_data=False)

    def block(self) -> dict:
        from pogo_jax.demo import run_block

        console = Console(file=io.StringIO())
        with Progress(console=console) as progress:
            return run_block(self.chain, self.ledger, self.miner, self.nodes, progress, console)


@pytest.fixture(scope="module")
def ft(tmp_path_factory) -> FT:
    return FT(tmp_path_factory.mktemp("finetune"))


def _orbax_checkpoint(root: Path) -> Path:
    """What `pogo train` leaves: an orbax CheckpointManager directory (here an untrained model of
    another seed, so its state differs from the chain's genesis)."""
    from pogo_jax.config import load_config
    from pogo_jax.train.step import Trainer

    t = Trainer(load_config("tiny", [*SET, "train.seed=7"]))
    t.save(root / "ckpt" / "checkpoints")
    return root / "ckpt"


def test_epoch_from_orbax_checkpoint_confirms_a_block_on_the_new_data(ft: FT) -> None:
    from pogo_jax.chain import state_root
    from pogo_jax.config import DataConfig
    from pogo_jax.spec.header import SignedHeader
    from pogo_jax.train.data import load_dataset, n_eval_windows

    packed = _pack(ft.root, "a", 1)
    rec = ft.miner.start_epoch(_orbax_checkpoint(ft.root), packed)
    ds = load_dataset(DataConfig(path=str(packed)))
    assert (rec["epoch"], rec["after_height"], rec["data_root"]) == (1, 0, ds.data_root.hex())
    assert ft.ledger.tip()["root"] == rec["genesis_root"] != ft.ledger.meta()["genesis_root"]

    out = ft.block()
    assert out["outcome"] == "confirmed", out
    assert [(v["verdict"], v["tier"]) for v in out["verifiers"]] == [("accept", "full"), ("accept", "light")]
    hd = SignedHeader.from_bytes(ft.ledger.block(height=1)["header_bytes"]).header
    assert hd.train["epoch"] == 1 and hd.data_root == ds.data_root
    assert hd.root_prev.hex() == rec["genesis_root"]
    assert hd.train["n_windows"] == n_eval_windows(ds, ft.cfg.model.seq_len)  # windows from the new data
    # The epoch's initial state is the checkpoint, flushed, and published in the chain directory.
    from pogo_jax.chain import load_state

    theta0 = load_state(ft.chain.root / rec["state_path"], ft.miner.layout)
    assert state_root(theta0, ft.miner.layout).hex() == rec["genesis_root"]


def test_second_epoch_from_npz_and_sync_follows_epochs(ft: FT) -> None:
    from pogo_jax.chain import load_state, save_state
    from pogo_jax.roles.chainops import sync

    theta, _, _ = sync(ft.chain, ft.ledger)
    npz = ft.root / "half.npz"
    save_state(npz, {k: v * np.float32(0.5) for k, v in theta.items()})
    rec = ft.miner.start_epoch(npz, _pack(ft.root, "b", 2))
    assert (rec["epoch"], rec["after_height"]) == (2, 1)
    out = ft.block()
    assert out["outcome"] == "confirmed" and out["height"] == 2, out
    assert ft.ledger.state_root_at(1).hex() == rec["genesis_root"]  # the epoch replaced the state at 1
    theta2, root2, h = sync(ft.chain, ft.ledger)
    mine = load_state(ft.miner.state_file(2))
    assert h == 2 and all(np.array_equal(theta2[k].view(np.uint32), mine[k].view(np.uint32)) for k in mine)


def test_bad_init_checkpoints_are_clear_errors(ft: FT, tmp_path) -> None:
    from pogo_jax.chain import save_state

    packed = _pack(tmp_path, "c", 3)
    save_state(tmp_path / "wrong.npz", {"w": np.zeros((3, 3), np.float32)})
    n = len(ft.ledger.epochs())
    for bad, msg in [(tmp_path / "wrong.npz", "does not match the chain layout"),
                     (tmp_path / "missing", "does not exist"),
                     (tmp_path, "no orbax checkpoint steps")]:
        with pytest.raises(UserError, match=msg):
            ft.miner.start_epoch(bad, packed)
    assert len(ft.ledger.epochs()) == n  # nothing recorded


@pytest.mark.slow
def test_cli_init_from_needs_data(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", "mine", "--chain", str(tmp_path), "--key", "k.pem",
                        "--init-from", "ckpt"], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "--init-from needs --data" in p.stderr and len(p.stderr.splitlines()) == 1
