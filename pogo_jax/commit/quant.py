"""4-bit group quantization on device: the quantizer, the apply rule, the wire packing, optax transforms.

PROTOCOL section 3 fixes only what verifiers check: groups of ``G`` values share an exponent
``e`` in [-126, 15], codes are in {-7..7}, and ``theta' = flush(theta + c * 2**e)``. How codes are
chosen is the miner's business; here it is the smallest exponent that fits the group's largest
magnitude and stochastic rounding from an explicit key, optionally with error feedback.

Groups are always ``G`` consecutive values of a tensor flattened in C order (leaves start at a
tensor's first value and ``S`` is a multiple of ``G``, so these are exactly the wire groups).
When a tensor's last dimension is a multiple of ``G`` the groups are computed by splitting that
axis, which keeps the tensor's sharding; otherwise the tensor is flattened and padded.

``apply_update`` must give the same bits as ``pogo_jax.spec.update.apply_leaves`` on every
backend: ``2**e`` is built from its bits, ``c * 2**e`` is exact (so a fused multiply-add rounds
exactly like a separate add, openxla/xla#41579 notwithstanding), and flushing works on the bit
pattern because XLA:CPU flushes subnormals while NVIDIA GPUs keep them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pogo_jax.spec import update as host
from pogo_jax.spec.layout import Layout

E_MIN = host.E_MIN
E_MAX = host.E_MAX


class QuantizedUpdate(NamedTuple):
    """Per tensor (keyed by layout path): int8 exponents ``(n_leaves_t * S // G,)`` and int8 codes
    ``(n_leaves_t * S,)``, padding included (padding codes 0, all-padding groups exponent -126)."""

    exps: dict[str, jax.Array]
    codes: dict[str, jax.Array]


def qmax_for(bits: int) -> int:
    """Largest code magnitude for signed ``bits``-bit codes without the asymmetric minimum."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8], got {bits}")
    return 2 ** (bits - 1) - 1


# ---------------------------------------------------------------------------------------------
# bit-level helpers


def pow2(e: jax.Array) -> jax.Array:
    """``2**e`` (float32) for integer ``e`` in [-127, 127] from its bits; never exp2/pow/ldexp."""
    field = (e.astype(jnp.int32) + 127) << 23
    return jax.lax.bitcast_convert_type(field, jnp.float32)


def flush(x: jax.Array) -> jax.Array:
    """By bits: exponent field 0 (subnormal, -0.0) -> +0.0. Same bits on CPU, GPU and TPU."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    bits = jnp.where((bits & jnp.uint32(0x7F800000)) == 0, jnp.uint32(0), bits)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def flush_params(params: Any) -> Any:
    """Pass a state (genesis included) through the flush so it holds no subnormal and no -0.0."""
    return jax.tree.map(flush, params)


def all_finite(params: Any) -> jax.Array:
    """True when no value of any leaf is NaN or +-Inf (a committed state must be finite)."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


# ---------------------------------------------------------------------------------------------
# group views: (..., G) arrays whose rows are the C-order groups of a tensor


