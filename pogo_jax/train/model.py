"""GPT-style byte-level decoder in Flax NNX, plus the flat parameter view PoGO commits to.

Parameters are float32 master weights; ``compute_dtype`` (bfloat16 on accelerators) applies only to
matmul operands and activations, while logits and the loss stay float32 so that every verifier sees
the same loss definition. Each Param carries logical axis names (``vocab``, ``embed``, ``qkv``,
``heads``, ``head_dim``, ``mlp``, ``norm``, ``length``) and nothing else: the mapping to mesh axes
lives only in ``cfg.mesh.rules`` (see ``pogo_jax.sharding``).

Parameter names (``param_dict`` keys, joined by ``/``)::

    embed/embedding      (vocab, d_model)          ("vocab", "embed")
    pos/embedding        (seq_len, d_model)        ("length", "embed")
    blocks/<i>/ln1/scale|bias, ln2/scale|bias       ("norm",)
    blocks/<i>/attn/qkv/kernel  (d_model, 3, heads, head_dim)
    blocks/<i>/attn/qkv/bias    (3, heads, head_dim)
    blocks/<i>/attn/out/kernel  (heads, head_dim, d_model),  attn/out/bias (d_model,)
    blocks/<i>/mlp/fc/kernel    (d_model, d_ff),  mlp/fc/bias (d_ff,)
    blocks/<i>/mlp/proj/kernel  (d_ff, d_model),  mlp/proj/bias (d_model,)
    ln_f/scale|bias
    head/kernel          (d_model, vocab)          only when tie_embeddings is false
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pogo_jax.config import ModelConfig
from pogo_jax.errors import UserError
from pogo_jax.pytree import flatten_params, path_name

_INIT_STD = 0.02


def _param(rngs: nnx.Rngs, init, shape: Sequence[int], names: tuple[str, ...]) -> nnx.Param:
    """A float32 Param with logical axis names; sharding is applied later from the mesh rules."""
    init = nnx.with_partitioning(init, names, eager_sharding=False)
    return nnx.Param(init(rngs.params(), tuple(shape), jnp.float32))


def _dtype(cfg: ModelConfig):
    return jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else jnp.float32


class LayerNorm(nnx.Module):
    """Pre-norm LayerNorm; statistics in float32 whatever the compute dtype."""

    def __init__(self, d: int, *, rngs: nnx.Rngs, eps: float = 1e-5):
        self.scale = _param(rngs, nnx.initializers.ones, (d,), ("norm",))
        self.bias = _param(rngs, nnx.initializers.zeros, (d,), ("norm",))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        mean = xf.mean(-1, keepdims=True)
        var = jnp.square(xf - mean).mean(-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


class Attention(nnx.Module):
    """Causal multi-head attention through ``jax.nn.dot_product_attention`` (fused on GPU)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, h, hd = cfg.d_model, cfg.n_heads, cfg.head_dim
        out_std = _INIT_STD / math.sqrt(2 * cfg.n_layers)
        self.qkv = nnx.Dict(
            kernel=_param(
                rngs, nnx.initializers.normal(_INIT_STD), (d, 3, h, hd), ("embed", "qkv", "heads", "head_dim")
            ),
            bias=_param(rngs, nnx.initializers.zeros, (3, h, hd), ("qkv", "heads", "head_dim")),
        )
        self.out = nnx.Dict(
            kernel=_param(rngs, nnx.initializers.normal(out_std), (h, hd, d), ("heads", "head_dim", "embed")),
            bias=_param(rngs, nnx.initializers.zeros, (d,), ("norm",)),
        )
        self.implementation = None if cfg.attention_impl == "auto" else cfg.attention_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        qkv = jnp.einsum("btd,dknh->btknh", x, self.qkv["kernel"][...].astype(dt))
        qkv = qkv + self.qkv["bias"][...].astype(dt)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, heads, head_dim)
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=self.implementation)
        y = jnp.einsum("btnh,nhd->btd", y, self.out["kernel"][...].astype(dt))
        return y + self.out["bias"][...].astype(dt)


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        out_std = _INIT_STD / math.sqrt(2 * cfg.n_layers)
        self.fc = nnx.Dict(
            kernel=_param(
                rngs, nnx.initializers.normal(_INIT_STD), (cfg.d_model, cfg.d_ff), ("embed", "mlp")
            ),
            bias=_param(rngs, nnx.initializers.zeros, (cfg.d_ff,), ("mlp",)),
        )
        self.proj = nnx.Dict(
            kernel=_param(rngs, nnx.initializers.normal(out_std), (cfg.d_ff, cfg.d_model), ("mlp", "embed")),
            bias=_param(rngs, nnx.initializers.zeros, (cfg.d_model,), ("norm",)),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        h = x @ self.fc["kernel"][...].astype(dt) + self.fc["bias"][...].astype(dt)
        h = jax.nn.gelu(h)
        return h @ self.proj["kernel"][...].astype(dt) + self.proj["bias"][...].astype(dt)


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.ln1 = LayerNorm(cfg.d_model, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.ln2 = LayerNorm(cfg.d_model, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def _block_forward(block: Block, x: jax.Array) -> jax.Array:
    return block(x)


_block_forward_remat = nnx.remat(_block_forward)


class GPT(nnx.Module):
    """Decoder-only transformer over byte tokens; returns float32 logits (B, T, vocab)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Dict(
            embedding=_param(
                rngs, nnx.initializers.normal(_INIT_STD), (cfg.vocab_size, cfg.d_model), ("vocab", "embed")
            )
        )
        self.pos = nnx.Dict(
            embedding=_param(
                rngs, nnx.initializers.normal(_INIT_STD), (cfg.seq_len, cfg.d_model), ("length", "embed")
            )
        )
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.ln_f = LayerNorm(cfg.d_model, rngs=rngs)
        if not cfg.tie_embeddings:
            self.head = nnx.Dict(
                kernel=_param(
                    rngs,
                    nnx.initializers.normal(_INIT_STD),
                    (cfg.d_model, cfg.vocab_size),
                    ("embed", "vocab"),
                )
            )

    def features(self, tokens: jax.Array) -> jax.Array:
        """Final-norm hidden states (B, T, d_model) in the compute dtype: what the output head reads."""
        cfg = self.cfg
        t = tokens.shape[-1]
        if t > cfg.seq_len:
            raise ValueError(f"sequence length {t} exceeds model.seq_len {cfg.seq_len}")
        dt = _dtype(cfg)
        table = self.embed["embedding"][...]
        x = (jnp.take(table, tokens.astype(jnp.int32), axis=0) + self.pos["embedding"][...][:t]).astype(dt)
        forward = _block_forward_remat if cfg.remat else _block_forward
        for block in self.blocks:
            x = forward(block, x)
        return self.ln_f(x)

    def head_weight(self) -> jax.Array:
        """The output projection in the compute dtype: (vocab, d_model) when tied, else (d_model, vocab).

        Separate from ``features`` so a training loss can cast it once and apply it to slices of the
        sequence (``head_logits``) without ever holding the full (B, T, vocab) logits.
        """
        return self.head_param().astype(_dtype(self.cfg))

    def head_param(self) -> jax.Array:
        """The float32 parameter behind ``head_weight``: the token embedding when tied, else ``head/kernel``."""
        return self.embed["embedding"][...] if self.cfg.tie_embeddings else self.head["kernel"][...]

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return head_logits(self.features(tokens), self.head_weight(), self.cfg.tie_embeddings)


def head_logits(x: jax.Array, w: jax.Array, tied: bool) -> jax.Array:
    """Float32 logits (..., T, vocab) of hidden states ``x``: compute-dtype operands, float32 accumulation."""
    if tied:
        return jnp.einsum("btd,vd->btv", x, w, preferred_element_type=jnp.float32)
    return jnp.einsum("btd,dv->btv", x, w, preferred_element_type=jnp.float32)


# --------------------------------------------------------------------------------------------
# Flat parameter view: the canonical names PoGO commits to (PROTOCOL section 1)


def param_dict(model: nnx.Module) -> dict[str, jax.Array]:
    """All float32 params keyed by their ``/``-joined path, sorted by UTF-8 bytes of the name."""
    flat = flatten_params(nnx.state(model, nnx.Param))
    return {k: flat[k] for k in sorted(flat, key=lambda s: s.encode())}


def check_flat(expected: dict[str, tuple[int, ...]], flat: dict[str, object]) -> None:
    """UserError unless ``flat`` has exactly the expected names and shapes."""
    missing = sorted(set(expected) - set(flat))
    extra = sorted(set(flat) - set(expected))
    if missing:
        raise UserError(
            f"parameter '{missing[0]}' is missing ({len(missing)} missing); "
            "the parameters come from another model config"
        )
    if extra:
        raise UserError(
            f"unknown parameter '{extra[0]}' ({len(extra)} extra); "
            "the parameters come from another model config"
        )
    for name, shape in expected.items():
        got = tuple(np.shape(flat[name]))
        if got != tuple(shape):
            raise UserError(f"parameter '{name}' has shape {got}, the model needs {tuple(shape)}")


def unflatten_like(template, flat: dict[str, object]):
    """Rebuild a nested pytree shaped like ``template`` (pure dict) from a flat name->array dict."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [flat[path_name(p)] for p, _ in paths])


def set_params(model: nnx.Module, flat: dict[str, jax.Array]) -> None:
    """Replace every Param of ``model`` in place (float32, same names and shapes, else UserError).

    Arrays keep whatever sharding they carry; callers that need the mesh layout put them first.
    """
    state = nnx.state(model, nnx.Param)
    current = flatten_params(state)
    check_flat({k: tuple(v.shape) for k, v in current.items()}, flat)
    pure = unflatten_like(nnx.to_pure_dict(state), {k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def abstract_model(cfg: ModelConfig) -> GPT:
    """The model with ShapeDtypeStruct leaves (no memory allocated)."""
    return nnx.eval_shape(lambda: GPT(cfg, rngs=nnx.Rngs(0)))


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every param, computed without allocating (``nnx.eval_shape``)."""
    flat = param_dict(abstract_model(cfg))
    return {k: tuple(v.shape) for k, v in flat.items()}


def param_count(cfg: ModelConfig) -> int:
    """Exact number of parameters, analytically (works for 175B-parameter configs)."""
    d, f, v, L = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_layers
    per_block = (
        2 * 2 * d  # ln1, ln2
        + d * 3 * d
        + 3 * d  # qkv kernel + bias (heads * head_dim == d)
        + d * d
        + d  # out
        + d * f
        + f  # fc
        + f * d
        + d  # proj
    )
    total = v * d + cfg.seq_len * d + L * per_block + 2 * d
    if not cfg.tie_embeddings:
        total += d * v
    return total


def matmul_param_count(cfg: ModelConfig) -> int:
    """Parameters that take part in a per-token matmul: block weights plus the output head."""
    d, f = cfg.d_model, cfg.d_ff
    return cfg.n_layers * (4 * d * d + 2 * d * f) + d * cfg.vocab_size


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token (forward + backward), PaLM appendix B convention.

    ``6 * N`` with N the matmul parameters (blocks and the output head, counted once even when
    tied; embeddings lookups, norms and biases excluded) plus attention ``12 * L * T * d_model``
    (QK^T and AV, forward and backward, not discounted for the causal mask).
    """
    return 6.0 * matmul_param_count(cfg) + 12.0 * cfg.n_layers * cfg.seq_len * cfg.d_model
