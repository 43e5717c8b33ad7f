"""Training: loss goes down, grad accumulation, eval determinism, resume-after-kill, bad input via the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from pogo_jax.cli import main
from pogo_jax.config import load_config
from pogo_jax.plotting import plot_curves
from pogo_jax.train import checkpoint, data, sharding
from pogo_jax.train.step import Trainer, eval_loss, loss_fn

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ds():
    return data.load_dataset(load_config("tiny").data)


def test_grad_accum_is_equivalent(ds):
    seed = random.randrange(2**31)
    base = ["mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", f"train.seed={seed}", "model.n_layers=1"]
    mesh = sharding.make_mesh(load_config("tiny", base).mesh)
    one = Trainer(load_config("tiny", base), mesh)
    init = {k: np.asarray(v) for k, v in one.params().items()}
    two = Trainer(load_config("tiny", base + ["optim.grad_accum=2"]), mesh)
    l1 = [m["loss"] for m in one.train_steps(ds, 3)]
    l2 = [m["loss"] for m in two.train_steps(ds, 3)]
    np.testing.assert_allclose(l1, l2, rtol=2e-5, err_msg=f"seed={seed}")
    p1, p2 = one.params(), two.params()
    for k in p1:
        np.testing.assert_allclose(p1[k], p2[k], rtol=1e-3, atol=2e-5, err_msg=f"{k} seed={seed}")
    assert all(not np.array_equal(p1[k], init[k]) for k in p1 if k.endswith("kernel")), f"seed={seed}"


def test_loss_goes_down_eval_deterministic_set_params(ds):
    seed = random.randrange(2**31)
    cfg = load_config("tiny", [f"train.seed={seed}", "mesh.data=1"])
    mesh = sharding.make_mesh(cfg.mesh, devices=jax.devices()[:1])
    trainer = Trainer(cfg, mesh)
    init = {k: np.asarray(v) for k, v in trainer.params().items()}
    idx = np.random.default_rng(seed).choice(data.n_eval_windows(ds, cfg.model.seq_len), 8, replace=False)
    windows = data.eval_windows(ds, idx, cfg.model.seq_len)
    a = eval_loss(trainer.model, windows)
    assert a == eval_loss(trainer.model, windows)  # bitwise repeatable
    np.testing.assert_allclose(a, float(nnx.jit(loss_fn)(trainer.model, windows)), rtol=1e-5)

    before = trainer.evaluate(ds)
    losses = [m["loss"] for m in trainer.train_steps(ds, 30)]
    after = trainer.evaluate(ds)
    assert np.mean(losses[-5:]) < losses[0] - 1.0, f"seed={seed}: {losses}"
    assert after < before - 1.0, f"seed={seed}: eval {before} -> {after}"

    # replacing params (what the PoGO miner does each block) changes what the model computes
    trainer.set_params(init)
    assert eval_loss(trainer.model, windows) == a
    trainer.train_steps(ds, 1)  # the optimizer keeps working on the replaced params
    assert eval_loss(trainer.model, windows) < a, f"seed={seed}"


def test_plot_curves(tmp_path):
    out = plot_curves({"a": [(0, 3.0), (1, 2.0)], "b": []}, tmp_path / "c.png", "t", "x", "y", logy=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- resume after kill


def _pogo_train(out: Path, steps: int, cache: Path) -> subprocess.Popen:
    # the persistent compilation cache makes runs 2 and 3 skip XLA compilation (same executables,
    # so bit-identity is still what is tested)
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(REPO),
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    cmd = [
        sys.executable,
        "-m",
        "pogo_jax.cli",
        "train",
        "--config",
        "tiny",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--set",
        "train.checkpoint_every=10",
        "--set",
        "train.eval_every=100000",
        "--set",
        "train.log_every=10",
    ]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ckpt_steps(out: Path) -> list[int]:
    d = out / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_resume_after_kill_is_bit_identical(tmp_path):
    steps = 60
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = _pogo_train(full, steps, tmp_path / "jit-cache")
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out

    p = _pogo_train(killed, steps, tmp_path / "jit-cache")
    deadline = time.time() + 240
    while not _ckpt_steps(killed) and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    done = _ckpt_steps(killed)
    assert done and done[-1] < steps, f"kill did not land mid-run (checkpoints {done}); test inconclusive"

    p = _pogo_train(killed, steps, tmp_path / "jit-cache")
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out
    assert f"resumed from step {done[-1]}" in out, out

    cfg = load_config("tiny", [f"train.steps={steps}"])
    trainer = Trainer(cfg, sharding.make_mesh(cfg.mesh, devices=jax.devices()[:2]))
    states = []
    for run in (full, killed):
        mngr = checkpoint.open_manager(run / "checkpoints", create=False)
        trainer.load(mngr)
        mngr.close()
        assert trainer.step == steps
        states.append([np.asarray(x) for x in jax.tree.leaves(trainer.state)])
    for x, y in zip(*states, strict=True):
        np.testing.assert_array_equal(x, y)
    last = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in last if "loss" in r] == [r["step"] for r in ref if "loss" in r]
    assert last[-1]["eval_loss"] == ref[-1]["eval_loss"]
    assert (killed / "loss.png").is_file()


# ------------------------------------------------------------------------------------- bad input


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _fails(capsys, argv: list[str], needle: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert needle in err, err


def test_bad_input_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "run"
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[model\nd_model = 3")
    empty = tmp_path / "empty.pogodata"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.pogodata"
    junk.write_bytes(os.urandom(5000))
    base = ["train", "--out", str(out)]
    _fails(capsys, base + ["--config", str(tmp_path / "missing.toml")], "not found")
    _fails(capsys, base + ["--config", str(bad_toml)], "not valid TOML")
    _fails(capsys, base + ["--config", "tiny", "--set", "model.nope=1"], "unknown config key 'model.nope'")
    _fails(capsys, base + ["--config", "tiny", "--set", "bogus.x=1"], "unknown override key")
    _fails(capsys, base + ["--config", "tiny", "--data", str(empty)], "is empty")
    _fails(capsys, base + ["--config", "tiny", "--data", str(tmp_path / "nofile")], "does not exist")
    _fails(capsys, base + ["--config", "tiny", "--data", str(junk)], "")
    _fails(capsys, base + ["--config", "tiny", "--set", "mesh.data=3"], "uses 3 devices but 8")
    _fails(capsys, base + ["--config", "tiny", "--set", "mesh.fsdp=3"], "does not divide")
    assert not out.exists()

    assert main(base + ["--config", "tiny", "--steps", "2", "--set", "model.n_layers=1"]) == 0
    before = _tree_digest(out)
    assert any(k.startswith("checkpoints/2") for k in before)
    _fails(
        capsys,
        base + ["--config", "tiny", "--steps", "4"],
        "from another model config",
    )
    assert _tree_digest(out) == before
