"""Loss on named eval windows for a state given as numpy arrays: what the miner reports and what
a full verifier recomputes. Both sides call this one function, always in float32 compute with the
highest matmul precision whatever the training config says (PROTOCOL 4.4), so honest backends and
meshes agree to about 1e-6 relative; the chain's relative ``loss_tolerance`` sits well above that
(docs/protocol.md has the measurement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pogo_jax.config import Config
from pogo_jax.pytree import flatten_params
from pogo_jax.train import data
from pogo_jax.train.model import abstract_model, check_flat, unflatten_like
from pogo_jax.train.step import _eval_pure


class Evaluator:
    """Compiles the eval function once per config; states are passed in as flat arrays."""

    def __init__(self, cfg: Config, compute_dtype: str = "float32") -> None:
        """``compute_dtype`` other than float32 only to measure what it would change (scripts/loss_agreement.py)."""

        self.cfg = cfg
        model_cfg = dataclasses.replace(cfg.model, compute_dtype=compute_dtype, remat=False)
        graphdef, abs_state = nnx.split(abstract_model(model_cfg), nnx.Param)
        self.graphdef = graphdef
        self.template = nnx.to_pure_dict(abs_state)
        self.shapes = {k: tuple(v.shape) for k, v in flatten_params(self.template).items()}

    def loss(self, arrays: Mapping[str, np.ndarray], ds: data.Dataset, windows: Sequence[int]) -> float:
        """Mean next-byte loss (nats, float32) of ``arrays`` on eval windows ``windows``."""
        check_flat(self.shapes, dict(arrays))
        params = unflatten_like(self.template, {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()})
        w = data.eval_windows(ds, list(windows), self.cfg.model.seq_len).astype(np.int32)
        with jax.default_matmul_precision("highest"):
            return float(np.float32(_eval_pure(self.graphdef, params, w)))
