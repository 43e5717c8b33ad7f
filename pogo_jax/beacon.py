"""Randomness beacons (PROTOCOL 4.2): a 32-byte value per index, public only after the header.

``LocalHashChainBeacon`` is the embedded default, a commit-then-reveal hash chain: from a secret
``s`` and a length ``L``, ``value(i) = H^(L-i)(s)`` with ``H(x) = SHA-256(b"pogo/beacon/v1" || x)``.
The anchor ``value(0)`` is published when the chain is created (the ledger stores it); revealing
``value(i)`` proves itself, since hashing it ``i`` times gives the anchor, yet says nothing about
``value(i+1)``. The beacon operator must keep ``s`` away from miners. Indices count reveals, not
heights: the ledger hands out a fresh index for every recorded header (``Ledger.next_beacon_index``),
so a value already public is never reused for a header committed after it.

``BlockHashBeacon`` derives the value from the hash of a later block (deployment on a chain);
whoever makes that block can grind it, which is the usual caveat of block-hash randomness.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from pogo_jax.errors import UserError

BEACON_DOMAIN = b"pogo/beacon/v1"
BLOCK_BEACON_DOMAIN = b"pogo/beacon/block/v1"
DEFAULT_LENGTH = 4096
MAX_LENGTH = 1 << 24
_STATE = "beacon.json"
_SECRET = "secret.key"


def step(x: bytes) -> bytes:
    """One link of the hash chain: value(i - 1) = step(value(i))."""
    return hashlib.sha256(BEACON_DOMAIN + x).digest()


def _walk(x: bytes, n: int) -> bytes:
    for _ in range(n):
        x = step(x)
    return x


class Beacon(ABC):
    """A source of public randomness indexed by a positive integer."""

    @abstractmethod
    def anchor(self) -> bytes:
        """The public commitment reveals are checked against."""

    @abstractmethod
    def reveal(self, index: int) -> bytes:
        """The 32-byte value for ``index`` (call only after the header it serves is recorded)."""

    @staticmethod
    @abstractmethod
    def verify(anchor: bytes, index: int, value: bytes) -> bool:
        """Whether ``value`` is the beacon value for ``index`` under ``anchor``."""


class LocalHashChainBeacon(Beacon):
    """Hash-chain beacon kept in a directory: ``secret.key`` (0600) and ``beacon.json``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        state, secret = self.dir / _STATE, self.dir / _SECRET
        if not state.is_file() or not secret.is_file():
            raise UserError(
                f"no beacon in {self.dir} (create one with LocalHashChainBeacon.create or pogo demo)"
            )
        try:
            meta = json.loads(state.read_text())
            self.length = int(meta["length"])
            self._anchor = bytes.fromhex(meta["anchor"])
            self._secret = bytes.fromhex(secret.read_text().strip())
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise UserError(f"beacon state in {self.dir} is unreadable (corrupted files?)") from None
        if meta.get("version") != 1 or not 1 <= self.length <= MAX_LENGTH or len(self._secret) != 32:
            raise UserError(f"beacon state in {self.dir} has an unsupported version or bad sizes")
        if _walk(self._secret, self.length) != self._anchor:
            raise UserError(f"beacon secret in {self.dir} does not hash to its anchor (files mixed up?)")

    @classmethod
    def create(
        cls,
        directory: str | Path,
        length: int = DEFAULT_LENGTH,
        secret: bytes | None = None,
        force: bool = False,
    ) -> LocalHashChainBeacon:
        """Make a new chain from a random (or given, for tests) 32-byte secret. Files are written
        atomically; an existing beacon is kept unless ``force``."""
        from pogo_jax.spec.keys import write_secret_file

        if not 1 <= length <= MAX_LENGTH:
            raise UserError(f"beacon length must be in [1, {MAX_LENGTH}], got {length}")
        d = Path(directory)
        if (d / _STATE).exists() and not force:
            raise UserError(f"a beacon already exists in {d} (pass force=True to replace it)")
        s = os.urandom(32) if secret is None else secret
        if len(s) != 32:
            raise ValueError("beacon secret must be 32 bytes")
        anchor = _walk(s, length)
        write_secret_file(d / _SECRET, s.hex().encode() + b"\n", force=True)
        state = {"version": 1, "kind": "hash-chain", "length": length, "anchor": anchor.hex()}
        write_secret_file(d / _STATE, json.dumps(state, sort_keys=True).encode() + b"\n", force=True)
        os.chmod(d / _STATE, 0o644)  # the anchor is public
        return cls(d)

    def anchor(self) -> bytes:
        return self._anchor

    def reveal(self, index: int) -> bytes:
        if isinstance(index, bool) or not isinstance(index, int) or index < 1:
            raise ValueError("beacon index must be a positive integer")
        if index > self.length:
            raise UserError(
                f"beacon chain exhausted: index {index} > length {self.length} "
                "(start a new chain with a new anchor)"
            )
        return _walk(self._secret, self.length - index)

    @staticmethod
    def verify(anchor: bytes, index: int, value: bytes, max_length: int = MAX_LENGTH) -> bool:
        """``value`` hashed ``index`` times is ``anchor``. Cost: ``index`` hashes; use
        ``verify_next`` against the previous reveal for one hash per block."""
        if not (isinstance(anchor, bytes) and isinstance(value, bytes) and len(anchor) == len(value) == 32):
            return False
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= max_length:
            return False
        return _walk(value, index) == anchor

    @staticmethod
    def verify_next(previous: bytes, value: bytes) -> bool:
        """``value`` is the reveal right after ``previous`` (the anchor for index 1)."""
        return isinstance(value, bytes) and len(value) == 32 and step(value) == previous


class BlockHashBeacon(Beacon):
    """value(i) = SHA-256(b"pogo/beacon/block/v1" || uint64_le(i) || block_hash(i + delay)).

    ``block_hash`` is supplied by the host chain (e.g. a ledger lookup) and returns None while
    that block does not exist yet; ``anchor`` is empty because the chain itself is the commitment.
    ``verify`` takes the later block's hash as its ``anchor`` argument.
    """

    def __init__(self, block_hash: Callable[[int], bytes | None], delay: int = 1) -> None:
        if delay < 1:
            raise ValueError("delay must be >= 1: the value must come from a block after the header")
        self.block_hash = block_hash
        self.delay = delay

    def anchor(self) -> bytes:
        return b""

    def reveal(self, index: int) -> bytes:
        h = self.block_hash(index + self.delay)
        if h is None:
            raise UserError(
                f"block {index + self.delay} does not exist yet: its hash is the beacon for {index}"
            )
        return self.derive(h, index)

    @staticmethod
    def derive(block_hash: bytes, index: int) -> bytes:
        return hashlib.sha256(BLOCK_BEACON_DOMAIN + struct.pack("<Q", index) + block_hash).digest()

    @staticmethod
    def verify(anchor: bytes, index: int, value: bytes) -> bool:
        if not (isinstance(anchor, bytes) and len(anchor) == 32 and isinstance(value, bytes)):
            return False
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**64:
            return False
        return BlockHashBeacon.derive(anchor, index) == value