def _groups(x: jax.Array, g: int) -> jax.Array:
    """View ``x`` as ``(..., G)`` groups; splits the last axis when it can (keeps sharding)."""
    if x.ndim >= 1 and x.shape[-1] % g == 0:
        return x.reshape(*x.shape[:-1], x.shape[-1] // g, g)
    flat = x.reshape(-1)
    pad = (-flat.shape[0]) % g
    return jnp.pad(flat, (0, pad)).reshape(-1, g)


def _ungroup(xg: jax.Array, shape: tuple[int, ...], g: int) -> jax.Array:
    size = int(np.prod(shape, dtype=np.int64))
    if len(shape) >= 1 and shape[-1] % g == 0:
        return xg.reshape(shape)
    return xg.reshape(-1)[:size].reshape(shape)


def _quantize_groups(xg: jax.Array, key: jax.Array | None, qmax: int) -> tuple[jax.Array, jax.Array]:
    """Exponents ``xg.shape[:-1]`` (int32) and codes ``xg.shape`` (int8) for groups ``xg``.

    ``e`` is the smallest exponent in [-126, 15] with ``max|x| <= qmax * 2**e`` (found from a log2
    guess and corrected with exact comparisons); an all-zero group gets -126.
    """
    x = jnp.where(jnp.isfinite(xg), xg, 0.0).astype(jnp.float32)
    m = jnp.max(jnp.abs(x), axis=-1)
    guess = jnp.ceil(jnp.log2(jnp.maximum(m, 2.0**-126) / qmax))  # a normal floor: no log2(0)
    e = jnp.clip(guess, E_MIN, E_MAX).astype(jnp.int32)
    qm = jnp.float32(qmax)
    e = jnp.where((m > qm * pow2(e)) & (e < E_MAX), e + 1, e)
    e = jnp.where((m <= qm * pow2(e - 1)) & (e > E_MIN), e - 1, e)
    e = jnp.where(m > qm * pow2(e), jnp.minimum(e + 1, E_MAX), e)  # second guard: log2 off by two
    y = x * pow2(-e)[..., None]  # exact scaling by a power of two
    if key is None:
        c = jnp.round(y)
    else:
        lo = jnp.floor(y)
        u = jax.random.uniform(key, y.shape, dtype=jnp.float32)
        c = lo + (u < (y - lo)).astype(jnp.float32)  # E[c] = y
    return e, jnp.clip(c, -qmax, qmax).astype(jnp.int8)


def _dequantize_groups(e: jax.Array, codes: jax.Array) -> jax.Array:
    return codes.astype(jnp.float32) * pow2(e)[..., None]


def quantize_tensor(x: jax.Array, key: jax.Array | None, group_size: int, bits: int = 4
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One tensor -> (exps int8 (n_groups,), codes int8 (n_groups*G,), exact dequantized x)."""
    xg = _groups(x.astype(jnp.float32), group_size)
    e, c = _quantize_groups(xg, key, qmax_for(bits))
    d = _ungroup(_dequantize_groups(e, c), x.shape, group_size)
    return e.reshape(-1).astype(jnp.int8), c.reshape(-1), d


# ---------------------------------------------------------------------------------------------
# the wire-layout update (per tensor, padded to whole leaves)


def _pad_to(x: jax.Array, n: int, value: int) -> jax.Array:
    return jnp.pad(x, (0, n - x.shape[0]), constant_values=value) if n > x.shape[0] else x


@functools.partial(jax.jit, static_argnames=("layout", "bits", "stochastic"))
def quantize(delta: Mapping[str, jax.Array], key: jax.Array, layout: Layout, bits: int = 4,
             stochastic: bool = True) -> tuple[QuantizedUpdate, dict[str, jax.Array]]:
    """Quantize ``{path: delta}`` to the group format; returns the update and its exact value.

    The stochastic key for tensor ``i`` (canonical order) is ``fold_in(key, i)``.
    """
    s, g = layout.leaf_size, layout.group_size
    exps, codes, deq = {}, {}, {}
    for i, t in enumerate(layout.tensors):
        x = delta[t.path]
        if tuple(x.shape) != t.shape:
            raise ValueError(f"{t.path}: delta shape {tuple(x.shape)} != layout shape {t.shape}")
        k = jax.random.fold_in(key, i) if stochastic else None
        e, c, d = quantize_tensor(x, k, g, bits)
        exps[t.path] = _pad_to(e, t.n_leaves * s // g, E_MIN)
        codes[t.path] = _pad_to(c, t.n_leaves * s, 0)
        deq[t.path] = d
    return QuantizedUpdate(exps, codes), deq


def _tensor_delta(e: jax.Array, c: jax.Array, shape: tuple[int, ...], g: int) -> jax.Array:
    size = int(np.prod(shape, dtype=np.int64))
    if len(shape) >= 1 and shape[-1] % g == 0:
        gshape = (*shape[:-1], shape[-1] // g)
        return _dequantize_groups(e[: size // g].reshape(gshape), c[:size].reshape(*gshape, g)).reshape(shape)
    ng = -(-size // g)
    return _dequantize_groups(e[:ng], c[: ng * g].reshape(ng, g)).reshape(-1)[:size].reshape(shape)


@functools.partial(jax.jit, static_argnames=("layout",))
def apply_update(params: Mapping[str, jax.Array], q: QuantizedUpdate, layout: Layout) -> dict[str, jax.Array]:
    """PROTOCOL 3 on device: ``flush(flush(theta) + c * 2**e)`` per value; jit-able, keeps sharding.

    Does not check finiteness (that needs a host sync): callers check ``all_finite`` on the result.
    """
    g = layout.group_size
    out = {}
    for t in layout.tensors:
        theta = params[t.path]
        d = _tensor_delta(q.exps[t.path], q.codes[t.path], t.shape, g)
        out[t.path] = flush(flush(theta) + d)
    return out


def pack_update(q: QuantizedUpdate, layout: Layout) -> np.ndarray:
    """Wire leaves ``(n_leaves, S/G + S/2)`` uint8 in canonical order; nibbles packed on device."""
    s, g = layout.leaf_size, layout.group_size
    width = host.update_leaf_bytes(s, g)
    parts = []
    for t in layout.tensors:
        if t.n_leaves == 0:
            continue
        c = q.codes[t.path]
        if int(jnp.max(jnp.abs(c.astype(jnp.int32)))) > host.CODE_MAX:
            raise ValueError(f"{t.path}: codes outside [-7, 7] cannot be sent (bits > 4 is ablation only)")
        parts.append(_pack_tensor(q.exps[t.path], c, t.n_leaves, s, g))
    if not parts:
        return np.zeros((0, width), dtype=np.uint8)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _pack_tensor(e: jax.Array, c: jax.Array, n: int, s: int, g: int) -> jax.Array:
    eb = jax.lax.bitcast_convert_type(e.astype(jnp.int8), jnp.uint8).reshape(n, s // g)
    nib = jax.lax.bitcast_convert_type(c.astype(jnp.int8), jnp.uint8).reshape(n, s // 2, 2) & jnp.uint8(0x0F)
    return jnp.concatenate([eb, nib[..., 0] | (nib[..., 1] << 4)], axis=1)


# ---------------------------------------------------------------------------------------------
# optax transforms: one quantizer and one error-feedback wrapper, used per step and per block


class WireQuantState(NamedTuple):
    """``key``: typed PRNG key, split once per update; ``codes``: the last update in wire form (kept only
    when the transform was built on a ``Layout``, which is how a block finish reads what to publish)."""

    key: jax.Array
    codes: QuantizedUpdate | tuple


def _leaf_keys(key: jax.Array, tree: Any) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    keys = list(jax.random.split(key, max(len(leaves), 1)))[: len(leaves)]
    return jax.tree.unflatten(treedef, keys)


def wire_quantize(layout_or_group_size: Layout | int = 64, bits: int = 4, stochastic: bool = True,
                  seed: int = 0) -> optax.GradientTransformation:
    """Replace each update by its exact group-quantized value (``G`` values share a power of two).

    On a ``Layout`` the updates are the flat ``{path: array}`` state of that layout and the codes of
    the last update are kept in the state in wire form (``WireQuantState.codes``): that is the block
    quantizer. On a group size it works on any pytree of float32 leaves (the per-step quantizer at the
    end of an optax chain). Randomness is a typed key in the state, split once per update and then per
    tensor, as in optax's noise transforms. Compose with ``error_feedback`` to carry the rounding.
    """
    lg = layout_or_group_size
    layout = lg if isinstance(lg, Layout) else None
    g = lg.group_size if layout is not None else int(lg)
    qmax_for(bits)

    def init_fn(params: optax.Params) -> WireQuantState:
        del params
        if layout is None:
            return WireQuantState(jax.random.key(seed), ())
        s = layout.leaf_size
        zeros = QuantizedUpdate({t.path: jnp.zeros((t.n_leaves * s // g,), jnp.int8) for t in layout.tensors},
                                {t.path: jnp.zeros((t.n_leaves * s,), jnp.int8) for t in layout.tensors})
        return WireQuantState(jax.random.key(seed), zeros)  # same structure as after an update: one compile

    def update_fn(updates: optax.Updates, state: WireQuantState, params: optax.Params | None = None):
        del params
        key, sub = jax.random.split(state.key)
        if layout is not None:
            q, out = quantize(updates, sub, layout, bits, stochastic)
            return out, WireQuantState(key, q)
        keys = _leaf_keys(sub, updates)

        def one(u, k):
            return quantize_tensor(u, k if stochastic else None, g, bits)[2].astype(u.dtype)

        return jax.tree.map(one, updates, keys), WireQuantState(key, ())

    return optax.GradientTransformation(init_fn, update_fn)


class ErrorFeedbackState(NamedTuple):
    inner: optax.OptState
    residual: optax.Updates


def error_feedback(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap any lossy transform: feed ``u + r`` to ``inner`` and keep ``r = (u + r) - inner(u + r)``."""

    def init_fn(params: optax.Params) -> ErrorFeedbackState:
        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        return ErrorFeedbackState(inner.init(params), zeros)

    def update_fn(updates: optax.Updates, state: ErrorFeedbackState, params: optax.Params | None = None):
        target = jax.tree.map(jnp.add, updates, state.residual)
        out, inner_state = inner.update(target, state.inner, params)
        return out, ErrorFeedbackState(inner_state, jax.tree.map(jnp.subtract, target, out))

    return optax.GradientTransformation(init_fn, update_fn)


def quantizer(layout_or_group_size: Layout | int, bits: int, error_feedback_on: bool, seed: int,
              stochastic: bool = True) -> optax.GradientTransformation:
    """``wire_quantize``, wrapped in ``error_feedback`` when asked: the one recipe for step and block."""
    tx = wire_quantize(layout_or_group_size, bits, stochastic, seed)
    return error_feedback(tx) if error_feedback_on else tx


def last_codes(state: optax.OptState) -> QuantizedUpdate:
    """The wire codes of the last update of a (possibly error-feedback wrapped) layout quantizer."""
    inner = state.inner if isinstance(state, ErrorFeedbackState) else state
    if not isinstance(inner.codes, QuantizedUpdate):
        raise ValueError("this quantizer was not built on a Layout: it keeps no wire codes")
    return inner.codes
