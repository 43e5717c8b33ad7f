"""The miner's side of the 4-bit update: the quantizer, the optax transforms, device packing, sharding."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from pogo_jax.commit import quant
from pogo_jax.spec import update as U
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves

S, G = 1024, 64
SHAPES = {"emb": (96, 128), "blocks/0/w": (128, 3, 70), "blocks/0/b": (70,), "scale": (), "odd": (5, 7)}


def fresh_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def random_delta(rng: np.random.Generator, shapes=SHAPES) -> dict[str, np.ndarray]:
    """Values over many magnitudes (groups from 1e-30 to 1e4), no subnormals, a few exact zeros."""
    out = {}
    for k, s in shapes.items():
        x = rng.standard_normal(s) * np.exp(rng.uniform(-60, 8, size=s))
        x = np.where(rng.random(s) < 0.05, 0.0, x)
        out[k] = U.flush(np.asarray(x, dtype=np.float32))
    return out


def ref_exponents(xg: np.ndarray, qmax: int) -> np.ndarray:
    """Smallest e in [-126, 15] with max|x| <= qmax * 2**e, exactly (float64 and ldexp)."""
    m = np.abs(xg.astype(np.float64)).max(axis=-1)
    e = np.full(m.shape, U.E_MIN, dtype=np.int64)
    for _ in range(U.E_MAX - U.E_MIN):
        e = np.where((m > qmax * np.ldexp(1.0, e)) & (e < U.E_MAX), e + 1, e)
    return e


def host_groups(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1)
    return np.pad(flat, (0, (-flat.size) % G)).reshape(-1, G)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantize_exponent_rule_and_exact_dequant(bits):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    layout = Layout.from_shapes(SHAPES, S, G)
    delta = random_delta(rng)
    qmax = 2 ** (bits - 1) - 1
    dj = {k: jnp.asarray(v) for k, v in delta.items()}
    q, deq = quant.quantize(dj, jax.random.PRNGKey(seed), layout, bits)
    for t in layout.tensors:
        e = np.asarray(q.exps[t.path])
        c = np.asarray(q.codes[t.path])
        assert e.shape == (t.n_leaves * S // G,) and c.shape == (t.n_leaves * S,)
        assert e.dtype == np.int8 and c.dtype == np.int8
        ng = -(-t.size // G)
        want_e = ref_exponents(host_groups(delta[t.path]), qmax)
        assert np.array_equal(e[:ng], want_e), f"seed={seed} {t.path}"
        assert (e[ng:] == U.E_MIN).all() and not c[t.size :].any()
        assert np.abs(c).max() <= qmax
        # the returned delta is exactly c * 2**e, and within one step of the input
        d = np.asarray(deq[t.path])
        exact = (c[: t.size] * np.repeat(np.ldexp(1.0, e.astype(np.int64)), G)[: t.size]).astype(np.float32)
        assert np.array_equal(d.reshape(-1), exact), f"seed={seed} {t.path}"
        step = np.repeat(np.ldexp(1.0, e.astype(np.int64)), G)[: t.size]
        # within one step: stochastic rounding goes up with probability frac(x / step), so a draw of exactly 0
        # (float32 uniforms: 2**-23 a value) rounds a tiny x up to a whole step, |d - x| = step in float32
        assert (np.abs(d.reshape(-1) - delta[t.path].reshape(-1)) <= step).all(), f"seed={seed} {t.path}"
    zero = {k: jnp.zeros(v) for k, v in SHAPES.items()}  # the rule applied to zero gives the exact update back
    dq = quant.apply_update(zero, q, layout)
    assert all(np.array_equal(np.asarray(dq[k]), np.asarray(quant.flush(deq[k]))) for k in SHAPES)


def test_quantize_saturates_and_handles_zero():
    layout = Layout.from_shapes({"w": (2, 64)}, S, G)
    x = np.zeros((2, 64), np.float32)
    x[0, :3] = [1e9, -1e9, 3.0]  # beyond 7 * 2**15: e = 15, codes clip to +-7
    q, deq = quant.quantize({"w": jnp.asarray(x)}, jax.random.PRNGKey(0), layout)
    assert np.asarray(q.exps["w"])[:2].tolist() == [15, -126]
    assert np.asarray(q.codes["w"])[:3].tolist() == [7, -7, 0]
    assert not np.asarray(deq["w"])[1].any()


def test_stochastic_rounding_is_unbiased():
    """Mean over 4000 keys of c * 2**e matches x to within 5 standard errors; round-to-nearest does not."""
    rng = np.random.default_rng(123)
    x = rng.uniform(-6.9, 6.9, size=(4, G)).astype(np.float32)
    x[:, 0] = 7.0  # pins e = 0 so every sample uses the same grid
    x[:, 1:9] = [0.3, -0.3, 0.05, -0.05, 6.5, -6.5, 0.5, 1e-3]
    n = 4000

    def one(k):
        return quant.quantize_tensor(jnp.asarray(x), k, G)[2]

    samples = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(7), n)))
    frac = x - np.floor(x)
    se = np.sqrt(frac * (1 - frac) / n) + 1e-6
    z = (samples.mean(axis=0) - x) / se
    assert np.abs(z).max() < 5.0, f"max |z| = {np.abs(z).max():.2f}"
    assert abs((samples.mean(axis=0) - x).mean()) < 5 * np.sqrt(0.25 / (n * x.size))  # no global bias
    assert set(np.unique(samples - np.floor(x))) <= {0.0, 1.0}  # only the two neighbours
    nearest = np.asarray(quant.quantize_tensor(jnp.asarray(x), None, G)[2])
    assert np.abs((nearest - x) / se).max() > 50  # the test can tell a biased rounding


def _accumulated_error(error_feedback: bool, steps: int = 400) -> np.ndarray:
    """max over coordinates of |sum of quantized updates - sum of true updates| after each step."""
    rng = np.random.default_rng(5)
    shape = (16, 128)
    ups = rng.standard_normal((steps, *shape)).astype(np.float32) * 1e-3
    ups[:, :, 0] = 0.05  # one large value per group: small ones sit below half a step
    tx = quant.quantizer(G, 4, error_feedback, seed=3)
    state = tx.init({"w": jnp.zeros(shape)})

    def body(carry, u):
        st, err = carry
        out, st = tx.update({"w": u}, st)
        err = err + out["w"] - u
        return (st, err), jnp.max(jnp.abs(err))

    _, curve = jax.jit(lambda s, u: jax.lax.scan(body, (s, jnp.zeros(shape)), u))(state, jnp.asarray(ups))
    return np.asarray(curve)


def test_error_feedback_keeps_accumulated_error_bounded():
    step = 2.0**-7  # e for a group whose max is 0.05 with qmax 7
    with_ef = _accumulated_error(True)
    without = _accumulated_error(False)
    assert with_ef.max() <= 2 * step, with_ef.max()  # never more than the last rounding (+ float slack)
    assert with_ef[-100:].max() <= with_ef[:100].max() * 1.5  # does not grow
    assert without[-1] > 5 * with_ef.max(), (without[-1], with_ef.max())  # random walk drifts
    assert without[-1] > without[50] * 1.5


def test_one_quantizer_per_step_and_per_block():
    """The block quantizer is the same transform on a Layout: its wire codes, applied by the rule, are exactly
    the update it returns, and with error feedback the residual is what it did not deliver."""
    rng = np.random.default_rng(fresh_seed())
    layout = Layout.from_shapes(SHAPES, S, G)
    params = {k: jnp.zeros(v) for k, v in SHAPES.items()}
    tx = quant.quantizer(layout, 4, True, seed=4)
    st = tx.init(params)
    for _ in range(2):
        u = {k: jnp.asarray(v) for k, v in random_delta(rng).items()}
        out, st2 = tx.update(u, st)
        q = quant.last_codes(st2)
        applied = quant.apply_update(params, q, layout)
        for k in SHAPES:
            assert np.array_equal(np.asarray(applied[k]), np.asarray(quant.flush(out[k]))), k
            want = np.asarray(u[k]) + np.asarray(st.residual[k]) - np.asarray(out[k])
            assert np.array_equal(np.asarray(st2.residual[k]), want), k
        st = st2
    with pytest.raises(ValueError, match="Layout"):
        quant.last_codes(quant.quantizer(G, 4, True, 0).init(params))


def test_pack_update_matches_host_and_roundtrips():
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    layout = Layout.from_shapes(SHAPES, S, G)
    theta = {k: v * 1e10 for k, v in random_delta(rng).items()}
    delta = random_delta(rng)
    q, _ = quant.quantize({k: jnp.asarray(v) for k, v in delta.items()}, jax.random.PRNGKey(seed), layout)
    buf = quant.pack_update(q, layout)
    exps = np.concatenate([np.asarray(q.exps[t.path]).reshape(t.n_leaves, -1) for t in layout.tensors])
    codes = np.concatenate([np.asarray(q.codes[t.path]).reshape(t.n_leaves, -1) for t in layout.tensors])
    assert np.array_equal(buf, U.pack_leaves(exps, codes)), f"seed={seed}"
    # end to end: the device result equals the host rule applied to the wire bytes
    dev = quant.apply_update({k: jnp.asarray(v) for k, v in theta.items()}, q, layout)
    e_h, c_h = U.unpack_leaves(buf, S, G)
    host = from_leaves(U.apply_leaves(to_leaves(theta, layout), e_h, c_h), layout)
    for k in SHAPES:
        assert np.array_equal(np.asarray(dev[k]).view(np.uint32), host[k].view(np.uint32)), f"seed={seed} {k}"
    q8, _ = quant.quantize({k: jnp.asarray(v) for k, v in delta.items()}, jax.random.PRNGKey(0), layout, 8)
    with pytest.raises(ValueError):
        quant.pack_update(q8, layout)


def test_flush_params_and_all_finite():
    x = np.array([-0.0, 1e-45, -1e-40, 1.0, -2.0], np.float32)
    y = np.asarray(quant.flush_params({"x": jnp.asarray(x)})["x"])
    assert y.view(np.uint32).tolist() == [0, 0, 0, 0x3F800000, 0xC0000000]
    assert bool(quant.all_finite({"x": jnp.asarray(x), "y": jnp.ones(3)}))
    assert not bool(quant.all_finite({"x": jnp.asarray(x), "y": jnp.array([1.0, jnp.nan])}))


def test_transforms_jit_and_keep_sharding():
    """8 fake CPU devices: sharded params in -> same sharding out, same bits as unsharded."""
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    specs = {"w": PartitionSpec("data", "model"), "v": PartitionSpec("model", None), "b": PartitionSpec()}
    shapes = {"w": (32, 256), "v": (8, 100), "b": (70,)}
    rng = np.random.default_rng(2)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    sh = {k: NamedSharding(mesh, specs[k]) for k in shapes}
    p_sh = {k: jax.device_put(v, sh[k]) for k, v in params.items()}
    g_sh = {k: jax.device_put(v, sh[k]) for k, v in grads.items()}
    tx = optax.chain(optax.adamw(1e-3), quant.quantizer(G, 4, True, seed=1))

    @jax.jit
    def step(p, g):
        st = tx.init(p)
        u, st = tx.update(g, st, p)
        return optax.apply_updates(p, u), u

    new_sh, u_sh = step(p_sh, g_sh)
    new_1, u_1 = step(params, grads)
    for k in shapes:
        assert new_sh[k].sharding.is_equivalent_to(sh[k], len(shapes[k])), k
        assert u_sh[k].sharding.is_equivalent_to(sh[k], len(shapes[k])), k
        assert np.array_equal(np.asarray(u_sh[k]), np.asarray(u_1[k])), k
        assert np.array_equal(np.asarray(new_sh[k]), np.asarray(new_1[k])), k

    layout = Layout.from_shapes(shapes, S, G)

    @jax.jit
    def block(p, d, key):
        q, deq = quant.quantize(d, key, layout)
        return quant.apply_update(p, q, layout), deq

    key = jax.random.PRNGKey(3)
    out_sh, deq_sh = block(p_sh, g_sh, key)
    out_1, deq_1 = block(params, grads, key)
    for k in shapes:
        assert out_sh[k].sharding.is_equivalent_to(sh[k], len(shapes[k])), k
        assert np.array_equal(np.asarray(out_sh[k]).view(np.uint32), np.asarray(out_1[k]).view(np.uint32)), k
        assert np.array_equal(np.asarray(deq_sh[k]), np.asarray(deq_1[k])), k


def test_init_on_abstract_inputs():
    """As optax's sharding tests do: init works on ShapeDtypeStruct (eval_shape)."""
    tx = quant.quantizer(G, 4, True, seed=0)
    abstract = {"w": jax.ShapeDtypeStruct((4, 64), jnp.float32)}
    st = jax.eval_shape(tx.init, abstract)
    assert st.residual["w"].shape == (4, 64) and jnp.issubdtype(st.inner.key.dtype, jax.dtypes.prng_key)
