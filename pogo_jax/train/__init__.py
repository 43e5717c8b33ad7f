"""Training: the model, its sharding, the train step, checkpoints, data and evaluation (jax)."""
