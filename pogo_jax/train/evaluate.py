"""Losses of a state given as numpy arrays: per evaluation window, what a full verifier reports and the
miner averages (PROTOCOL 15), and on named public eval windows, what a miner's self-check and training
runs use. Always float32 compute with the highest matmul precision whatever the training config says
(PROTOCOL 4.4), so honest backends and meshes agree closely; the chain's relative ``loss_tolerance``
sits well above the measured spread (scripts/loss_spread.py, docs/protocol.md).
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
from pogo_jax.train.step import _eval_pure, _eval_windows_pure

EVAL_CHUNK = 64  # windows per compiled call: one program for every round, bounded memory for large models


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

    def _params(self, arrays: Mapping[str, np.ndarray]):  # noqa: ANN202
        check_flat(self.shapes, dict(arrays))
        return unflatten_like(self.template, {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()})

    def loss(self, arrays: Mapping[str, np.ndarray], ds: data.Dataset, windows: Sequence[int]) -> float:
        """Mean next-byte loss (nats, float32) of ``arrays`` on public eval windows ``windows``."""
        params = self._params(arrays)
        w = data.eval_windows(ds, list(windows), self.cfg.model.seq_len).astype(np.int32)
        with jax.default_matmul_precision("highest"):
            return float(np.float32(_eval_pure(self.graphdef, params, w)))

    def window_losses(self, arrays: Mapping[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
        """Per-window mean loss (nats, float32) of ``arrays`` on ``tokens`` (m, seq_len + 1), e.g. the round's
        windows of its sealed shard (``BlockContext.eval_tokens``), in fixed chunks of ``EVAL_CHUNK``."""
        t = np.asarray(tokens)
        if t.ndim != 2 or t.shape[1] != self.cfg.model.seq_len + 1 or t.shape[0] == 0:
            raise ValueError(f"evaluation windows must be (m, {self.cfg.model.seq_len + 1}), got {t.shape}")
        params = self._params(arrays)
        out = []
        with jax.default_matmul_precision("highest"):
            for lo in range(0, t.shape[0], EVAL_CHUNK):
                chunk = t[lo:lo + EVAL_CHUNK].astype(np.int32)
                n = chunk.shape[0]
                if n < EVAL_CHUNK:  # pad to the one compiled shape; the padding rows are dropped
                    chunk = np.concatenate([chunk, np.zeros((EVAL_CHUNK - n, t.shape[1]), np.int32)])
                out.append(np.asarray(_eval_windows_pure(self.graphdef, params, chunk), np.float32)[:n])
        return np.concatenate(out)


def mean_loss(window_losses: np.ndarray) -> float:
    """The mean a miner reports: the float32 mean of its per-window losses (windows are of equal length)."""
    return float(np.float32(np.mean(np.asarray(window_losses, np.float64))))
