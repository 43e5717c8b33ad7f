"""Measurements of pogo-jax: the one implementation behind ``pogo bench`` and ``scripts/bench_*.py``.

Every number in docs/benchmarks.md and docs/costs.md comes from a function here, so the command
line and the scripts can never measure two different things under one name:

    common     device description, timing helpers, JSON writing
    train      train-step throughput, MFU, measured bf16 matmul rate
    merkle     device leaf hashing, commit, host SHA-256 and audit-path checks
    protocol   one real PoGO block end to end (mine, commit, prove, light and full verify)
    roots      Merkle roots of a fixed input, for cross-backend comparison
    suite      ``pogo bench``: all of the above into ``bench_<backend>.json``
    report     ``pogo report``: merge result files, flag differing roots
    costs      ``pogo costs``: extrapolation to GPT-3 175B and Gemma 3 27B
    scaling    commit time, proof size, light-verify time versus parameter count

Importing this package does not import jax (``report`` and ``costs`` arithmetic run without it).
"""
