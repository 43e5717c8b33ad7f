"""The protocol's byte rules: numpy + hashlib + pycryptodome only, importing nothing of ours above it.

Encoding, keys, the signed envelope, layout, host Merkle trees and inclusion proofs, the 4-bit update
rule, challenge sampling, headers, attestations and bundles. Every role imports this; a test imports
it in a fresh interpreter and asserts ``jax`` is not loaded.
"""
