"""Dataset module: packed format, data_root against an independent RFC 9162 reference, splits, batches."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pogo_jax.cli import main
from pogo_jax.config import DataConfig
from pogo_jax.errors import UserError
from pogo_jax.train import data


@pytest.fixture
def rng() -> np.random.Generator:
    seed = secrets.randbits(32)
    print(f"test seed = {seed}")  # shown by pytest when the test fails
    return np.random.default_rng(seed)


def _text(rng: np.random.Generator, n: int, alphabet: bytes = b"abcdefghijklmnopqrstuvwxyz \n") -> bytes:
    return bytes(np.frombuffer(alphabet, np.uint8)[rng.integers(0, len(alphabet), n)])


# --- independent reference: written from PROTOCOL sections 2 and 6 with hashlib only -------------------


def _ref_leaf(index: int, shard: bytes) -> bytes:
    header = b"\x00" + b"POGO-DATA-v1"
    header += b"\x00" * (56 - len(header)) + index.to_bytes(8, "little")
    assert len(header) == 64
    return hashlib.sha256(header + shard).digest()


def _ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, recursively: split at the largest power of two below n."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _ref_mth(leaves[:k]) + _ref_mth(leaves[k:])).digest()


def _ref_root(stream: bytes, shard_size: int) -> bytes:
    shards = [stream[i:i + shard_size] for i in range(0, len(stream), shard_size)]
    shards[-1] = shards[-1] + b"\x00" * (shard_size - len(shards[-1]))
    return _ref_mth([_ref_leaf(i, s) for i, s in enumerate(shards)])


# --- data_root --------------------------------------------------------------------------------------------


def test_data_root_matches_independent_rfc9162(rng):
    sizes = [(1, 8), (5, 8), (8, 8), (9, 8), (64 * 7, 64), (int(rng.integers(1, 5000)), 64),
             (int(rng.integers(1, 5000)), int(rng.integers(1, 300)))]
    for n, shard in sizes:
        stream = rng.integers(0, 256, n, dtype=np.uint8)
        assert data.compute_data_root(stream, shard) == _ref_root(stream.tobytes(), shard), (n, shard)
    stream = rng.integers(0, 256, 1000, dtype=np.uint8)
    flipped = stream.copy()
    flipped[int(rng.integers(0, 1000))] ^= 1 << int(rng.integers(0, 8))
    assert data.compute_data_root(flipped, 64) != data.compute_data_root(stream, 64)
    # padding is zeros by the rule: spelling the padding out gives the same root, one byte more a new shard.
    # (So the root alone does not pin n_bytes; the manifest does.)
    padded = np.concatenate([stream, np.zeros(24, np.uint8)])
    assert data.compute_data_root(padded, 64) == data.compute_data_root(stream, 64)
    assert data.compute_data_root(np.concatenate([padded, [0]]).astype(np.uint8), 64) != \
        data.compute_data_root(stream, 64)


# --- pack -------------------------------------------------------------------------------------------------


def _tree(root: Path, rng: np.random.Generator) -> dict[str, bytes]:
    """A small directory of text files (plus one binary and one hidden) -> expected {relpath: bytes}."""
    files = {
        "b.txt": _text(rng, int(rng.integers(500, 3000))),
        "a.txt": _text(rng, int(rng.integers(500, 3000))),
        "B.txt": _text(rng, int(rng.integers(500, 3000))),
        "sub/z.py": _text(rng, int(rng.integers(500, 3000))),
        "sub-x/y.md": _text(rng, int(rng.integers(500, 3000))),
        "\u00e9t\u00e9.txt": "caf\u00e9 \u00e9t\u00e9\n".encode() * 50,
    }
    for rel, blob in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    (root / "img.bin").write_bytes(b"\x89PNG\x00\x01" + rng.bytes(500))
    (root / "latin1.txt").write_bytes(b"caf\xe9\n" * 40)  # not UTF-8: skipped
    (root / ".hidden").write_bytes(b"secret\n")
    return files


def test_pack_is_deterministic_and_ordered(tmp_path, rng):
    src = tmp_path / "src"
    files = _tree(src, rng)
    extra = tmp_path / "extra.txt"
    extra.write_bytes(_text(rng, 777))
    a = data.pack([src, extra], tmp_path / "a.pogodata", shard_size=256, eval_fraction=0.1)
    b = data.pack([str(src), str(extra)], tmp_path / "b.pogodata", shard_size=256, eval_fraction=0.1)
    assert (tmp_path / "a.pogodata").read_bytes() == (tmp_path / "b.pogodata").read_bytes()
    assert a.data_root == b.data_root and a.manifest_hash == b.manifest_hash
    raw = (tmp_path / "a.pogodata").read_bytes()
    assert raw[:12] == b"POGODATA" + struct.pack("<I", data.DATA_FORMAT_VERSION)
    assert a.manifest_hash == hashlib.sha256(raw[20:20 + struct.unpack_from("<Q", raw, 12)[0]]).digest()
    # order: directory entries by relative POSIX path as UTF-8 bytes, then the next argument
    order = sorted(files, key=lambda r: r.encode())
    assert order[:3] == ["B.txt", "a.txt", "b.txt"] and order[-1] == "\u00e9t\u00e9.txt"
    expected = b"".join(files[r] for r in order) + extra.read_bytes()
    assert a.tokens.tobytes() == expected
    m = a.manifest
    assert (m["n_files"], m["n_skipped"], m["n_bytes"]) == (len(files) + 1, 2, len(expected))
    assert m["source"] == f"packed: {len(files) + 1} files"
    assert a.data_root == _ref_root(expected, 256) == bytes.fromhex(m["data_root"])
    # split rule: eval starts on a shard boundary and holds at least eval_fraction of the bytes
    n, e = len(expected), a.eval_range[0]
    assert a.train_range == (0, e) and a.eval_range == (e, n) and e % 256 == 0
    assert n - e >= 0.1 * n and n - e - 256 < 0.1 * n
    # the reader accepts what the writer wrote and re-derives the same root
    again = data.load_dataset(DataConfig(path=str(tmp_path / "a.pogodata")), verify=True)
    assert again.data_root == a.data_root and again.manifest == m
    assert isinstance(again.tokens, np.memmap) and not again.tokens.flags.writeable


def test_pack_refuses_bad_input_and_writes_nothing(tmp_path, rng):
    out = tmp_path / "out.pogodata"
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / "empty.txt").write_bytes(b"")
    small = tmp_path / "small.txt"
    small.write_bytes(_text(rng, 1000))
    cases = [
        ([tmp_path / "missing.txt"], {}, "does not exist"),
        ([tmp_path / "bin"], {}, "no readable text files"),
        ([tmp_path / "empty.txt"], {}, "empty"),
        ([small], {}, "too small for shard size 65536"),  # train split would be empty
        ([small], {"shard_size": 0}, "shard size"),
        ([small], {"eval_fraction": 1.0}, "eval fraction"),
        ([], {}, "nothing to pack"),
    ]
    for paths, kw, msg in cases:
        with pytest.raises(UserError, match=msg):
            data.pack(paths, out, **kw)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "empty.txt", "small.txt"]
    with pytest.raises(UserError, match="is a directory"):
        data.pack([small], tmp_path, shard_size=64)


def test_failed_write_keeps_old_file(tmp_path, rng, monkeypatch):
    src = tmp_path / "a.txt"
    src.write_bytes(_text(rng, 4000))
    out = tmp_path / "d.pogodata"
    data.pack([src], out, shard_size=512)
    before = out.read_bytes()
    src.write_bytes(_text(rng, 5000))

    def boom(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.os, "replace", boom)
    with pytest.raises(UserError, match="No space left"):
        data.pack([src], out, shard_size=512)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d.pogodata"]  # no temp file left


# --- reader: refuses malformed files ----------------------------------------------------------------------


def _packed(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, bytes]:
    src = tmp_path / "a.txt"
    src.write_bytes(_text(rng, int(rng.integers(3000, 6000))))
    out = tmp_path / "good.pogodata"
    data.pack([src], out, shard_size=512)
    return out, out.read_bytes()


def test_reader_refuses_corrupt_truncated_and_foreign_files(tmp_path, rng):
    path, good = _packed(tmp_path, rng)
    mlen = struct.unpack_from("<Q", good, 12)[0]
    offset = len(good) - data.load_dataset(DataConfig(path=str(path))).n_bytes
    assert offset % 4096 == 0 and offset >= 20 + mlen

    def load(blob: bytes, verify: bool = False) -> data.Dataset:
        bad = tmp_path / "bad.pogodata"
        bad.write_bytes(blob)
        return data.load_dataset(DataConfig(path=str(bad)), verify=verify)

    flip = bytearray(good)
    flip[offset + int(rng.integers(0, len(good) - offset))] ^= 0x20
    load(bytes(flip))  # cheap open checks sizes and bounds only ...
    with pytest.raises(UserError, match="corrupt"):
        load(bytes(flip), verify=True)  # ... verify=True recomputes data_root
    manifest = json.loads(good[20:20 + mlen])
    wrong_n = json.dumps({**manifest, "n_bytes": manifest["n_bytes"] + 1}, sort_keys=True,
                         separators=(",", ":")).encode()
    cases = {
        "truncated": good[:-1],
        "longer than": good + b"\n",
        "bad magic": b"NOTPOGO!" + good[8:],
        "version 2": good[:8] + struct.pack("<I", 2) + good[12:],
        "truncated or not": good[:15],
        "manifest": good[:20] + good[20:20 + mlen].replace(b'"eval"', b'"evil"') + good[20 + mlen:],
        "do not split|n_shards": good[:12] + struct.pack("<Q", len(wrong_n)) + wrong_n
        + good[20 + len(wrong_n):],
        "padding": good[:20 + mlen] + b"\x01" + good[21 + mlen:],
        "exceeds": good[:12] + struct.pack("<Q", 1 << 40) + good[20:],
    }
    for msg, blob in cases.items():
        with pytest.raises(UserError, match=msg):
            load(blob)
    (tmp_path / "plain.txt").write_text("just text\n" * 1000)
    for p, msg in [("plain.txt", "not a pogodata file"), ("nope.pogodata", "not found"), (".", "directory")]:
        with pytest.raises(UserError, match=msg):
            data.load_dataset(DataConfig(path=str(tmp_path / p)))


# --- batches and windows ----------------------------------------------------------------------------------


def _split_dataset(tmp_path: Path, rng: np.random.Generator) -> tuple[data.Dataset, bytes, bytes]:
    """Train split = letters only, eval split = digits only (shard 1024, 25% eval)."""
    letters, digits = _text(rng, 3072, b"abcdefghijklmnopqrstuvwxyz"), _text(rng, 1024, b"0123456789")
    (tmp_path / "1.txt").write_bytes(letters)
    (tmp_path / "2.txt").write_bytes(digits)
    ds = data.pack([tmp_path / "1.txt", tmp_path / "2.txt"], tmp_path / "s.pogodata", 1024, 0.25)
    assert ds.train_range == (0, 3072) and ds.eval_range == (3072, 4096)
    return ds, letters, digits


def test_train_batches_are_pure_train_only_and_vary(tmp_path, rng):
    ds, letters, _ = _split_dataset(tmp_path, rng)
    seed = int(rng.integers(0, 2**63))
    b0 = data.train_batch(ds, seed, 7, 16, 64)
    assert b0.shape == (16, 65) and b0.dtype == np.uint8
    assert np.array_equal(b0, data.train_batch(ds, seed, 7, 16, 64))  # pure function of (seed, step)
    reopened = data.load_dataset(DataConfig(path=str(ds.path)))  # a resumed run sees the same batches
    assert np.array_equal(b0, data.train_batch(reopened, seed, 7, 16, 64))
    assert not np.array_equal(b0, data.train_batch(ds, seed, 8, 16, 64))
    assert not np.array_equal(b0, data.train_batch(ds, seed + 1, 7, 16, 64))
    starts = data.train_starts(ds, seed, 7, 16, 64)
    for row, s in zip(b0, starts, strict=True):
        assert row.tobytes() == letters[s:s + 65]  # contiguous window of the stream, inside train
    # long windows: starts range over [0, 3072 - 3001], reaching the last train byte and never beyond
    for step in range(40):
        batch = data.train_batch(ds, seed, step, 8, 3000)
        assert set(np.unique(batch).tobytes()) <= set(b"abcdefghijklmnopqrstuvwxyz")
    # the last start is drawn (72 possible starts: 40 x 8 draws missed it with probability 1.1%, 400 x 8 with 4e-20)
    assert any((data.train_starts(ds, seed, step, 8, 3000) == 71).any() for step in range(400))
    assert data.train_batch(ds, seed, 0, 2, 3071).shape == (2, 3072)  # exactly fits the split
    with pytest.raises(UserError, match="too large for the train split"):
        data.train_batch(ds, seed, 0, 2, 3072)
    with pytest.raises(UserError, match="seed"):
        data.train_batch(ds, -1, 0, 2, 8)


def test_eval_windows_read_the_right_bytes(tmp_path, rng):
    ds, _, digits = _split_dataset(tmp_path, rng)
    seq = int(rng.integers(1, 200))
    n = data.n_eval_windows(ds, seq)
    assert n == (1024 - 1) // seq
    idx = [0, n - 1, *rng.integers(0, n, 5).tolist()]
    w = data.eval_windows(ds, idx, seq)
    assert w.shape == (len(idx), seq + 1) and w.dtype == np.uint8
    for row, i in zip(w, idx, strict=True):
        assert row.tobytes() == digits[i * seq:i * seq + seq + 1]
    assert data.eval_windows(ds, [], seq).shape == (0, seq + 1)
    for bad in (n, -1):
        with pytest.raises(UserError, match="outside"):
            data.eval_windows(ds, [0, bad], seq)
    assert data.n_eval_windows(ds, 1023) == 1
    with pytest.raises(UserError, match="too large for the eval split"):
        data.n_eval_windows(ds, 1024)


# --- embedded corpus --------------------------------------------------------------------------------------


def test_embedded_corpus_is_deterministic_cached_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("POGO_CACHE_DIR", str(tmp_path / "one"))
    a = data.load_dataset(DataConfig())
    cached = a.path
    assert cached.parent == tmp_path / "one" and cached.name == f"stdlib-{platform.python_version()}.pogodata"
    files = data.stdlib_files()
    assert a.manifest["n_files"] == len(files) > 100
    assert not any(part in ("site-packages", "__pycache__") for rel, _ in files for part in rel.split("/"))
    rels = [rel.encode() for rel, _ in files]
    assert rels == sorted(rels)
    first, last = files[0][1].read_bytes(), files[-1][1].read_bytes()
    assert a.tokens[:len(first)].tobytes() == first and a.tokens[a.n_bytes - len(last):].tobytes() == last
    assert a.n_bytes == sum(p.stat().st_size for _, p in files)
    assert a.manifest["train"] == [0, a.eval_range[0]] and a.eval_range[0] % 65536 == 0

    monkeypatch.setenv("POGO_CACHE_DIR", str(tmp_path / "two"))
    b = data.load_dataset(DataConfig())
    assert b.data_root == a.data_root and b.path.read_bytes() == cached.read_bytes()

    # corrupt (one flipped token byte) and truncated caches are detected and rebuilt
    good = cached.read_bytes()
    monkeypatch.setenv("POGO_CACHE_DIR", str(tmp_path / "one"))
    for broken in (good[:-1000], good[:-1] + bytes([good[-1] ^ 1]), b"garbage"):
        cached.write_bytes(broken)
        c = data.load_dataset(DataConfig())
        assert c.data_root == a.data_root and cached.read_bytes() == good

    # other split parameters get their own cache file, never the default one
    d = data.load_dataset(DataConfig(shard_size=1 << 20, eval_fraction=0.1))
    assert d.path != cached and d.shard_size == 1 << 20 and d.data_root != a.data_root
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted([cached.name, d.path.name])


def test_check_data_root_names_both_roots(tmp_path, rng):
    ds, _, _ = _split_dataset(tmp_path, rng)
    data.check_data_root(ds, ds.data_root.hex(), "block 3")
    other = bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()
    with pytest.raises(UserError) as e:
        data.check_data_root(ds, other, "block 3")
    msg = str(e.value)
    assert "block 3" in msg and ds.data_root.hex() in msg and other in msg and "\n" not in msg
    with pytest.raises(UserError):
        data.check_data_root(ds, "abc", "block 3")


# --- CLI and imports --------------------------------------------------------------------------------------


def test_cli_pack_and_info(tmp_path, rng, capsys):
    out = tmp_path / "out.pogodata"
    assert main(["data", "pack", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "t.txt").write_bytes(_text(rng, 5000))
    assert main(["data", "pack", str(tmp_path / "t.txt"), "--out", str(out), "--shard-size", "1024"]) == 0
    text = capsys.readouterr().out
    ds = data.load_dataset(DataConfig(path=str(out)), verify=True)
    assert ds.data_root.hex() in text and "5000" in text
    assert main(["data", "info", str(out), "--verify"]) == 0
    assert json.loads(capsys.readouterr().out) == ds.manifest
    assert main(["data", "info", str(tmp_path / "t.txt")]) == 2
    assert "not a pogodata file" in capsys.readouterr().err


def test_data_modules_do_not_import_jax():
    code = "import sys, pogo_jax.train.data, pogo_jax.cli.data; sys.exit(1 if 'jax' in sys.modules else 0)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
