"""Ed25519 keys: RFC 8032 vectors, domain separation, PEM files, pogo keygen."""

from __future__ import annotations

import os
import stat

import pytest
from Crypto.PublicKey import ECC

from pogo_jax.cli import main
from pogo_jax.errors import UserError
from pogo_jax.spec.keys import (
    generate_key,
    key_from_seed,
    load_private_pem,
    public_bytes,
    save_private_pem,
    sign,
    sign_raw,
    verify_raw,
    verify_signature,
)

# RFC 8032 section 7.1: TEST 1, TEST 2, TEST 3 and TEST SHA(abc): (secret, public, message, signature)
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]


@pytest.mark.parametrize("secret,public,message,signature", RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    key = key_from_seed(bytes.fromhex(secret))
    msg, sig = bytes.fromhex(message), bytes.fromhex(signature)
    assert public_bytes(key).hex() == public
    assert sign_raw(key, msg) == sig
    assert verify_raw(bytes.fromhex(public), msg, sig)
    bad = bytearray(sig)
    bad[5] ^= 1
    assert not verify_raw(bytes.fromhex(public), msg, bytes(bad))
    assert not verify_raw(bytes.fromhex(public), msg + b"x", sig)


def test_domain_separation() -> None:
    key = generate_key()
    pub, msg = public_bytes(key), os.urandom(32)
    sig = sign(key, b"pogo/header/v1", msg)
    assert verify_signature(pub, b"pogo/header/v1", msg, sig)
    assert not verify_signature(pub, b"pogo/attest/v1", msg, sig)
    assert not verify_raw(pub, msg, sig)  # not a plain signature of the message
    assert verify_raw(pub, b"pogo/header/v1\x00" + msg, sig)  # exactly domain || 0x00 || message
    assert not verify_signature(public_bytes(generate_key()), b"pogo/header/v1", msg, sig)
    with pytest.raises(ValueError):
        sign(key, b"bad\x00domain", msg)
    with pytest.raises(ValueError):
        sign(key, b"", msg)


def test_verify_never_raises_on_garbage() -> None:
    key = generate_key()
    pub, msg = public_bytes(key), b"m"
    sig = sign(key, b"d", msg)
    cases = [
        (os.urandom(32), b"d", msg, sig),  # random 32 bytes: often not a curve point
        (b"\xff" * 32, b"d", msg, sig),
        (pub[:31], b"d", msg, sig),
        (pub, b"d", msg, sig[:63]),
        (pub, b"d", msg, b"\xff" * 64),  # S >= group order
        (None, b"d", msg, sig),
        (pub, "d", msg, sig),
        (pub, b"d", "m", sig),
        (pub, b"d\x00", msg, sig),
        (pub, b"d", msg, None),
    ]
    for args in cases:
        assert verify_signature(*args) is False
    for _ in range(50):
        assert verify_raw(os.urandom(32), msg, os.urandom(64)) is False


def test_pem_roundtrip_mode_and_overwrite(tmp_path) -> None:
    key = generate_key()
    path = tmp_path / "sub" / "k.pem"
    save_private_pem(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_bytes(load_private_pem(path)) == public_bytes(key)
    before = path.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        save_private_pem(generate_key(), path)
    assert path.read_bytes() == before
    other = generate_key()
    save_private_pem(other, path, force=True)
    assert public_bytes(load_private_pem(path)) == public_bytes(other)
    assert [p.name for p in path.parent.iterdir()] == ["k.pem"]  # no temp files left


def test_load_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="no key file"):
        load_private_pem(tmp_path / "missing.pem")
    garbled = tmp_path / "garbled.pem"
    garbled.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n")
    with pytest.raises(UserError, match="not a PEM private key"):
        load_private_pem(garbled)
    p256 = tmp_path / "p256.pem"
    p256.write_text(ECC.generate(curve="P-256").export_key(format="PEM"))
    with pytest.raises(UserError, match="expected an Ed25519 private key"):
        load_private_pem(p256)
    pub_only = tmp_path / "pub.pem"
    pub_only.write_text(generate_key().public_key().export_key(format="PEM"))
    with pytest.raises(UserError, match="expected an Ed25519 private key"):
        load_private_pem(pub_only)


def test_keygen_command(tmp_path, capsys) -> None:
    out = tmp_path / "miner.pem"
    assert main(["keygen", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == public_bytes(load_private_pem(out)).hex()
    assert main(["keygen", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert load_private_pem(out) is not None and public_bytes(load_private_pem(out)).hex() == printed
    assert main(["keygen", "--out", str(out), "--force"]) == 0
    assert capsys.readouterr().out.strip() != printed
