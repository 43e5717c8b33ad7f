"""Commitments on the accelerator: SHA-256 leaf hashing, Merkle commit/open, the 4-bit quantizer as optax
transforms, and block finishing."""
