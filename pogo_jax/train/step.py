"""Sharded training: optimizer, loss, one jitted train step, the ``Trainer`` and the ``pogo train`` loop.

The train state is a plain pytree ``{"params": <nested dict of float32>, "opt_state": <optax state>}``
whose every leaf has an explicit ``NamedSharding`` derived from the logical axis rules. The step is a
single ``jax.jit`` with those shardings as ``in_shardings``/``out_shardings`` and the state donated.
Batches are a pure function of ``(seed, step)`` (``pogo_jax.data.train_batch``), so the data position
of a run is its step and a resumed run continues bit-identically on CPU.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from pogo_jax.config import Config, resolve_vocab
from pogo_jax.errors import UserError
from pogo_jax.pytree import flatten_params
from pogo_jax.train import checkpoint, data, sharding
from pogo_jax.train.model import GPT, abstract_model, check_flat, head_logits, unflatten_like
from pogo_jax.train.progress import TrainProgress, plot_metrics

# ------------------------------------------------------------------------------------- optimizer


def lr_schedule(cfg: Config) -> optax.Schedule:
    """Linear warmup to ``optim.lr`` then cosine decay to ``lr * min_lr_ratio`` at ``train.steps``."""
    o = cfg.optim
    warmup = max(0, o.warmup_steps)
    total = max(cfg.train.steps, warmup + 1)
    return optax.warmup_cosine_decay_schedule(0.0, o.lr, warmup, total, end_value=o.lr * o.min_lr_ratio)


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices only (kernels, embeddings); not on biases and norm scales."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: Config, extra: optax.GradientTransformation | None = None) -> optax.GradientTransformation:
    """clip_by_global_norm -> AdamW(warmup + cosine) [-> extra, e.g. the PoGO quantizer].

    Gradient accumulation (``optim.grad_accum``) happens inside the train step (a scan over
    micro-batches), so one optimizer update is one step and one ``train_batch``.
    """
    o = cfg.optim
    parts = [
        optax.clip_by_global_norm(o.clip_norm),
        optax.adamw(lr_schedule(cfg), b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=_decay_mask),
    ]
    if extra is not None:
        parts.append(extra)
    return optax.chain(*parts)


# ------------------------------------------------------------------------------------------- loss


def loss_fn(model: GPT, batch: jax.Array) -> jax.Array:
    """Mean next-byte cross entropy in nats (float32); ``batch`` is (B, T+1) integer tokens.

    The reference definition, over the full (B, T, vocab) logits: evaluation (what verifiers compare)
    uses exactly this; training uses ``train_loss``, the same quantity computed in sequence chunks.
    """
    batch = jnp.asarray(batch).astype(jnp.int32)
    logits = model(batch[:, :-1])
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1)[..., 0]
    return nll.mean()


CE_CHUNK_LOGITS = 1 << 22  # float32 logits per sequence per chunk (16 MiB): gpt2-124m (T 1024) -> 16 chunks of 64


def ce_chunks(seq_len: int, vocab_size: int, max_logits: int = CE_CHUNK_LOGITS) -> int:
    """Number of sequence chunks of the training loss: the smallest divisor ``k`` of ``seq_len`` with
    ``seq_len / k * vocab_size <= max_logits`` (1 for byte vocabularies: tiny and small are not chunked)."""
    for k in range(1, seq_len + 1):
        if seq_len % k == 0 and (seq_len // k) * vocab_size <= max_logits:
            return k
    return seq_len


def _chunked_nll_sums(model: GPT, batch: jax.Array, k: int) -> jax.Array:
    """Per-window sums (B,) of the next-token negative log-likelihood, the head applied to ``k`` chunks of
    the sequence in a rematerialized ``lax.scan``: the full (B, T, vocab) logits never exist."""
    b, t = batch.shape[0], batch.shape[1] - 1
    x = model.features(batch[:, :-1])  # (B, T, d)
    # the float32 weight goes into the loop and is cast inside it, so that its gradient is accumulated
    # over the chunks in float32 (a bfloat16 weight would sum k bfloat16 partial gradients)
    w = model.head_param()
    tied, dt = model.cfg.tie_embeddings, x.dtype
    c = t // k
    xs = x.reshape(b, k, c, x.shape[-1]).swapaxes(0, 1)  # (k, B, c, d): chunks of the sequence, batch kept
    ys = batch[:, 1:].reshape(b, k, c).swapaxes(0, 1)

    @jax.checkpoint
    def chunk_nll(w, xc, yc):
        logp = jax.nn.log_softmax(head_logits(xc, w.astype(dt), tied).astype(jnp.float32), axis=-1)
        return -jnp.take_along_axis(logp, yc[..., None], axis=-1)[..., 0].sum(axis=-1)

    def body(total, xy):
        return total + chunk_nll(w, *xy), None

    sums, _ = jax.lax.scan(body, jnp.zeros((b,), jnp.float32), (xs, ys))
    return sums


def train_loss(model: GPT, batch: jax.Array, max_logits: int = CE_CHUNK_LOGITS) -> jax.Array:
    """``loss_fn`` for training, without ever holding the full (B, T, vocab) float32 logits.

    With a large vocabulary the logits, their log-softmax and their gradient are among the largest
    buffers of the step (gpt2-124m, batch 2: 412 MB each, docs/training.md "Memory"). Here the output
    head and the cross entropy run over ``ce_chunks`` slices of the sequence in a ``lax.scan`` whose
    body is rematerialized, so the backward pass recomputes one chunk's logits at a time; a loop
    (unlike a plain ``jax.checkpoint``) also keeps the scheduler from hoisting all recomputations
    together. Same value as ``loss_fn`` to within float32 rounding (the sum is taken in another
    order); when one chunk suffices (byte vocabularies) it *is* ``loss_fn``.
    """
    batch = jnp.asarray(batch).astype(jnp.int32)
    b, t = batch.shape[0], batch.shape[1] - 1
    k = ce_chunks(t, model.cfg.vocab_size, max_logits)
    if k == 1:
        return loss_fn(model, batch)
    return _chunked_nll_sums(model, batch, k).sum() / (b * t)


def train_window_losses(model: GPT, windows: jax.Array, max_logits: int = CE_CHUNK_LOGITS) -> jax.Array:
    """Mean loss of each window (row) computed like ``train_loss``: the training run's eval metric."""
    batch = jnp.asarray(windows).astype(jnp.int32)
    t = batch.shape[1] - 1
    k = ce_chunks(t, model.cfg.vocab_size, max_logits)
    if k == 1:
        logp = jax.nn.log_softmax(model(batch[:, :-1]).astype(jnp.float32), axis=-1)
        return -jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1)[..., 0].mean(axis=1)
    return _chunked_nll_sums(model, batch, k) / t


