"""Corpus importers (text folders, JSONL, Parquet, nanoGPT .bin) and the bad inputs of `pogo data pack` /
`pogo data tokenizer train`: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import secrets
import sys

import numpy as np
import pytest

from pogo_jax.cli import main
from pogo_jax.data.tokenizer import Encoder, load_tokenizer
from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.dataset import parse_manifest, read_packed
from pogo_jax.train import data


@pytest.fixture
def rng() -> np.random.Generator:
    seed = secrets.randbits(32)
    print(f"test seed = {seed}")
    return np.random.default_rng(seed)


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    words = ["alpha", "beta", "γάμμα", "δ", "print(x)", "\n", "🎉", "zeta"]
    return [" ".join(rng.choice(words, size=int(rng.integers(5, 40)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    texts = _texts(np.random.default_rng(1), 200)
    (d / "c.txt").write_text("".join(texts), encoding="utf-8")
    data.train_tokenizer([d / "c.txt"], 320, d / "tok.json")
    return d / "tok.json"


def test_jsonl_records_with_a_named_field(tmp_path, rng, tok):
    texts = _texts(rng, 50)
    lines = [json.dumps({"body": t, "id": i}) for i, t in enumerate(texts)]
    lines.insert(3, "not json")
    lines.insert(7, json.dumps({"text": "no body field"}))
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    skipped = []
    ds = data.pack([tmp_path / "c.jsonl"], tmp_path / "b.pogodata", shard_size=256, text_field="body",
                   on_skip=lambda p, why: skipped.append((p.name, why)))
    assert np.asarray(ds.tokens).tobytes() == "".join(texts).encode("utf-8")  # bytes dataset: the records' text
    assert skipped == [("c.jsonl", "2 of 52 lines skipped: not JSON or no string field 'body'")]
    t = data.pack([tmp_path / "c.jsonl"], tmp_path / "t.pogodata", shard_size=256, text_field="body", tokenizer=tok)
    assert Encoder(load_tokenizer(tok)).decode(t.tokens) == "".join(texts)
    assert t.text_bytes("train") + t.text_bytes("eval") == len("".join(texts).encode("utf-8"))
    # default field "text": only one record has it
    one = data.pack([tmp_path / "c.jsonl"], tmp_path / "one.pogodata", shard_size=4, eval_fraction=0.5)
    assert np.asarray(one.tokens).tobytes() == b"no body field"


def test_parquet_rows_streamed_in_batches(tmp_path, rng, tok):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    texts = _texts(rng, 2500)  # more than one record batch of 1024
    pq.write_table(pa.table({"content": texts, "n": list(range(len(texts)))}), tmp_path / "c.parquet",
                   row_group_size=700)
    pq.write_table(pa.table({"other": ["x"]}), tmp_path / "wrong.parquet")
    skipped = []
    ds = data.pack([tmp_path], tmp_path.parent / f"{tmp_path.name}.pogodata", shard_size=1024, text_field="content",
                   tokenizer=tok, on_skip=lambda p, why: skipped.append((p.name, why)))
    assert Encoder(load_tokenizer(tok)).decode(ds.tokens) == "".join(texts)
    assert [s[0] for s in skipped] == ["wrong.parquet"] and "no column 'content'" in skipped[0][1]
    assert (ds.manifest["n_files"], ds.manifest["n_skipped"]) == (1, 1)


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "c.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UserError, match=r"pip install 'pogo-jax\[parquet\]'"):
        data.pack([tmp_path / "c.parquet"], tmp_path / "o.pogodata")
    assert not (tmp_path / "o.pogodata").exists()


def test_nanogpt_bin_of_uint16_ids(tmp_path, rng, tok):
    info = load_tokenizer(tok)
    texts = _texts(rng, 300)
    ids = Encoder(info).encode(texts)
    ids.astype("<u2").tofile(tmp_path / "train.bin")
    ds = data.pack([tmp_path / "train.bin"], tmp_path / "b.pogodata", shard_size=512, tokenizer=tok)
    assert np.array_equal(ds.tokens, ids) and ds.vocab_size == 320
    assert ds.text_bytes("train") + ds.text_bytes("eval") == len("".join(texts).encode("utf-8"))
    # an id at or above the tokenizer's vocabulary: another tokenizer made this file
    bad = ids.astype("<u2")
    pos = int(rng.integers(0, bad.shape[0]))
    bad[pos] = 320 + int(rng.integers(0, 1000))
    bad.tofile(tmp_path / "bad.bin")
    with pytest.raises(UserError, match=f"at position {pos}"):
        data.pack([tmp_path / "bad.bin"], tmp_path / "x.pogodata", shard_size=512, tokenizer=tok)
    with pytest.raises(UserError, match="--tokenizer"):
        data.pack([tmp_path / "train.bin"], tmp_path / "x.pogodata", shard_size=512)
    assert not (tmp_path / "x.pogodata").exists()


def _only(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, rng, tok, capsys):
    good = tmp_path / "good.txt"
    good.write_text("".join(_texts(rng, 100)), encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    (tmp_path / "notjson.json").write_text("{ not json")
    (tmp_path / "wordpiece.json").write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 0}}}))
    before = _only(tmp_path)
    out = str(tmp_path / "o.pogodata")
    cases = [
        (["data", "pack", str(tmp_path / "empty"), "--out", out], "no readable text files"),
        (["data", "pack", str(tmp_path / "empty"), "--out", out, "--tokenizer", str(tok)], "no readable text files"),
        (["data", "tokenizer", "train", str(tmp_path / "empty"), "--vocab", "300", "--out", str(tmp_path / "t.json")],
         "empty"),
        (["data", "pack", str(good), "--out", out, "--tokenizer", str(tmp_path / "notjson.json")], "not JSON"),
        (["data", "pack", str(good), "--out", out, "--tokenizer", str(tmp_path / "wordpiece.json")], "no BPE model"),
        (["data", "pack", str(good), "--out", out, "--tokenizer", str(good)], "not a byte-level BPE tokenizer"),
        (["data", "pack", str(tmp_path / "odd.bin"), "--out", out, "--tokenizer", str(tok)], "odd length"),
        (["data", "tokenizer", "train", str(good), "--vocab", str(2**32 + 1), "--out", str(tmp_path / "t.json")],
         "--vocab must be in"),
        (["data", "tokenizer", "train", str(good), "--vocab", "100", "--out", str(tmp_path / "t.json")],
         "--vocab must be in"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("skipped ")]
        assert len(err) == 1 and msg in err[0], (argv, err)
        assert _only(tmp_path) == before  # no output, no temp file left behind


def test_cli_tokenizer_train_then_pack(tmp_path, rng, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i, t in enumerate(_texts(rng, 80)):
        (src / f"{i}.txt").write_text(t, encoding="utf-8")
    (src / "blob.dat").write_bytes(b"\x00\xff" * 10)
    assert main(["data", "tokenizer", "train", str(src), "--vocab", "300", "--out", str(tmp_path / "tok.json")]) == 0
    cap = capsys.readouterr()
    assert "skipped" in cap.err and "blob.dat: binary or not UTF-8 text" in cap.err
    assert main(["data", "pack", str(src), "--out", str(tmp_path / "d.pogodata"), "--tokenizer",
                 str(tmp_path / "tok.json"), "--shard-size", "512"]) == 0
    out = capsys.readouterr().out
    ds = read_packed(tmp_path / "d.pogodata", verify=True)
    assert ds.data_root.hex() in out and f"vocabulary {ds.vocab_size}" in out and ds.manifest["n_skipped"] == 1


def test_manifest_token_fields_are_checked(tmp_path):
    from chainkit import make_dataset

    m = read_packed(make_dataset(tmp_path / "d.pogodata", n_bytes=20_000, shard=1024, sealed=0, vocab=600),
                    verify=False).manifest
    parse_manifest(json.loads(json.dumps(m)), "m")
    bad = [
        {**m, "tokens": {**m["tokens"], "width": 4}},  # 600 ids are stored as uint16
        {**m, "tokens": {**m["tokens"], "vocab_size": 2**32 + 1}},
        {**m, "tokens": {**m["tokens"], "tokenizer": "wordpiece"}},
        {**m, "tokens": {**m["tokens"], "text_bytes": {"train": 1}}},
        {**m, "shard_size": 1023, "n_shards": -(-m["n_bytes"] // 1023)},  # shards would split a token
        {**m, "tokens": {**m["tokens"], "extra": 1}},
    ]
    for b in bad:
        with pytest.raises(MalformedInput):
            parse_manifest(b, "m")
