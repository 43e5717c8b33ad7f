"""Byte formats and rules of the PoGO protocol (PROTOCOL.md sections 4-7). Never imports jax."""