@partial(jax.jit, static_argnums=0)
def _eval_pure(graphdef, params, windows):
    return loss_fn(nnx.merge(graphdef, params), windows)


@partial(jax.jit, static_argnums=0)
def _eval_windows_pure(graphdef, params, windows):
    """Mean next-token loss of each window (row) of ``windows`` (n, T+1): what a full vote carries."""
    batch = jnp.asarray(windows).astype(jnp.int32)
    logits = nnx.merge(graphdef, params)(batch[:, :-1])
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1)[..., 0].mean(axis=1)


def eval_loss(model: GPT, windows: np.ndarray) -> float:
    """Mean loss over ``windows`` (n, T+1), one jitted call, float32: what verifiers compare."""
    w = np.asarray(windows)
    if w.ndim != 2 or w.shape[1] < 2 or w.shape[0] == 0:
        raise UserError(f"eval windows must be a non-empty (n, T+1) array, got shape {w.shape}")
    graphdef, params = nnx.split(model, nnx.Param)
    return float(np.float32(_eval_pure(graphdef, nnx.to_pure_dict(params), w.astype(np.int32))))


# ------------------------------------------------------------------------------------ train step


def _train_step(graphdef, tx: optax.GradientTransformation, accum: int, micro_sharding, param_shardings, state, batch):
    params = state["params"]

    def loss_of(p, b):
        return train_loss(nnx.merge(graphdef, p), b)

    grad_fn = jax.value_and_grad(loss_of)
    if accum == 1:
        loss, grads = grad_fn(params, batch)
    else:
        b, t1 = batch.shape
        # (B, T+1) -> (accum, B/accum, T+1) keeping each device's rows on that device
        micro = batch.reshape(b // accum, accum, t1).swapaxes(0, 1)

        def body(carry, mb):
            mb = jax.lax.with_sharding_constraint(mb, micro_sharding)
            loss_i, g_i = grad_fn(params, mb)
            acc = jax.lax.with_sharding_constraint(jax.tree.map(jnp.add, carry[1], g_i), param_shardings)
            return (carry[0] + loss_i, acc), None

        # the accumulator lives in the parameters' sharding (no resharding inside the loop)
        zeros = jax.lax.with_sharding_constraint(jax.tree.map(jnp.zeros_like, params), param_shardings)
        (loss, grads), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zeros), micro)
        loss = loss / accum
        grads = jax.tree.map(lambda g: g / accum, grads)
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return {"params": new_params, "opt_state": opt_state}, metrics


