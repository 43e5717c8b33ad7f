"""Subcommands of ``pogo``: one module each, with ``add_arguments`` and ``run``.

Modules here import only the standard library at import time; jax comes in inside ``run``.
"""
