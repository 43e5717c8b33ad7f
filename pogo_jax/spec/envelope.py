"""One signed envelope for every signed record: headers, attestations, governance, node and beacon records.

A record body is a frozen dataclass with ``KIND`` (its name on the wire), ``DOMAIN`` (the signature
domain, PROTOCOL section 7), ``to_obj``/``from_obj`` (strict reader next to the writer) and a
``signer`` property naming the key that must have signed it. The envelope is the same for all:

    {"body": {...}, "kind": "header", "signature": "<64 bytes hex>"}

canonical JSON (spec/encoding.py). The record's hash is SHA-256 of the canonical body (for a header
that is the header hash of PROTOCOL 4.1); the signature is Ed25519 over ``DOMAIN || 0x00 || chain || hash``
where ``chain`` is the 32-byte chain id the body names (empty for the genesis record, whose hash *is* the
chain id). Every kind has its own domain, so a signature made for one kind can never be replayed as
another, and every chain its own id, so one made for one chain never verifies for another (PROTOCOL 13).
Readers re-encode canonically before they trust a signature: one encoding per content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, hexbytes, parse_canonical
from pogo_jax.spec.keys import PrivateKey, public_bytes, sign, verify_signature

MAX_ENVELOPE_BYTES = 1 << 20


class Body(Protocol):
    KIND: ClassVar[str]
    DOMAIN: ClassVar[bytes]

    @property
    def signer(self) -> bytes: ...

    def to_obj(self) -> dict: ...

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> Any: ...


B = TypeVar("B", bound=Body)


def body_hash(body: Body) -> bytes:
    """SHA-256 of the body's canonical encoding: the record's identity."""
    return hashlib.sha256(canonical(body.to_obj())).digest()


def signing_message(body: Body) -> bytes:
    """``chain id || body hash``: what is signed under the body's domain (the chain id is empty for genesis)."""
    chain = getattr(body, "chain_id", None) if body.KIND != "genesis" else None
    return (bytes.fromhex(chain) if chain else b"") + body_hash(body)


@dataclass(frozen=True)
class Signed(Generic[B]):
    """A body and the signature of ``body.signer`` over it."""

    body: B
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise MalformedInput(f"signed {self.body.KIND}: signature must be 64 bytes")

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical body (computed once: the body is frozen)."""
        return body_hash(self.body)

    def verify(self) -> bool:
        """True iff the signature is the body signer's over this body (never raises)."""
        return verify_signature(self.body.signer, self.body.DOMAIN, signing_message(self.body), self.signature)

    def to_obj(self) -> dict:
        return {"kind": self.body.KIND, "body": self.body.to_obj(), "signature": self.signature.hex()}

    def to_bytes(self) -> bytes:
        return canonical(self.to_obj())

    @classmethod
    def read(cls, data: bytes, body_type: type[B], max_bytes: int = MAX_ENVELOPE_BYTES) -> Signed[B]:
        """Parse the canonical bytes of an envelope holding a ``body_type``; refuse anything else."""
        what = f"signed {body_type.KIND}"
        obj = parse_canonical(data, what, max_bytes)
        if canonical(obj) != data:
            raise MalformedInput(f"{what}: not canonical JSON (sorted keys, no whitespace)")
        return cls.from_obj(obj, body_type)

    @classmethod
    def from_obj(cls, obj: Any, body_type: type[B], what: str | None = None) -> Signed[B]:
        what = what or f"signed {body_type.KIND}"
        exact_keys(obj, {"kind", "body", "signature"}, what)
        kind = get_field(obj, "kind", str, what)
        if kind != body_type.KIND:
            raise MalformedInput(f"{what}: kind is {kind[:40]!r}, expected {body_type.KIND!r}")
        body = body_type.from_obj(get_field(obj, "body", dict, what), f"{what}.body")
        return cls(body, hexbytes(obj["signature"], f"{what}.signature", 64))


def seal(body: B, key: PrivateKey) -> Signed[B]:
    """Sign ``body`` with ``key``, which must be the body's signer."""
    if public_bytes(key) != body.signer:
        raise ValueError(f"signing key does not match the {body.KIND}'s signer")
    return Signed(body, sign(key, body.DOMAIN, signing_message(body)))
