"""Host-side verifier: numpy + hashlib/pycryptodome only. Importing it never imports jax.

A test imports this package in a fresh interpreter and asserts ``"jax" not in sys.modules``.
"""
