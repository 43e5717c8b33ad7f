"""PoGO block training: K optimizer steps from ``theta_prev``, then one published 4-bit update.

A block trains from the last confirmed state, quantizes the block's net change to the group
format (PROTOCOL section 3) and commits ``theta_next = apply(theta_prev, q)``; the trainer then
continues from ``theta_next`` (its optimizer state is kept), so what is trained is what is
committed. Error feedback carries ``target - (theta_next - theta_prev)`` into the next block, so
rounding, flushes and saturation are not lost but paid back later.

Two styles (``PogoConfig.quant_mode``):

- ``"block"`` (default): plain AdamW inside the block; only the net delta is quantized.
- ``"step"``: ``quant.quantize_updates`` sits at the end of the optax chain, so every step's
  update is already on a power-of-two group grid; the net delta is still quantized for publishing.

docs/quant.md has the measured comparison behind the default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from pogo_jax.commit import quant
from pogo_jax.config import Config, config_from_dict
from pogo_jax.errors import UserError
from pogo_jax.spec.layout import Layout


class BlockQuantState(NamedTuple):
    """Miner-side quantization state carried across blocks: a raw PRNG key and the EF residual."""

    key: jax.Array
    residual: dict[str, jax.Array]


def replicated_key(key: jax.Array, params: dict[str, jax.Array]) -> jax.Array:
    """Place the PRNG key replicated on the params' mesh, as ``_finish`` returns it: otherwise the
    first block's key (no mesh) and later ones (on the mesh) are different jit inputs and the
    block finish compiles twice."""
    sh = next((v.sharding for v in params.values() if isinstance(v, jax.Array)), None)
    if isinstance(sh, NamedSharding):
        return jax.device_put(key, NamedSharding(sh.mesh, PartitionSpec()))
    return key


def init_block_state(params: dict[str, jax.Array], seed: int) -> BlockQuantState:
    """Zero residual with the parameters' shapes (and shardings, for placed arrays)."""

    def zeros(p):
        z = jnp.zeros(p.shape, jnp.float32)
        return jax.device_put(z, p.sharding) if isinstance(p, jax.Array) else z

    return BlockQuantState(replicated_key(jax.random.PRNGKey(seed), params), {k: zeros(v) for k, v in params.items()})


@functools.partial(jax.jit, static_argnames=("layout", "bits", "error_feedback"))
def _finish(theta_prev, theta_trained, state, layout, bits, error_feedback):
    key, sub = jax.random.split(state.key)
    target = {k: theta_trained[k] - theta_prev[k] for k in theta_prev}
    if error_feedback:
        target = {k: target[k] + state.residual[k] for k in target}
    q, _ = quant.quantize(target, sub, layout, bits)
    theta_next = quant.apply_update(theta_prev, q, layout)
    if error_feedback:
        residual = {k: target[k] - (theta_next[k] - theta_prev[k]) for k in target}
    else:
        residual = {k: jnp.zeros_like(v) for k, v in state.residual.items()}
    return q, theta_next, BlockQuantState(key, residual)


def finish_block(theta_prev: dict[str, jax.Array], theta_trained: dict[str, jax.Array],
                 state: BlockQuantState, layout: Layout, bits: int = 4, error_feedback: bool = True
                 ) -> tuple[quant.QuantizedUpdate, dict[str, jax.Array], BlockQuantState]:
    """Quantize ``theta_trained - theta_prev (+ residual)`` and apply it to ``theta_prev``.

    ``theta_prev`` must be a committed state (flushed, finite). Raises ``UserError`` when the
    trained parameters are not finite (nothing worth committing; the run should lower the lr).
    """
    if not bool(quant.all_finite(theta_trained)):
        raise UserError("trained parameters hold NaN or Inf: the block diverged; lower optim.lr")
    return _finish(dict(theta_prev), dict(theta_trained), state, layout, bits, error_feedback)


# ----------------------------------------------------------------------------------- the driver


def override_config(cfg: Config, **sections: dict[str, Any]) -> Config:
    """``override_config(cfg, pogo={"bits": 2})``: a validated copy with some section keys changed."""
    raw = cfg.to_dict()
    for name, changes in sections.items():
        raw[name] = {**raw[name], **changes}
    return config_from_dict(raw)



def make_trainer(cfg: Config, mesh=None, seed: int | None = None):
    """A ``train.Trainer`` whose optax chain ends with the per-step quantizer in ``"step"`` mode."""
    from pogo_jax.train.model import param_shapes
    from pogo_jax.train.step import Trainer

    p = cfg.pogo
    extra = None
    if p.quant_mode == "step":
        layout = Layout.from_shapes(param_shapes(cfg.model), p.leaf_size, p.group_size)
        extra = quant.quantize_updates(layout, p.bits, stochastic=True,
                                       seed=cfg.train.seed if seed is None else seed,
                                       error_feedback=p.error_feedback)
    return Trainer(cfg, mesh, extra)


@dataclass
class BlockResult:
    q: quant.QuantizedUpdate
    theta_prev: dict[str, jax.Array]
    theta_next: dict[str, jax.Array]
    train_losses: list[float]
    zero_leaves: int  # update leaves whose codes are all zero (the sparse form skips them)
    residual_rms: float


class BlockMiner:
    """Runs PoGO blocks on a ``Trainer``: the committed state lives in ``theta`` (flushed genesis first)."""

    def __init__(self, cfg: Config, mesh=None, trainer: Any = None, seed: int | None = None):
        from pogo_jax.train.model import param_shapes

        self.cfg = cfg
        p = cfg.pogo
        self.layout = Layout.from_shapes(param_shapes(cfg.model), p.leaf_size, p.group_size)
        self.trainer = trainer if trainer is not None else make_trainer(cfg, mesh, seed)
        seed = cfg.train.seed if seed is None else seed
        self.theta = quant.flush_params(self.trainer.params())  # genesis passes through the flush
        self.trainer.set_params(_copy(self.theta))
        self.state = init_block_state(self.theta, seed + 1)

    def run_block(self, ds, steps: int | None = None) -> BlockResult:
        """Train ``steps`` (default ``pogo.block_steps``) from ``theta``, commit, continue from it."""
        p = self.cfg.pogo
        metrics = self.trainer.train_steps(ds, p.block_steps if steps is None else steps)
        theta_prev = self.theta
        q, theta_next, self.state = finish_block(theta_prev, self.trainer.params(), self.state, self.layout,
                                                 p.bits, p.error_feedback)
        self.theta = theta_next
        self.trainer.set_params(_copy(theta_next))  # the train step donates its params
        losses = [m["loss"] for m in metrics]
        return BlockResult(q, theta_prev, theta_next, losses, zero_leaves(q, self.layout),
                           residual_rms(self.state))


def _copy(tree: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {k: jnp.copy(v) for k, v in tree.items()}


def zero_leaves(q: quant.QuantizedUpdate, layout: Layout) -> int:
    """How many update leaves have only zero codes."""
    s = layout.leaf_size
    n = 0
    for t in layout.tensors:
        if t.n_leaves:
            n += int(jnp.sum(~jnp.any(q.codes[t.path].reshape(t.n_leaves, s) != 0, axis=1)))
    return n


def residual_rms(state: BlockQuantState) -> float:
    sq = sum(float(jnp.sum(jnp.square(r))) for r in state.residual.values())
    n = sum(int(np.prod(r.shape)) for r in state.residual.values())
    return float(np.sqrt(sq / max(n, 1)))
