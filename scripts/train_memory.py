"""Where the memory of a training run goes (docs/training.md "Memory").

  PYTHONPATH=. python scripts/train_memory.py xla --config gpt2-124m --set train.batch_size=2 \
      [--full-logits] [--default-scheduler] [--eval]
  PYTHONPATH=. python scripts/train_memory.py phases OUT.json -- --config gpt2-124m --set train.batch_size=2 --steps 2

``xla``: XLA's memory_analysis of the Trainer's compiled train step (nothing is run; the state is
allocated lazily, so this needs little memory); ``--full-logits`` and ``--default-scheduler`` compile
the step as it was before issue 23 (loss_fn over the full logits; XLA:CPU's default scheduler).
``phases``: runs ``pogo train`` with those arguments in this process and records the peak RSS of each
phase (``VmHWM``, reset through ``/proc/self/clear_refs`` between phases; Linux only). Because of the
reset, an outer ``/usr/bin/time -v`` of this script does not report the run's peak: time ``pogo train``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def xla(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="train_memory.py xla")
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--full-logits", action="store_true")
    p.add_argument("--default-scheduler", action="store_true")
    p.add_argument("--eval", action="store_true", help="also the Trainer.evaluate function on one batch")
    a = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from pogo_jax.config import load_config
    from pogo_jax.train import step as S

    cfg = load_config(a.config, a.overrides)
    if a.full_logits:
        S.train_loss = lambda m, b: S.loss_fn(m, b)
    if a.default_scheduler:
        S.CPU_STEP_COMPILER_OPTIONS.clear()
    t = S.Trainer(cfg)
    batch = jax.ShapeDtypeStruct((cfg.train.batch_size, cfg.model.seq_len + 1), jnp.int32, sharding=t.batch_sharding)
    out = {"config": a.config, "overrides": a.overrides, "full_logits": a.full_logits,
           "default_scheduler": a.default_scheduler}
    fns = {"train_step": (t._step_fn, (t.state, batch))}
    if a.eval:
        fns["evaluate_slice"] = (t._eval_fn, (t.state["params"], batch))
    for name, (fn, args) in fns.items():
        t0 = time.perf_counter()
        m = fn.lower(*args).compile().memory_analysis()
        out[name] = {k: getattr(m, k) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                                  "alias_size_in_bytes", "temp_size_in_bytes")}
        out[name]["compile_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))


def phases(argv: list[str]) -> None:
    out_json, rest = argv[0], argv[argv.index("--") + 1:]
    records: list[dict] = []
    t_start = time.perf_counter()

    def mark(name: str, t0: float) -> None:
        import jax

        rec = {"phase": name, "peak_rss_mib": round(_status_mib("VmHWM"), 1),
               "rss_after_mib": round(_status_mib("VmRSS"), 1), "seconds": round(time.perf_counter() - t0, 1),
               "live_arrays_mib": round(sum(x.nbytes for x in jax.live_arrays()) / 2**20, 1)}
        records.append(rec)
        print(rec, file=sys.stderr, flush=True)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS

    from pogo_jax.cli import train as cli_train
    from pogo_jax.train import step as S

    mark("import", t_start)

    def wrap(name: str) -> None:
        orig = getattr(S.Trainer, name)

        def f(self, *a, **k):  # noqa: ANN001, ANN202
            t0 = time.perf_counter()
            r = orig(self, *a, **k)
            if name == "save":
                a[0].wait_until_finished()
            elif name == "train_step":
                import jax

                jax.block_until_ready(r)
            mark(f"Trainer.{name}" + (f" {self.step}" if name == "train_step" else ""), t0)
            return r

        setattr(S.Trainer, name, f)

    for n in ("__init__", "train_step", "evaluate", "save"):
        wrap(n)
    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    t0 = time.perf_counter()
    cli_train.run(parser.parse_args(rest))
    mark("end", t0)
    with open(out_json, "w") as f:
        json.dump({"argv": rest, "phases": records,
                   "max_phase_peak_rss_mib": max(r["peak_rss_mib"] for r in records)}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("xla", "phases"):
        sys.exit(__doc__)
    (xla if sys.argv[1] == "xla" else phases)(sys.argv[2:])
