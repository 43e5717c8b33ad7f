"""Two real jax.distributed processes on CPU (gloo collectives) train tiny over one mesh spanning both."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from multihost_harness import run_two_process

from pogo_jax.config import load_config
from pogo_jax.train import data, sharding
from pogo_jax.train.step import Trainer


@pytest.mark.multiprocess
def test_two_process_training_matches_one_process(tmp_path):
    ckpt = tmp_path / "ckpt"
    results = run_two_process(["train", "--out", str(ckpt), "--steps", "2", "--mesh", "2,2,1"], timeout=240)
    assert [r["process"] for r in results] == [0, 1]
    for r in results:
        assert r["process_count"] == 2 and r["devices"] == 4  # 2 local CPU devices per process
        assert r["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
        assert r["restored_step"] == 2 and r["restore_bitwise_equal"]
    assert results[0]["losses"] == results[1]["losses"]  # one SPMD program, one global loss
    assert results[0]["param_sum"] == results[1]["param_sum"]
    assert (ckpt / "2").is_dir()  # orbax wrote one checkpoint from both processes

    # the same two steps in this single process (one device) give the same losses
    cfg = load_config("tiny", ["mesh.data=1", "train.steps=2"])
    trainer = Trainer(cfg, sharding.make_mesh(cfg.mesh, devices=jax.devices()[:1]))
    ref = [m["loss"] for m in trainer.train_steps(data.load_dataset(cfg.data), 2)]
    np.testing.assert_allclose(results[0]["losses"], ref, rtol=2e-5)
    ref_sum = float(sum(np.float64(np.asarray(v)).sum() for v in trainer.params().values()))
    np.testing.assert_allclose(results[0]["param_sum"], ref_sum, rtol=1e-5)
