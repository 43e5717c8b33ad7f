"""PoGO block training: K optimizer steps from ``theta_prev``, then one published 4-bit update.

A block trains from the last confirmed state, quantizes the block's net change to the group
format (PROTOCOL section 3) and commits ``theta_next = apply(theta_prev, q)``; the trainer then
continues from ``theta_next`` (its optimizer state is kept), so what is trained is what is
committed. ``BlockMiner.run_block`` is the one block loop: ``pogo demo``'s miners, the quality
benchmark and the tests all run it.

The quantizer is the same optax transform in both styles (``MinerConfig.quant_mode``):
``quant.quantizer`` = ``wire_quantize`` wrapped in ``error_feedback``.

- ``"block"`` (default): plain AdamW inside the block; the block's net delta goes through the
  quantizer built on the layout, whose state keeps the wire codes to publish.
- ``"step"``: the quantizer also sits at the end of the optax chain, so every step's update is on a
  power-of-two group grid; the net delta is still quantized for publishing. Two residuals then run,
  and that is meant: each quantization stage carries its own rounding (the step one keeps training
  on the grid, the block one pays back what publishing rounded away).

docs/quant.md has the measured comparison behind the default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from pogo_jax.commit import quant
from pogo_jax.config import Config, config_from_dict
from pogo_jax.errors import UserError
from pogo_jax.spec.layout import Layout


def layout_of(cfg: Config) -> Layout:
    from pogo_jax.train.model import param_shapes

    return Layout.from_shapes(param_shapes(cfg.model), cfg.chain.leaf_size, cfg.chain.group_size)


def override_config(cfg: Config, **sections: dict[str, Any]) -> Config:
    """``override_config(cfg, miner={"bits": 2})``: a validated copy with some section keys changed."""
    raw = cfg.to_dict()
    for name, changes in sections.items():
        raw[name] = {**raw[name], **changes}
    return config_from_dict(raw)


def make_trainer(cfg: Config, mesh=None, seed: int | None = None):  # noqa: ANN001, ANN201 - train.Trainer
    """A ``train.Trainer`` whose optax chain ends with the per-step quantizer in ``"step"`` mode."""
    from pogo_jax.train.step import Trainer

    m = cfg.miner
    extra = None
    if m.quant_mode == "step":
        extra = quant.quantizer(layout_of(cfg).group_size, m.bits, m.error_feedback,
                                cfg.train.seed if seed is None else seed)
    return Trainer(cfg, mesh, extra)


@functools.partial(jax.jit, static_argnames=("tx", "layout"))
def _finish(theta_prev, theta_trained, state, tx, layout):
    target = {k: theta_trained[k] - theta_prev[k] for k in theta_prev}
    _, state = tx.update(target, state)
    q = quant.last_codes(state)
    return q, quant.apply_update(theta_prev, q, layout), state


class BlockQuantizer:
    """The block's quantizer: ``quant.quantizer`` on the layout, its state placed on the params' mesh."""

    def __init__(self, layout: Layout, bits: int = 4, error_feedback: bool = True, seed: int = 0) -> None:
        self.layout = layout
        self.tx = quant.quantizer(layout, bits, error_feedback, seed)

    def init(self, params: dict[str, jax.Array]) -> optax.OptState:
        return _place_like(self.tx.init(dict(params)), params)

    def finish(self, theta_prev: dict[str, jax.Array], theta_trained: dict[str, jax.Array], state: optax.OptState
               ) -> tuple[quant.QuantizedUpdate, dict[str, jax.Array], optax.OptState]:
        """Quantize ``theta_trained - theta_prev`` (+ residual) and apply it to ``theta_prev``.

        ``theta_prev`` must be a committed state (flushed, finite). Raises ``UserError`` when the
        trained parameters are not finite (nothing worth committing; the run should lower the lr).
        """
        if not bool(quant.all_finite(theta_trained)):
            raise UserError("trained parameters hold NaN or Inf: the block diverged; lower optim.lr")
        return _finish(dict(theta_prev), dict(theta_trained), state, self.tx, self.layout)

    def save(self, state: optax.OptState) -> dict[str, np.ndarray]:
        """The state as plain arrays for an npz (typed keys as their key data; codes are not kept)."""
        leaves = jax.tree.leaves(_drop_codes(state))
        return {f"s{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}

    def load(self, arrays: dict[str, np.ndarray], params: dict[str, jax.Array]) -> optax.OptState:
        """Inverse of ``save`` onto the shardings of ``params``."""
        template = _drop_codes(self.init(params))
        leaves, treedef = jax.tree.flatten(template)
        if len(arrays) != len(leaves):
            raise UserError("the saved quantizer state does not match this miner's quantizer settings")
        out = []
        for i, t in enumerate(leaves):
            a = arrays[f"s{i}"]
            out.append(jax.random.wrap_key_data(jnp.asarray(a)) if _is_key(t) else jnp.asarray(a, t.dtype))
        return _place_like(_with_codes(jax.tree.unflatten(treedef, out), self.init(params)), params)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _drop_codes(state: Any) -> Any:
    if isinstance(state, quant.ErrorFeedbackState):
        return state._replace(inner=state.inner._replace(codes=()))
    return state._replace(codes=())


def _with_codes(state: Any, like: Any) -> Any:
    if isinstance(state, quant.ErrorFeedbackState):
        return state._replace(inner=state.inner._replace(codes=like.inner.codes))
    return state._replace(codes=like.codes)


def _place_like(state: Any, params: dict[str, jax.Array]) -> Any:
    """Residuals on their parameter's sharding, the key replicated on the same mesh: otherwise the first
    block's state (no mesh) and later ones (on the mesh) are different jit inputs and compile twice."""

    sh = next((v.sharding for v in params.values() if isinstance(v, jax.Array)), None)
    if not isinstance(sh, NamedSharding):
        return state
    rep = NamedSharding(sh.mesh, PartitionSpec())

    def put(path, x):  # noqa: ANN001, ANN202
        names = [getattr(k, "key", None) for k in path]
        k = next((n for n in names if isinstance(n, str) and n in params), None)
        same = k is not None and tuple(x.shape) == tuple(params[k].shape)
        return jax.device_put(x, params[k].sharding if same else rep)

    return jax.tree_util.tree_map_with_path(put, state)


