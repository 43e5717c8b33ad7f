"""``BlockContext``: everything a verifier knows about one candidate *without* asking its miner.

Built from the chain's signed log (``pogo_jax.chain.view``), never from the bundle: the chain id, the
layout, the recorded dataset manifest and the window count its sealed shards imply, the rules (k, m,
delta, tolerance), the round's tip (parent header hash, ``root_prev``), its beacon value, sealed shard
and released shard key, its evaluation windows, and for the candidate the recorded signed header and
the hashes of its stored update and bundle. Both verifier tiers receive this one object; neither reads
a count, a beacon or a dataset from the miner's files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pogo_jax.spec.challenge import challenge_leaves, round_windows
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import Header
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.records import DataRef
from pogo_jax.spec.rules import ChainRules

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class BlockContext:
    rules: ChainRules
    layout: Layout
    seq_len: int  # the chain model's sequence length: with the manifest it fixes the window count
    height: int
    round: int
    parent_hash: bytes
    root_prev: bytes
    data: DataRef
    n_windows: int  # windows one sealed shard of the dataset holds
    chain_id: str  # the genesis hash (PROTOCOL 13)
    beacon: bytes | None = None  # None until the round's reveal is recorded
    shard: int | None = None  # the round's sealed shard
    shard_key: bytes | None = None  # its key, once released (and checked) with the beacon value
    header: Signed[Header] | None = None  # the recorded candidate
    update_sha256: bytes | None = None
    bundle_sha256: bytes | None = None
    bundle_entry: bytes | None = None  # hash of the log entry that recorded the bundle (votes name it)

    @property
    def header_hash(self) -> bytes | None:
        return None if self.header is None else self.header.hash

    @property
    def windows(self) -> tuple[int, ...]:
        """The round's evaluation windows (every candidate of the round is measured on these)."""
        if self.beacon is None:
            raise ValueError("the round's beacon is not revealed yet: no windows")
        return round_windows(self.chain_id, self.height, self.round, self.beacon, self.n_windows,
                             self.rules.m_windows)

    def leaves(self) -> tuple[int, ...]:
        """The candidate's challenged leaves."""
        if self.beacon is None or self.header is None:
            raise ValueError("a candidate's leaves need its recorded header and the round's beacon")
        return challenge_leaves(self.header.hash, self.beacon, self.layout.n_leaves, self.rules.k_leaves)

    def eval_tokens(self, ds) -> "np.ndarray":  # noqa: ANN001, UP037 - spec.dataset.Dataset
        """The round's evaluation windows, (m, seq_len + 1) uint8, from its sealed shard opened with the
        released key and checked against the dataset's manifest (which must be the round's)."""
        from pogo_jax.spec.sealed import windows_of

        if self.shard_key is None or self.shard is None:
            raise ValueError("the round's shard key is not released: no evaluation data yet")
        if ds.manifest_hash != self.data.manifest_hash:
            raise ValueError("this dataset is not the round's")
        return windows_of(ds.open_shard(self.shard, self.shard_key), self.windows, self.seq_len)

    def for_candidate(self, header: Signed[Header], update_sha256: bytes | None,
                      bundle_sha256: bytes | None, bundle_entry: bytes | None = None) -> BlockContext:
        return replace(self, header=header, update_sha256=update_sha256, bundle_sha256=bundle_sha256,
                       bundle_entry=bundle_entry)