# XLA:CPU's default scheduler orders the step for concurrency and keeps every layer's attention
# probabilities, and every rematerialized block, live at once: 8.0 GB of temporaries for gpt2-124m at
# batch 2 against 5.5 GB with the memory-optimized one (docs/training.md "Memory"). Scheduling changes
# neither the ops nor their numerics, only the order and buffer reuse.
CPU_STEP_COMPILER_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def step_compiler_options(mesh: Mesh) -> dict[str, str] | None:
    """XLA options of the train step: the memory-optimized scheduler on CPU, nothing elsewhere."""
    return dict(CPU_STEP_COMPILER_OPTIONS) if mesh.devices.flat[0].platform == "cpu" else None


class Trainer:
    """Model + optimizer state sharded on a mesh, with a jitted, donated train step.

    ``params()``/``set_params()`` use the flat ``/``-joined names of ``pogo_jax.model.param_dict``.
    ``model`` is a fresh NNX view of the current params; like any array taken from the state it is
    invalid after the next ``train_steps`` (the state is donated), so take it again when needed.
    """

    def __init__(self, cfg: Config, mesh: Mesh | None = None, extra_tx: optax.GradientTransformation | None = None):
        self.cfg = cfg
        self.mesh = mesh if mesh is not None else sharding.make_mesh(cfg.mesh)
        rules = cfg.mesh.rule_map()
        self.tx = make_optimizer(cfg, extra_tx)
        self.step = 0
        batch_ways = sharding.batch_divisor(self.mesh, rules)
        micro = cfg.train.batch_size // cfg.optim.grad_accum
        if micro % batch_ways:
            raise UserError(
                f"micro-batch {micro} (train.batch_size / optim.grad_accum) must be a multiple of the "
                f"{batch_ways} devices on the batch axes; change train.batch_size or the mesh"
            )

        graphdef, abs_state = nnx.split(abstract_model(cfg.model), nnx.Param)
        self.graphdef = graphdef
        self.param_shardings = sharding.tree_shardings(abs_state, self.mesh, rules)
        abs_params = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), nnx.to_pure_dict(abs_state))
        abs_opt = jax.eval_shape(self.tx.init, abs_params)
        repl = sharding.replicated(self.mesh)
        opt_shardings = optax.tree_map_params(
            self.tx,
            lambda _, s: s,
            abs_opt,
            self.param_shardings,
            transform_non_params=lambda _: repl,
            is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct),
        )
        self.state_shardings = {"params": self.param_shardings, "opt_state": opt_shardings}
        self.abstract_state = {"params": abs_params, "opt_state": abs_opt}
        self.batch_sharding = sharding.batch_sharding(self.mesh, rules)

        seed = cfg.train.seed
        model_cfg = cfg.model

        def init():
            params = nnx.to_pure_dict(nnx.state(GPT(model_cfg, rngs=nnx.Rngs(seed)), nnx.Param))
            return {"params": params, "opt_state": self.tx.init(params)}

        self.state = jax.jit(init, out_shardings=self.state_shardings)()
        step = partial(
            _train_step,
            graphdef,
            self.tx,
            cfg.optim.grad_accum,
            sharding.batch_sharding(self.mesh, rules),
            self.param_shardings,
        )
        self._step_fn = jax.jit(
            step,
            in_shardings=(self.state_shardings, self.batch_sharding),
            out_shardings=(self.state_shardings, repl),
            donate_argnums=0,
            compiler_options=step_compiler_options(self.mesh),
        )
        self._eval_fn = jax.jit(
            lambda p, w: train_window_losses(nnx.merge(graphdef, p), w),
            in_shardings=(self.param_shardings, self.batch_sharding),
            out_shardings=repl,
            compiler_options=step_compiler_options(self.mesh),
        )
        self._schedule = lr_schedule(cfg)

    # -- views -------------------------------------------------------------------------------
    @property
    def model(self) -> GPT:
        return nnx.merge(self.graphdef, self.state["params"])

    @property
    def opt_state(self) -> Any:
        return self.state["opt_state"]

    def params(self) -> dict[str, jax.Array]:
        flat = flatten_params(self.state["params"])
        return {k: flat[k] for k in sorted(flat, key=lambda s: s.encode())}

    def set_params(self, flat: dict[str, Any]) -> None:
        """Replace all params (e.g. the confirmed PoGO state); optimizer state is kept."""
        current = flatten_params(self.state["params"])
        check_flat({k: tuple(v.shape) for k, v in current.items()}, flat)
        shard = flatten_params(self.param_shardings)
        placed = {}
        for k, v in flat.items():
            if isinstance(v, jax.Array):
                placed[k] = jax.device_put(v.astype(jnp.float32), shard[k])
            else:
                placed[k] = sharding.put_global(np.asarray(v, np.float32), shard[k])
        self.state = {
            "params": unflatten_like(self.state["params"], placed),
            "opt_state": self.state["opt_state"],
        }

    def lr(self, step: int | None = None) -> float:
        return float(self._schedule(self.step if step is None else step))

    # -- training ----------------------------------------------------------------------------
    def batch(self, ds: data.Dataset, step: int) -> jax.Array:
        """The global batch of ``step``, placed with the batch sharding (multi-host safe)."""
        t = self.cfg.train
        host = data.train_batch(ds, t.seed, step, t.batch_size, self.cfg.model.seq_len)
        return sharding.put_global(host.astype(np.int32), self.batch_sharding)

    def train_step(self, batch: jax.Array) -> dict[str, jax.Array]:
        """One optimizer step on an already placed batch; metrics stay on device (no host sync)."""
        self.state, metrics = self._step_fn(self.state, batch)
        self.step += 1
        return metrics

    def train_steps(
        self, ds: data.Dataset, n_steps: int, on_step: Callable[[int, dict[str, float]], None] | None = None
    ) -> list[dict[str, float]]:
        """Run ``n_steps`` steps from ``self.step``; returns host metrics (loss, grad_norm, lr) per step.

        Step i's metrics are read back only after step i+1 is dispatched, so the device never waits
        for the host (reading them at once stalled the pipeline: about 15% of tokens/s on CPU).
        ``on_step`` is called once per step, in order, one step late.
        """
        out: list[dict[str, float]] = []

        def emit(step: int, metrics: dict[str, jax.Array], lr: float) -> None:
            m = {k: float(v) for k, v in metrics.items()} | {"lr": lr}
            out.append(m)
            if on_step is not None:
                on_step(step, m)

        pending = None
        for _ in range(n_steps):
            lr = self.lr()
            metrics = self.train_step(self.batch(ds, self.step))
            if pending is not None:
                emit(*pending)
            pending = (self.step, metrics, lr)
        if pending is not None:
            emit(*pending)
        return out

    def evaluate(self, ds: data.Dataset, n_windows: int | None = None) -> float:
        """Loss on a fixed, evenly spaced set of eval windows (same windows every call), in the training
        compute dtype: the run's metric. What verifiers compare is ``evaluate.Evaluator`` (float32)."""
        t, T = self.cfg.train, self.cfg.model.seq_len
        n_total = data.n_eval_windows(ds, T)
        k = min(n_total, n_windows or t.eval_batches * t.batch_size)
        idx = np.linspace(0, n_total - 1, k).astype(np.int64)
        windows = data.eval_windows(ds, idx, T).astype(np.int32)
        # in slices of the train batch, through the training loss: evaluating all k windows at once
        # held k * T * vocab float32 logits (1.65 GB for gpt2-124m at batch 2), more than the step itself
        bs, out = t.batch_size, []
        for lo in range(0, k, bs):
            part = windows[lo:lo + bs]
            n = part.shape[0]
            if n < bs:  # pad to the one compiled shape; the padding rows are dropped
                part = np.concatenate([part, np.repeat(part[:1], bs - n, axis=0)])
            placed = sharding.put_global(part, self.batch_sharding)
            out.append(np.asarray(self._eval_fn(self.state["params"], placed), np.float32)[:n])
        return float(np.float32(np.mean(np.concatenate(out), dtype=np.float64)))

    # -- checkpoints ---------------------------------------------------------------------------
    def metadata(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "config": cfg.to_dict(),
            "config_hash": cfg.config_hash(),
            "model_hash": cfg.model_hash(),
            "step": self.step,
            "data_position": {"seed": cfg.train.seed, "step": self.step},
            "jax_version": jax.__version__,
            **(extra or {}),
        }

    def save(self, mngr_or_dir, extra_metadata: dict[str, Any] | None = None) -> None:
        """Async orbax save of params + optimizer state + step (all processes must call it)."""
        mngr = (
            mngr_or_dir
            if not isinstance(mngr_or_dir, str | Path)
            else checkpoint.open_manager(mngr_or_dir, self.cfg.train.keep_checkpoints)
        )
        checkpoint.save(mngr, self.step, self.state, self.metadata(extra_metadata))
        if mngr is not mngr_or_dir:
            mngr.wait_until_finished()
            mngr.close()

    def load(self, mngr, step: int | None = None) -> dict[str, Any]:
        """Load a checkpoint into this trainer (config compatibility checked); returns its metadata."""
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise UserError(f"no checkpoint in '{mngr.directory}'")
        meta = checkpoint.read_metadata(mngr, step)
        checkpoint.check_compatible(meta, self.cfg.model_hash(), mngr.directory)
        target = checkpoint.abstract_target(self.abstract_state, self.state_shardings)
        self.state = checkpoint.restore(mngr, step, target)
        self.step = int(meta.get("step", step))
        return meta