@dataclass
class BlockResult:
    q: quant.QuantizedUpdate
    theta_prev: dict[str, jax.Array]
    theta_next: dict[str, jax.Array]
    train_losses: list[float]
    zero_leaves: int  # update leaves whose codes are all zero
    residual_rms: float


class BlockMiner:
    """Runs PoGO blocks on a ``Trainer``: the committed state lives in ``theta`` (flushed genesis first)."""

    def __init__(self, cfg: Config, mesh=None, trainer: Any = None, seed: int | None = None):  # noqa: ANN001
        self.cfg = cfg
        m = cfg.miner
        self.layout = layout_of(cfg)
        self.trainer = trainer if trainer is not None else make_trainer(cfg, mesh, seed)
        seed = cfg.train.seed if seed is None else seed
        self.quantizer = BlockQuantizer(self.layout, m.bits, m.error_feedback, seed + 1)
        self.theta = quant.flush_params(self.trainer.params())  # genesis passes through the flush
        self.trainer.set_params(_copy(self.theta))
        self.state = self.quantizer.init(self.theta)

    def set_theta(self, arrays: dict[str, Any], reset_residual: bool = True) -> None:
        """Continue from another committed state (the chain's tip when it is not our own block): the
        trainer's parameters are replaced, its optimizer state kept, the residual dropped."""
        self.trainer.set_params({k: np.asarray(v) for k, v in arrays.items()})
        self.theta = _copy(self.trainer.params())
        if reset_residual:
            key = self.state.inner.key if isinstance(self.state, quant.ErrorFeedbackState) else self.state.key
            fresh = self.quantizer.init(self.theta)
            self.state = (fresh._replace(inner=fresh.inner._replace(key=key))
                          if isinstance(fresh, quant.ErrorFeedbackState) else fresh._replace(key=key))

    def run_block(self, ds, steps: int | None = None, on_step=None) -> BlockResult:  # noqa: ANN001
        """Train ``steps`` (default ``miner.block_steps``) from ``theta``, commit, continue from it."""
        metrics = self.trainer.train_steps(ds, self.cfg.miner.block_steps if steps is None else steps, on_step)
        theta_prev = self.theta
        q, theta_next, self.state = self.quantizer.finish(theta_prev, self.trainer.params(), self.state)
        if not bool(quant.all_finite(theta_next)):
            raise UserError("theta_next is not finite: the block diverged (lower optim.lr)")
        self.theta = theta_next
        self.trainer.set_params(_copy(theta_next))  # the train step donates its params
        return BlockResult(q, theta_prev, theta_next, [m["loss"] for m in metrics], zero_leaves(q, self.layout),
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


def residual_rms(state: Any) -> float:
    if not isinstance(state, quant.ErrorFeedbackState):
        return 0.0
    res = jax.tree.leaves(state.residual)
    sq = sum(float(jnp.sum(jnp.square(r))) for r in res)
    n = sum(int(np.prod(r.shape)) for r in res)
    return float(np.sqrt(sq / max(n, 1)))
