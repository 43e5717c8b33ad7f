"""pogo-jax: reference JAX implementation of PoGO (Proof of Gradient Optimization).

Importing the package never imports jax: the byte rules (``pogo_jax.spec``) and the
byte formats (``pogo_jax.protocol``) must run on CPU hosts with numpy + pycryptodome only.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
