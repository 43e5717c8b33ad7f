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
