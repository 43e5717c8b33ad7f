"""PoGO block training (tiny config): it learns, commits exactly apply(theta_prev, q), EF stays bounded."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pogo_jax.commit import block, quant
from pogo_jax.config import load_config
from pogo_jax.errors import UserError
from pogo_jax.spec import update as U
from pogo_jax.spec.layout import Layout, to_leaves
from pogo_jax.train import data


def host(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in tree.items()}


def check_committed(r: block.BlockResult, layout: Layout) -> None:
    """theta_next == numpy apply(theta_prev, wire bytes of q), bit for bit; no subnormal, no -0.0."""
    buf = quant.pack_update(r.q, layout)
    exps, codes = U.unpack_leaves(buf.tobytes(), layout.leaf_size, layout.group_size)
    U.check_padding(codes, U.valid_counts(layout))
    want = U.apply_leaves(to_leaves(host(r.theta_prev), layout), exps, codes)
    got = to_leaves(host(r.theta_next), layout)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    b = got.view(np.uint32)
    assert not ((b & 0x7F800000) == 0)[b != 0].any()


def residual_bound(r: block.BlockResult, layout: Layout) -> dict[str, np.ndarray]:
    """|residual| <= one code step 2**e of its group + the float32 rounding of theta (+ flush slack)."""
    g = layout.group_size
    out = {}
    prev, nxt = host(r.theta_prev), host(r.theta_next)
    for t in layout.tensors:
        e = np.asarray(r.q.exps[t.path]).astype(np.int64)
        step = np.repeat(np.ldexp(1.0, e), g)[: t.size].reshape(t.shape)
        ulp = np.spacing(np.maximum(np.abs(prev[t.path]), np.abs(nxt[t.path])).astype(np.float32))
        out[t.path] = step + 2 * ulp.astype(np.float64) + 2.0**-125
    return out


@pytest.mark.parametrize("mode", ["block", "step"])
def test_blocks_learn_and_commit_exactly(mode):
    cfg = block.override_config(load_config("tiny"), miner={"quant_mode": mode, "block_steps": 10})
    ds = data.load_dataset(cfg.data)
    miner = block.BlockMiner(cfg)
    layout = miner.layout
    eval0 = miner.trainer.evaluate(ds)
    shardings = {k: v.sharding for k, v in miner.trainer.params().items()}
    evals = []
    for _ in range(3):
        r = miner.run_block(ds)
        check_committed(r, layout)
        bound = residual_bound(r, layout)
        for k, res in miner.state.residual.items():  # error feedback wraps the block quantizer
            assert (np.abs(np.asarray(res)) <= bound[k]).all(), k
        for k, v in r.theta_next.items():
            assert v.sharding.is_equivalent_to(shardings[k], v.ndim), k
        # the trainer continues from exactly the committed state
        assert all(np.array_equal(np.asarray(v), np.asarray(r.theta_next[k]))
                   for k, v in miner.trainer.params().items())
        evals.append(miner.trainer.evaluate(ds))
    assert evals[-1] < eval0 - 1.0, (eval0, evals)
    assert evals[-1] < evals[0], evals


def test_finish_block_rule_and_options():
    rng = np.random.default_rng(0)
    shapes = {"a": (8, 128), "b": (70,)}
    layout = Layout.from_shapes(shapes, 1024, 64)
    prev = {k: jnp.asarray(U.flush(rng.standard_normal(s).astype(np.float32))) for k, s in shapes.items()}
    noise = {k: rng.standard_normal(s).astype(np.float32) * 1e-3 for k, s in shapes.items()}
    trained = {k: v + jnp.asarray(noise[k]) for k, v in prev.items()}
    bq = block.BlockQuantizer(layout, 4, True, seed=0)
    st = bq.init(prev)
    q, nxt, st2 = bq.finish(prev, trained, st)
    assert np.array_equal(np.asarray(jax.tree.leaves(quant.apply_update(prev, q, layout))[0]),
                          np.asarray(jax.tree.leaves(nxt)[0]))
    # EF: target - delivered; what theta moved differs from the delivered update only by the rounding of
    # theta + d, so the residual matches target - (theta_next - theta_prev) to within one ulp of theta
    for k in shapes:
        want = (np.asarray(trained[k]) - np.asarray(prev[k])) - (np.asarray(nxt[k]) - np.asarray(prev[k]))
        ulp = np.spacing(np.abs(np.asarray(prev[k])))
        assert (np.abs(np.asarray(st2.residual[k]) - want) <= ulp).all(), k
    assert not np.array_equal(np.asarray(jax.random.key_data(st2.inner.key)),
                              np.asarray(jax.random.key_data(st.inner.key)))
    # the state survives save / load (typed key as key data), the wire codes are not kept
    back = bq.load(bq.save(st2), prev)
    assert np.array_equal(np.asarray(jax.random.key_data(back.inner.key)),
                          np.asarray(jax.random.key_data(st2.inner.key)))
    assert all(np.array_equal(np.asarray(back.residual[k]), np.asarray(st2.residual[k])) for k in shapes)
    plain = block.BlockQuantizer(layout, 4, False, seed=0)
    _, nxt3, st3 = plain.finish(prev, trained, plain.init(prev))
    assert not isinstance(st3, quant.ErrorFeedbackState)
    bad = dict(trained, b=trained["b"].at[3].set(jnp.nan))
    with pytest.raises(UserError, match="NaN"):
        bq.finish(prev, bad, st)
