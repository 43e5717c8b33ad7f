"""Ed25519 keys and domain-separated signatures (RFC 8032, pycryptodome). No jax.

Every protocol signature is pure Ed25519 over ``domain || 0x00 || message``: the domain tag
(``pogo/header/v1``, ``pogo/attest/v1``) names what is signed, so a signature made for one kind
of object can never be replayed as another. Tags are ASCII and contain no 0x00, which makes the
split between tag and message unambiguous.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from pogo_jax.errors import UserError

PrivateKey = ECC.EccKey
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_KEY_FILE_BYTES = 64 << 10


def generate_key() -> PrivateKey:
    """A fresh Ed25519 key from the OS random source."""
    return ECC.generate(curve="Ed25519")


def key_from_seed(seed: bytes) -> PrivateKey:
    """The Ed25519 key whose 32-byte RFC 8032 secret is ``seed`` (test vectors, reproducible demos)."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ValueError("an Ed25519 seed is exactly 32 bytes")
    return eddsa.import_private_key(seed)


def write_secret_file(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file, fsync, rename).

    Refuses to replace an existing file unless ``force``; on any error the old file is untouched.
    """
    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists (pass --force to overwrite it)")
    if path.is_dir():
        raise UserError(f"{path} is a directory, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_private_pem(key: PrivateKey, path: str | Path, force: bool = False) -> None:
    """Store the key as PKCS#8 PEM, mode 0600; refuses to overwrite unless ``force``."""
    pem = key.export_key(format="PEM").encode("ascii")
    write_secret_file(path, pem if pem.endswith(b"\n") else pem + b"\n", force=force)


def load_private_pem(path: str | Path) -> PrivateKey:
    """Read a PKCS#8 PEM Ed25519 private key; one clear UserError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no key file at {path} (create one with: pogo keygen --out {path})")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise UserError(f"{path} is too large to be a PEM key file")
    try:
        key = ECC.import_key(path.read_bytes())
    except (ValueError, IndexError, TypeError):
        raise UserError(
            f"{path} is not a PEM private key (expected PKCS#8 Ed25519 from pogo keygen)"
        ) from None
    if key.curve != "Ed25519" or not key.has_private():
        raise UserError(
            f"{path} holds a {key.curve} {'private' if key.has_private() else 'public'} key, "
            "expected an Ed25519 private key"
        )
    return key


def public_bytes(key: PrivateKey) -> bytes:
    """The 32-byte raw (RFC 8032) public key."""
    return key.public_key().export_key(format="raw")


def _check_domain(domain: bytes) -> None:
    if not isinstance(domain, bytes) or not domain or b"\x00" in domain:
        raise ValueError("a signature domain is non-empty bytes without 0x00")


def sign_raw(key: PrivateKey, message: bytes) -> bytes:
    """Plain Ed25519 (RFC 8032, no context) over ``message``: 64 bytes."""
    return eddsa.new(key, "rfc8032").sign(message)


def verify_raw(pub: bytes, message: bytes, sig: bytes) -> bool:
    """Plain Ed25519 verification. Never raises: any malformed input is simply ``False``."""
    if not (isinstance(pub, bytes) and isinstance(message, bytes) and isinstance(sig, bytes)):
        return False
    if len(pub) != PUBLIC_KEY_BYTES or len(sig) != SIGNATURE_BYTES:
        return False
    try:
        eddsa.new(eddsa.import_public_key(pub), "rfc8032").verify(message, sig)
    except (ValueError, TypeError):
        return False
    return True


def sign(key: PrivateKey, domain: bytes, message: bytes) -> bytes:
    """Ed25519 over ``domain || 0x00 || message``."""
    _check_domain(domain)
    return sign_raw(key, domain + b"\x00" + message)


def verify_signature(pub: bytes, domain: bytes, message: bytes, sig: bytes) -> bool:
    """Check a domain-separated signature. Never raises on bad input (returns False)."""
    if not isinstance(domain, bytes) or not domain or b"\x00" in domain or not isinstance(message, bytes):
        return False
    return verify_raw(pub, domain + b"\x00" + message, sig)
