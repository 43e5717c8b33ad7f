"""Getting text into datasets: corpus importers (importers.py) and byte-level BPE tokenizers (tokenizer.py).
No jax."""
