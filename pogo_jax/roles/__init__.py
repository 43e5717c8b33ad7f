"""The roles: miner, light and full verifiers, sync. The light path imports no jax."""
