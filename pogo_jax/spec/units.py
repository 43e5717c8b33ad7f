"""Loss units. A model's loss is nats per *token*; comparing models with different tokenizers needs bits per
*byte* of the text the tokens decode from (a dataset's manifest records those byte counts). Stdlib only."""

from __future__ import annotations

import math


def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """Mean loss in bits per UTF-8 byte: ``nats_per_token * n_tokens / n_bytes / ln 2`` (the total nats of the
    text spread over its bytes, converted to bits)."""
    if n_tokens < 0 or n_bytes <= 0:
        raise ValueError(f"need n_tokens >= 0 and n_bytes > 0, got {n_tokens} and {n_bytes}")
    return nats_per_token * n_tokens / n_bytes / math.log(2)


def shard_bits_per_byte(manifest: dict, shard: int, nats_per_token: float) -> float:
    """Bits per byte of a loss measured on sealed shard ``shard`` of a dataset with this ``manifest``: a byte
    dataset's tokens are its bytes (nats / ln 2); a tokenized one records the UTF-8 bytes each shard's ids
    decode from (``tokens.text_bytes.sealed``), and the shard holds ``shard_bytes / width`` ids."""
    tok = manifest.get("tokens")
    if tok is None:
        return nats_per_token / math.log(2)
    n_tokens = int(manifest["sealed"]["shard_bytes"]) // int(tok["width"])
    return bits_per_byte(nats_per_token, n_tokens, int(tok["text_bytes"]["sealed"][shard]))