# ------------------------------------------------------------------------------------ pogo train


def _trim_metrics(path: Path, upto: int) -> None:
    """On resume, drop metric lines logged after the checkpoint we resume from."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= upto:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    path.write_text("".join(x + "\n" for x in keep))


def _next(step: int, every: int) -> int:
    """The next multiple of ``every`` after ``step``."""
    return (step // every + 1) * every if every > 0 else 2**62


def train(cfg: Config, out_dir: Path, resume: bool = True) -> dict[str, Any]:
    """The ``pogo train`` loop: progress bar, ``metrics.jsonl``, ``loss.png``, orbax checkpoints.

    Rerunning with the same ``out_dir`` resumes from its last checkpoint. A checkpoint from another
    model config raises UserError before anything is written. Returns a summary dict.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out '{out_dir}' is a file; choose a directory")
    ds = data.load_dataset(cfg.data)
    cfg, vocab_note = resolve_vocab(cfg, ds.vocab_size, ds.token_info is not None)
    mesh = sharding.make_mesh(cfg.mesh)
    ckpt_dir = out_dir / "checkpoints"
    start_meta = None
    if resume and ckpt_dir.is_dir():
        probe = checkpoint.open_manager(ckpt_dir, cfg.train.keep_checkpoints, create=False)
        last = probe.latest_step()
        if last is not None:
            start_meta = checkpoint.read_metadata(probe, last)
            checkpoint.check_compatible(start_meta, cfg.model_hash(), ckpt_dir)
        probe.close()
    trainer = Trainer(cfg, mesh)  # validates mesh/batch before anything is written
    lead = jax.process_index() == 0
    if lead:
        print(f"model: {vocab_note}; data: {ds.source}", file=sys.stderr, flush=True)  # after every input check
        out_dir.mkdir(parents=True, exist_ok=True)
    mngr = checkpoint.open_manager(ckpt_dir, cfg.train.keep_checkpoints)
    metrics_path = out_dir / "metrics.jsonl"
    if start_meta is not None:
        trainer.load(mngr)
        if lead:
            print(f"resuming from step {trainer.step} of {cfg.train.steps} ({ckpt_dir})", file=sys.stderr, flush=True)
    elif lead and metrics_path.exists():
        metrics_path.unlink()  # a fresh run (no checkpoint) starts a fresh log
    if lead:
        _trim_metrics(metrics_path, trainer.step)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True) + "\n")

    t = cfg.train
    extra = {"data_root": ds.data_root.hex(), "data_source": ds.source}
    tokens_per_step = t.batch_size * cfg.model.seq_len
    log = open(metrics_path, "a") if lead else None  # noqa: SIM115 - closed in finally
    losses: list[float] = []
    last_eval = math.nan
    t_log, steps_since = time.perf_counter(), 0
    first_step = trainer.step
    try:
        with TrainProgress(t.steps, trainer.step, lead, every=t.log_every) as bar:

            def on_step(step: int, m: dict[str, float]) -> None:  # called one step late: no stall
                nonlocal t_log, steps_since, losses
                losses.append(m["loss"])
                steps_since += 1
                if step == first_step + 1:  # do not count compilation in tokens/s
                    t_log, steps_since = time.perf_counter(), 0
                if step % t.log_every == 0 or step == t.steps:
                    now = time.perf_counter()
                    tps = tokens_per_step * steps_since / (now - t_log) if steps_since else math.nan
                    t_log, steps_since = now, 0
                    rec = {"step": step, "loss": float(np.mean(losses)), "grad_norm": m["grad_norm"], "lr": m["lr"],
                           "tokens_per_s": tps}
                    losses = []
                    if log:
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                    status = f"loss {rec['loss']:.3f}" + (f"  {tps:,.0f} tok/s" if tps == tps else "")
                    bar.update(step, status)
                else:
                    bar.update(step)

            while trainer.step < t.steps:
                # run to the next eval or checkpoint boundary as one pipelined stretch of steps
                nxt = min(t.steps, _next(trainer.step, t.eval_every), _next(trainer.step, t.checkpoint_every))
                trainer.train_steps(ds, nxt - trainer.step, on_step)
                step = trainer.step
                if step % t.eval_every == 0 or step == t.steps:
                    last_eval = trainer.evaluate(ds)
                    if log:
                        log.write(json.dumps({"step": step, "eval_loss": last_eval}) + "\n")
                        log.flush()
                if step % t.checkpoint_every == 0 or step == t.steps:
                    trainer.save(mngr, extra)
                    if lead:  # the curve so far, with every checkpoint: a stopped run keeps its plot
                        plot_metrics(metrics_path, out_dir / "loss.png", f"{cfg.name}: byte-level LM loss")
        mngr.wait_until_finished()
    finally:
        if log:
            log.close()
        mngr.close()
    if lead and metrics_path.exists():
        plot_metrics(metrics_path, out_dir / "loss.png", f"{cfg.name}: byte-level LM loss")
    if math.isnan(last_eval):
        last_eval = trainer.evaluate(ds)
    return {
        "out_dir": str(out_dir),
        "step": trainer.step,
        "eval_loss": last_eval,
        "resumed_from": None if start_meta is None else int(start_meta.get("step", 0)),
        "data_root": ds.data_root.hex(),
    }
