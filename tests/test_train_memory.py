"""Memory of the train step (docs/training.md "Memory"): the chunked training loss equals the reference
loss, the compiled step never holds the full (B, T, vocab) logits, donates the state and is scheduled
for memory on CPU. Compile-only checks (memory_analysis, HLO text) on a tiny model with a large vocab."""

from __future__ import annotations

import random
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pogo_jax.config import load_config
from pogo_jax.train import sharding
from pogo_jax.train import step as S
from pogo_jax.train.model import GPT

B, T, V = 2, 512, 20000  # the full logits: 2 * 512 * 20000 float32 = 82 MB; chunks of 128 positions


def _cfg(*extra: str):
    return load_config("tiny", ["mesh.data=1", f"train.batch_size={B}", f"model.seq_len={T}",
                                f"model.vocab_size={V}", *extra])


def _compiled_step(monkeypatch, full_logits: bool = False, memory_scheduler: bool = True):
    cfg = _cfg()
    if full_logits:  # the step as it was: loss_fn over the full logits
        monkeypatch.setattr(S, "train_loss", lambda m, b: S.loss_fn(m, b))
    if not memory_scheduler:
        monkeypatch.setattr(S, "CPU_STEP_COMPILER_OPTIONS", {})
    trainer = S.Trainer(cfg, sharding.make_mesh(cfg.mesh, devices=jax.devices()[:1]))
    batch = jax.ShapeDtypeStruct((B, T + 1), jnp.int32, sharding=trainer.batch_sharding)
    compiled = trainer._step_fn.lower(trainer.state, batch).compile()
    monkeypatch.undo()
    return trainer, compiled


def _largest_f32(hlo: str) -> int:
    sizes = [int(np.prod([int(d) for d in dims.split(",")])) for dims in re.findall(r"f32\[([\d,]+)\]", hlo)]
    return max(sizes)


def test_ce_chunks():
    assert S.ce_chunks(1024, 50304) == 16  # gpt2-124m: 16 chunks of 64 positions
    assert S.ce_chunks(128, 256) == 1 and S.ce_chunks(64, 256) == 1  # byte vocab: not chunked
    for _ in range(20):
        t, v, m = random.randrange(1, 300), random.randrange(1, 5000), random.randrange(1, 10**5)
        k = S.ce_chunks(t, v, m)
        assert t % k == 0 and ((t // k) * v <= m or k == t)
        assert all(t % j or (t // j) * v > m for j in range(1, k))  # the smallest such divisor


def test_chunked_loss_equals_reference():
    seed = random.randrange(2**31)
    cfg = load_config("tiny", ["model.vocab_size=1000", "model.compute_dtype=float32"])
    model = GPT(cfg.model, rngs=nnx.Rngs(seed))
    batch = np.random.default_rng(seed).integers(0, 1000, (3, cfg.model.seq_len + 1)).astype(np.int32)
    k_logits = cfg.model.seq_len // 4 * 1000  # force 4 chunks

    ref_loss, ref_grads = nnx.jit(nnx.value_and_grad(S.loss_fn))(model, batch)
    loss, grads = nnx.jit(nnx.value_and_grad(lambda m, b: S.train_loss(m, b, k_logits)))(model, batch)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=2e-6, err_msg=f"seed={seed}")
    flat_ref, flat = jax.tree.leaves(ref_grads), jax.tree.leaves(grads)
    assert len(flat) == len(flat_ref)
    for g, r in zip(flat, flat_ref, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-7, err_msg=f"seed={seed}")

    per_window = nnx.jit(lambda m, b: S.train_window_losses(m, b, k_logits))(model, batch)
    graphdef, params = nnx.split(model, nnx.Param)
    ref_windows = S._eval_windows_pure(graphdef, nnx.to_pure_dict(params), batch)
    np.testing.assert_allclose(np.asarray(per_window), np.asarray(ref_windows), rtol=2e-6, err_msg=f"seed={seed}")
    # one chunk is the reference itself, bit for bit
    assert float(nnx.jit(S.train_loss)(model, batch)) == float(ref_loss)


def test_step_never_holds_full_logits_and_donates_state(monkeypatch):
    trainer, compiled = _compiled_step(monkeypatch)
    _, full = _compiled_step(monkeypatch, full_logits=True)
    logits = B * T * V
    assert _largest_f32(full.as_text()) >= logits  # the control: the old step has the (B, T, vocab) buffer
    assert _largest_f32(compiled.as_text()) < logits // 2
    mem, mem_full = compiled.memory_analysis(), full.memory_analysis()
    assert mem.temp_size_in_bytes < mem_full.temp_size_in_bytes - 2 * 4 * logits
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(trainer.state))
    assert mem.alias_size_in_bytes >= state_bytes  # donated: the new state reuses the old one's buffers


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the scheduler option is XLA:CPU's")
def test_cpu_step_uses_memory_optimized_scheduler(monkeypatch):
    _, with_option = _compiled_step(monkeypatch)
    _, without = _compiled_step(monkeypatch, memory_scheduler=False)
    assert with_option.memory_analysis().temp_size_in_bytes < without.memory_analysis().temp_size_in_bytes
