"""The block header (PROTOCOL 4.1, v3): what a miner commits to before it can know the challenge.

One writer (``Header.to_obj``/``encode``) and one reader (``Header.from_obj``) side by side. The
header hash is SHA-256 of the canonical JSON encoding (spec/encoding.py); the miner signs
``b"pogo/header/v1" || 0x00 || header_hash`` with Ed25519 inside the generic envelope
(spec/envelope.py). Version 2 added ``round``: the attempt number of the height, so a header is
bound to one round and its beacon; version 3 makes ``chain_id`` the genesis hash (PROTOCOL 13), so a
header is bound to one chain. Readers are strict: exact keys, JSON types, byte lengths and
integer bounds are checked before any field is trusted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int, hexbytes
from pogo_jax.spec.envelope import Signed, seal
from pogo_jax.spec.keys import PrivateKey

HEADER_VERSION = 3
MAX_ROUND = 2**32
HEADER_DOMAIN = b"pogo/header/v1"
MAX_HEADER_BYTES = 1 << 16
MAX_HEIGHT = 2**63 - 1
MAX_LEAF_SIZE = 1 << 24
MAX_LEAVES = 1 << 40
MAX_TRAIN_FIELDS = 64
MAX_TRAIN_STR = 256
_CHAIN_ID = re.compile(r"[0-9a-f]{64}")
_TRAIN_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_HASH_FIELDS = ("parent_hash", "miner_key", "layout_hash", "data_root", "root_prev", "root_next", "root_q")
_INT_FIELDS = ("version", "height", "round", "leaf_size", "group_size", "n_leaves")
_KEYS = {"chain_id", "train", *_HASH_FIELDS, *_INT_FIELDS}


def check_chain_id(chain_id: Any, what: str) -> str:
    """A chain id is the SHA-256 of the chain's canonical genesis body, as 64 lowercase hex digits (PROTOCOL
    13): two chains never share one, whatever they are called, so a record signed for one is foreign to
    every other."""
    if not isinstance(chain_id, str) or not _CHAIN_ID.fullmatch(chain_id):
        raise MalformedInput(f"{what}.chain_id: expected the 64 lowercase hex digits of a genesis hash")
    return chain_id


def check_train(train: Any, what: str) -> dict[str, str | int | bool]:
    """Training metadata is a flat object of str/int/bool (floats travel as f32hex strings)."""
    what = f"{what}.train"
    if not isinstance(train, Mapping):
        raise MalformedInput(f"{what}: expected an object")
    if len(train) > MAX_TRAIN_FIELDS:
        raise MalformedInput(f"{what}: more than {MAX_TRAIN_FIELDS} fields")
    out: dict[str, str | int | bool] = {}
    for k, v in train.items():
        if not isinstance(k, str) or not _TRAIN_KEY.fullmatch(k):
            raise MalformedInput(
                f"{what}: key {str(k)[:70]!r} is not lower_snake_case (at most 64 characters)"
            )
        if isinstance(v, bool):
            pass
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise MalformedInput(f"{what}.{k}: integer out of the int64 range")
        elif isinstance(v, str):
            if len(v) > MAX_TRAIN_STR or not _PRINTABLE.fullmatch(v):
                raise MalformedInput(f"{what}.{k}: strings are printable ASCII, at most {MAX_TRAIN_STR} long")
        else:
            raise MalformedInput(
                f"{what}.{k}: type {type(v).__name__} not allowed (str, int, bool; floats as f32hex strings)"
            )
        out[k] = v
    return out


@dataclass(frozen=True)
class Header:
    version: int
    chain_id: str
    height: int
    round: int
    parent_hash: bytes
    miner_key: bytes
    layout_hash: bytes
    data_root: bytes
    root_prev: bytes
    root_next: bytes
    root_q: bytes
    leaf_size: int
    group_size: int
    n_leaves: int
    train: dict

    def __post_init__(self) -> None:
        # Validate on construction too, so a Header in memory is always one that from_obj accepts.
        what = "header"
        obj = {k: getattr(self, k) for k in _INT_FIELDS}
        if obj["version"] != HEADER_VERSION or isinstance(obj["version"], bool):
            raise MalformedInput(
                f"{what}: unsupported version {obj['version']!r} (this code reads version {HEADER_VERSION})"
            )
        get_int(obj, "height", what, 1, MAX_HEIGHT)
        get_int(obj, "round", what, 1, MAX_ROUND)
        s = get_int(obj, "leaf_size", what, 2, MAX_LEAF_SIZE)
        g = get_int(obj, "group_size", what, 2, MAX_LEAF_SIZE)
        if g % 2 or s % g:
            raise MalformedInput(f"{what}: leaf_size must be a multiple of an even group_size")
        get_int(obj, "n_leaves", what, 1, MAX_LEAVES)
        check_chain_id(self.chain_id, what)
        for name in _HASH_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 32:
                raise MalformedInput(f"{what}.{name}: expected 32 bytes")
        object.__setattr__(self, "train", check_train(self.train, what))

    def to_obj(self) -> dict:
        obj: dict[str, Any] = {k: getattr(self, k) for k in _INT_FIELDS}
        obj["chain_id"] = self.chain_id
        obj.update({k: getattr(self, k).hex() for k in _HASH_FIELDS})
        obj["train"] = dict(self.train)
        return obj

    @classmethod
    def from_obj(cls, obj: Any, what: str = "header") -> Header:
        if not isinstance(obj, dict):
            raise MalformedInput(f"{what}: expected an object")
        version = get_field(obj, "version", int, what)
        if version != HEADER_VERSION:
            raise MalformedInput(
                f"{what}: unsupported version {version} (this code reads version {HEADER_VERSION})"
            )
        exact_keys(obj, _KEYS, what)
        ints = {k: get_int(obj, k, what, 0, MAX_HEIGHT) for k in _INT_FIELDS}
        hashes = {k: hexbytes(obj[k], f"{what}.{k}", 32) for k in _HASH_FIELDS}
        return cls(
            chain_id=check_chain_id(obj["chain_id"], what),
            train=check_train(get_field(obj, "train", dict, what), what),
            **ints,
            **hashes,
        )

    KIND: ClassVar[str] = "header"
    DOMAIN: ClassVar[bytes] = HEADER_DOMAIN

    @property
    def signer(self) -> bytes:
        return self.miner_key

    def encode(self) -> bytes:
        return canonical(self.to_obj())

    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


SignedHeader = Signed[Header]


def read_signed_header(data: bytes) -> SignedHeader:
    """Strict reader of a signed header envelope (canonical bytes only)."""
    return Signed.read(data, Header, MAX_HEADER_BYTES)


def sign_header(header: Header, key: PrivateKey) -> SignedHeader:
    """Sign ``header`` with ``key``; the key must be the header's ``miner_key``."""
    return seal(header, key)
