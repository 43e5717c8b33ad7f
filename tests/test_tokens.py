"""Tokenized datasets: byte-level BPE tokenizers, uint16/uint32 streams, their manifests and golden hashes,
sealed shards of token ids (down to the chain's reveal annotation), bits per byte, vocab from the dataset."""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chainkit import Kit, keys_of, make_dataset, synthetic_tokenizer

from pogo_jax.config import Config, load_config, padded_vocab, resolve_vocab
from pogo_jax.data.tokenizer import Encoder, parse_tokenizer
from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.dataset import (
    _data_offset,
    check_chain_dataset,
    compute_data_root,
    manifest_hash,
    read_packed,
    verify_against,
)
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.sealed import windows_of
from pogo_jax.spec.units import bits_per_byte
from pogo_jax.train import data


@pytest.fixture
def rng() -> np.random.Generator:
    seed = secrets.randbits(32)
    print(f"test seed = {seed}")
    return np.random.default_rng(seed)


_WORDS = ["def", "return", "self", "the", "data", "token", "für", "naïve", "日本語", "🎉", "x", "=", "(", ")", ":",
          "\n", "    ", "import", "numpy", "as", "np"]


def corpus(rng: np.random.Generator, n_docs: int, words: int) -> list[str]:
    """Fresh random text with multi-byte UTF-8 characters."""
    return [" ".join(rng.choice(_WORDS, size=words)) + "\n" for _ in range(n_docs)]


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory) -> tuple:
    """A BPE of 300 ids trained on a fixed corpus (one training per module: tokenizer training is the slow bit)."""
    d = tmp_path_factory.mktemp("tok")
    texts = corpus(np.random.default_rng(0), 60, 80)
    for i, t in enumerate(texts):
        (d / "corpus" / f"{i:03d}.txt").parent.mkdir(exist_ok=True)
        (d / "corpus" / f"{i:03d}.txt").write_text(t, encoding="utf-8")
    path = d / "tok.json"
    info = data.train_tokenizer([d / "corpus"], 300, path)
    return path, info


# ------------------------------------------------------------------------------------------ units


def test_bits_per_byte_hand_worked():
    # 100 tokens at 2 nats each = 200 nats over 250 bytes = 0.8 nats/byte = 0.8 / ln 2 = 1.15415603... bits/byte
    assert bits_per_byte(2.0, 100, 250) == pytest.approx(1.1541560327111708, rel=1e-15)
    # bytes as tokens: nats/token over ln 2
    assert bits_per_byte(math.log(2), 7, 7) == pytest.approx(1.0)
    assert bits_per_byte(0.0, 10, 3) == 0.0
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 10, 0)


# ------------------------------------------------------------------------------------------ tokenizer


