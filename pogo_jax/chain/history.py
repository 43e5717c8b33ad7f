"""Confirmed states from the chain's stored bytes: one rebuild loop for sync, full verifiers, the node and audit.

The state a block at ``height + 1`` builds on is the last recorded base at or below ``height``
(the genesis state, or an epoch's initial state) plus every confirmed update after it, each step
through ``spec.state.rebuild`` with ``root_q`` and ``root_next`` checked. Bytes come from a
``fetch(sha256) -> bytes`` callable (the node's blob store, or a client that checks the hash), so the
same loop runs on every host; nothing is trusted because of where it was read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pogo_jax.chain.state import ChainState
from pogo_jax.errors import MalformedInput, Rejected
from pogo_jax.spec.merkle import root as merkle_root
from pogo_jax.spec.state import State, load_state, rebuild, state_leaf_digests

Fetch = Callable[[bytes], bytes]


def checked(fetch: Fetch, sha: bytes, what: str) -> bytes:
    data = fetch(sha)
    if hashlib.sha256(data).digest() != sha:
        raise MalformedInput(f"{what}: the bytes received do not hash to the recorded {sha.hex()[:16]}...")
    return data


@dataclass
class StateCache:
    """The last rebuilt confirmed state (height, root, arrays, leaf digests): rebuilding forward from it
    costs one block per block; anything else restarts from the base."""

    height: int = -1
    root: bytes = b""
    arrays: State = field(default_factory=dict)
    digests: list[bytes] = field(default_factory=list)


def confirmed_state(st: ChainState, height: int, fetch: Fetch, cache: StateCache | None = None,
                    progress: Callable[[int, int], None] | None = None) -> StateCache:
    """The confirmed state at ``height`` (what block ``height + 1`` extends), every root checked."""
    if not 0 <= height <= st.tip_height:
        raise Rejected("NOT_CONFIRMED", f"height {height} is not confirmed (tip {st.tip_height})")
    want_root = st.root_at(height)
    if cache is not None and cache.height == height and cache.root == want_root:
        return cache
    lay = st.genesis.layout
    h0, base = st.base_for(height)
    if cache is not None and h0 <= cache.height <= height and cache.root == st.root_at(cache.height) and cache.arrays:
        cur = StateCache(cache.height, cache.root, cache.arrays, cache.digests)
    else:
        arrays = load_state(checked(fetch, base.blob, "base state"), lay, "base state")
        digests = state_leaf_digests(arrays, lay)
        if merkle_root(digests) != base.root:
            raise MalformedInput("the base state does not hash to its recorded root")
        cur = StateCache(h0, base.root, arrays, digests)
    for b in st.blocks:
        if not cur.height < b.height <= height:
            continue
        hd = b.header.body
        if hd.root_prev != cur.root:
            raise MalformedInput(f"block {b.height}: root_prev does not chain from block {cur.height}")
        upd = checked(fetch, b.update_sha256, f"block {b.height} update")
        arrays, digests = rebuild(cur.arrays, upd, lay, hd.root_q, hd.root_next)
        cur = StateCache(b.height, hd.root_next, arrays, digests)
        if progress:
            progress(b.height, height)
    if cur.root != want_root:  # an epoch state replaced the one rebuilt at this height
        raise MalformedInput(f"rebuilt state at height {height} is not the recorded one")
    if cache is not None:
        cache.height, cache.root, cache.arrays, cache.digests = cur.height, cur.root, cur.arrays, cur.digests
    return cur
