"""A role's run config for one chain: the chain's model and rules from its genesis record, everything
else (optimizer, batch, mesh, the miner's own choices) from the role's own config. A miner's
optimizer is its business; the chain imposes only the model it evaluates and the consensus rules."""

from __future__ import annotations

import dataclasses

from pogo_jax.config import Config, ModelConfig
from pogo_jax.errors import UserError
from pogo_jax.spec.records import Genesis


def model_config(g: Genesis) -> ModelConfig:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(g.model) - names
    if unknown:
        raise UserError(f"the chain's model names fields this pogo does not know: {sorted(unknown)[:3]}")
    return ModelConfig(**g.model)


def chain_config(g: Genesis, base: Config | None = None) -> tuple[Config, list[str]]:
    """``base`` with the chain's model and rules; also returns the notes on what was replaced."""
    base = base or Config()
    model = model_config(g)
    notes = []
    if base.model != model:
        notes.append(f"using the chain's model (d_model={model.d_model}, n_layers={model.n_layers}, "
                     f"seq_len={model.seq_len}) instead of the config's")
    return dataclasses.replace(base, model=model, chain=g.rules), notes