def test_tokenizer_round_trip_and_deterministic_training(tmp_path, tok_file, rng):
    path, info = tok_file
    assert info.vocab_size == 300 and parse_tokenizer(path.read_bytes()).vocab_size == 300
    enc = Encoder(info)
    for text in corpus(rng, 5, 40) + ["", "a\x01b\tc\r\n", "ünïcödé 🎉🎉 ∑"]:
        ids = enc.encode([text])
        assert enc.decode(ids) == text
        assert info.text_bytes(ids) == len(text.encode("utf-8"))  # the byte-length table is exact
    # the same corpus trains the same file, byte for byte
    again = data.train_tokenizer([path.parent / "corpus"], 300, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes() and again.sha256 == info.sha256


def test_pack_tokenizes_and_binds_the_tokenizer(tmp_path, tok_file, rng):
    path, info = tok_file
    texts = corpus(rng, 40, 60)
    src = tmp_path / "src"
    src.mkdir()
    for i, t in enumerate(texts):
        (src / f"{i:03d}.txt").write_text(t, encoding="utf-8")
    ds = data.pack([src], tmp_path / "a.pogodata", shard_size=256, eval_fraction=0.2, tokenizer=path)
    full = "".join(texts)
    assert ds.tokens.dtype == np.dtype("<u2") and ds.width == 2 and ds.vocab_size == 300
    assert Encoder(info).decode(np.asarray(ds.tokens)) == full
    t = ds.manifest["tokens"]
    assert t["tokenizer_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.tokenizer == path.read_bytes()  # the tokenizer file ships inside the dataset
    assert t["text_bytes"]["train"] + t["text_bytes"]["eval"] == len(full.encode("utf-8"))
    assert ds.text_bytes("train") == info.text_bytes(ds.tokens[:ds.train_range[1]])
    assert ds.manifest["n_bytes"] == 2 * ds.n_tokens and ds.eval_range[1] == ds.n_tokens
    raw = (tmp_path / "a.pogodata").read_bytes()
    off = _data_offset(len(canonical(ds.manifest)))
    assert raw[off:off + ds.n_bytes] == np.asarray(ds.tokens).astype("<u2").tobytes()  # little-endian ids
    assert raw[off + ds.n_bytes:] == path.read_bytes()

    # the same ids with a tokenizer file that differs only in its bytes: same data_root, another manifest hash
    other = tmp_path / "tok-other.json"
    other.write_bytes(json.dumps(json.loads(path.read_bytes()), indent=1).encode())
    b = data.pack([src], tmp_path / "b.pogodata", shard_size=256, eval_fraction=0.2, tokenizer=other)
    assert np.array_equal(b.tokens, ds.tokens) and b.data_root == ds.data_root
    assert b.manifest_hash != ds.manifest_hash
    with pytest.raises(MalformedInput, match="manifest hash"):
        verify_against(b, ds.data_root, ds.manifest_hash, "the recorded dataset")  # a chain that recorded `a`

    # a file whose shipped tokenizer was swapped (same length) is refused on read
    blob = bytearray(raw)
    blob[-10] ^= 0x20
    with pytest.raises(MalformedInput, match="tokenizer"):
        read_packed(bytes(blob), verify=False)
    # and a manifest naming another tokenizer hash does not match the recorded one
    with pytest.raises(MalformedInput):
        verify_against(read_packed(raw, verify=True), ds.data_root, b.manifest_hash, "x")


# ------------------------------------------------------------------------------------------ golden manifests


GOLDEN = {  # manifest hashes of the datasets below: pin the uint16/uint32 stream, split, tokenizer and text bytes
    1000: "2849a9af434f00d0aedf2c94639bca7894b2917d7953594d6ab390900e4c2c96",
    70000: "2faf429084df9296e769a862f4e3ec4ec392d7939e9a764c54214082808342e9",
}


@pytest.mark.parametrize("vocab,width", [(1000, 2), (70000, 4)])
def test_golden_token_manifests(tmp_path, vocab, width):
    ids = (np.arange(40_000 // width, dtype=np.int64) * 48271 + 11) % vocab  # a fixed stream over the whole vocab
    p = tmp_path / "d.pogodata"
    data._build(ids, 1024, 0.1, "golden", 1, 0, p, None, parse_tokenizer(synthetic_tokenizer(vocab)))
    ds = read_packed(p, verify=True)
    assert ds.width == width and ds.tokens.dtype == np.dtype(f"<u{width}")
    assert np.array_equal(ds.tokens, ids)  # the stored ids, exactly
    assert ds.data_root == compute_data_root(ids.astype(f"<u{width}").view(np.uint8), 1024)
    m = ds.manifest
    assert m["tokens"]["vocab_size"] == vocab and m["tokens"]["width"] == width and m["version"] == 1
    assert m["n_bytes"] == 40_000 and m["train"][1] % 1024 == 0
    assert manifest_hash(m).hex() == GOLDEN[vocab]


def test_byte_datasets_keep_their_manifest(tmp_path):
    """A byte dataset has no tokens section, width 1, uint8: the format every existing dataset has."""
    p = make_dataset(tmp_path / "d.pogodata", n_bytes=20_000, shard=1024, seed=5, sealed=0)
    ds = read_packed(p, verify=True)
    assert "tokens" not in ds.manifest and ds.width == 1 and ds.tokens.dtype == np.uint8 and ds.tokenizer is None
    assert ds.vocab_size == 256 and ds.text_bytes("eval") == ds.eval_range[1] - ds.eval_range[0]


# ------------------------------------------------------------------------------------------ batches and windows


def test_batches_and_windows_are_ids_of_the_dataset_width(tmp_path):
    p = make_dataset(tmp_path / "d.pogodata", n_bytes=80_000, shard=1024, seed=2, sealed=0, vocab=70000)
    ds = read_packed(p, verify=True)
    ids = np.asarray(ds.tokens)
    b = data.train_batch(ds, 3, 9, 4, 32)
    starts = data.train_starts(ds, 3, 9, 4, 32)
    assert b.dtype == np.dtype("<u4") and b.shape == (4, 33)
    assert all(np.array_equal(b[i], ids[s:s + 33]) for i, s in enumerate(starts))
    assert b.max() >= 256  # real ids, not bytes
    w = data.eval_windows(ds, [0, 2], 32)
    lo = ds.eval_range[0]
    assert np.array_equal(w[1], ids[lo + 64:lo + 97])
    assert data.n_eval_windows(ds, 32) == (ds.eval_range[1] - lo - 1) // 32


# ------------------------------------------------------------------------------------------ sealed shards


def test_sealed_shards_of_token_ids(tmp_path, tok_file, rng):
    path, info = tok_file
    texts = corpus(rng, 200, 60)
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    spec = data.SealSpec(4, 512, tmp_path / "keys.json", seed=b"tok %d" % rng.integers(1 << 30))
    ds = data.pack([src], tmp_path / "s.pogodata", shard_size=512, eval_fraction=0.1, seal_spec=spec, tokenizer=path)
    keys = [bytes.fromhex(k) for k in json.loads((tmp_path / "keys.json").read_text())["keys"]]
    assert ds.sealed.width == 2 and ds.sealed.shard_tokens == 256 and ds.sealed.n_windows(16) == 15
    t = ds.manifest["tokens"]["text_bytes"]
    plains = []
    for i, k in enumerate(keys):
        plain = ds.open_shard(i, k)
        assert plain.dtype == np.dtype("<u2") and plain.shape == (256,)
        assert hashlib.sha256(plain.tobytes()).digest() == ds.sealed.shards[i].plain_sha256
        assert t["sealed"][i] == info.text_bytes(plain)
        plains.append(plain)
    # public + sealed text is the whole corpus
    assert t["train"] + t["eval"] + sum(t["sealed"]) == len("".join(texts).encode("utf-8"))
    w = windows_of(plains[1], [0, 14], 16)
    assert np.array_equal(w[1], plains[1][224:241])
    with pytest.raises(MalformedInput):
        ds.open_shard(0, keys[1])
    # sealed shards must hold whole tokens
    public = data.pack([src], tmp_path / "p.pogodata", shard_size=512, tokenizer=path)
    with pytest.raises(UserError, match="multiples of the token width"):
        data.seal_dataset(public.path, tmp_path / "s2.pogodata", data.SealSpec(2, 513, tmp_path / "k2.json"))
    assert not (tmp_path / "s2.pogodata").exists() and not (tmp_path / "k2.json").exists()


def test_chain_reveal_annotation_on_a_token_dataset(tmp_path):
    """The chain's round on a uint16 dataset: the reveal's sealed-shard annotation is OK and the round's
    evaluation windows are token ids from the opened shard."""
    data_file = make_dataset(tmp_path / "data.pogodata", vocab=1000)
    k = Kit(tmp_path, dataset=data_file)
    m = k.make(0)
    k.submit(m)
    r = k.st.round
    k.close_submit()
    reveal = [e for e in k.chain.ledger.entries() if e.kind == "reveal"][-1]
    assert reveal.extra == {"sealed": "OK"}
    keys = [bytes.fromhex(x) for x in json.loads(keys_of(data_file).read_text())["keys"]]
    ds = read_packed(data_file, verify=True)
    ctx = k.st.context(m.hash)
    got = ctx.eval_tokens(ds)
    assert got.dtype == np.dtype("<u2") and got.shape == (4, 17)
    plain = ds.open_shard(r.shard, keys[r.shard])
    assert np.array_equal(got, windows_of(plain, ctx.windows, 16))
    assert ctx.n_windows == (1024 // 2 - 1) // 16  # windows count tokens, not bytes


def test_chain_refuses_a_dataset_the_model_cannot_embed(tmp_path):
    """A token dataset whose ids exceed the chain model's vocabulary would be clipped by the embedding
    (silently wrong losses): genesis and epochs refuse it."""
    m = read_packed(make_dataset(tmp_path / "d.pogodata", vocab=1000), verify=False).manifest
    check_chain_dataset(m, 16, 4, "d", 1024)
    with pytest.raises(MalformedInput, match="embeds 256"):
        check_chain_dataset(m, 16, 4, "d", 256)
    byte_m = read_packed(make_dataset(tmp_path / "b.pogodata"), verify=False).manifest
    check_chain_dataset(byte_m, 16, 4, "b", 256)


# ------------------------------------------------------------------------------------------ vocab from the dataset


def test_vocab_size_comes_from_the_dataset():
    assert [padded_vocab(v) for v in (256, 257, 4096, 4097, 50257)] == [256, 384, 4096, 4224, 50304]
    cfg, note = resolve_vocab(Config(), 4000, True)
    assert cfg.model.vocab_size == 4096 and "4000 ids padded" in note
    same, _ = resolve_vocab(load_config("small-bpe"), 4000, True)
    assert same.model.vocab_size == 4096
    with pytest.raises(UserError, match="disagrees"):
        resolve_vocab(load_config("small-bpe"), 5000, True)
    assert resolve_vocab(Config(), 256, False)[0] == Config()  # byte datasets: unchanged (hashes too)
    big = load_config("gpt2-124m")
    assert resolve_vocab(big, 256, False)[0].model.vocab_size == 50304


def test_light_verifier_reads_a_token_dataset_without_tokenizers_or_jax(tmp_path):
    """Checking a token dataset against its recorded roots needs only numpy (no tokenizers library, no jax)."""
    p = make_dataset(tmp_path / "d.pogodata", n_bytes=20_000, shard=1024, sealed=2, sealed_bytes=512, vocab=600)
    ds = read_packed(p, verify=False)
    code = ("import sys; sys.modules['tokenizers'] = None\n"
            "from pogo_jax.spec.dataset import read_packed, verify_against\n"
            "from pogo_jax.data.tokenizer import parse_tokenizer\n"
            f"ds = read_packed({str(p)!r}, verify=True)\n"
            f"verify_against(ds, bytes.fromhex({ds.data_root.hex()!r}), bytes.fromhex({ds.manifest_hash.hex()!r}), 'd')\n"
            "assert parse_tokenizer(ds.tokenizer).vocab_size == 600\n"
            "sys.exit(1 if 'jax' in sys.modules else 0)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0


def test_synthetic_tokenizer_is_valid():
    info = parse_tokenizer(synthetic_tokenizer(600))
    assert info.vocab_size == 600 and info.lengths[:256].tolist() == [1] * 256 and set(info.lengths[256:]) == {2}
