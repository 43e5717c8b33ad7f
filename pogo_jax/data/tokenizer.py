"""Byte-level BPE tokenizers: train one offline, check a tokenizer file, encode text, count text bytes.

A dataset names its tokenizer (never the miner): ``pogo data pack --tokenizer tok.json`` stores the file's
bytes in the dataset and its SHA-256 in the manifest (pogo_jax.spec.dataset). Only byte-level BPE files in
the Hugging Face ``tokenizers`` JSON format are accepted, without a normalizer: then every id decodes to a
fixed byte string, so the UTF-8 bytes any run of ids decodes from is a table lookup (``TokenInfo.lengths``)
and bits per byte needs no tokenizer library. Checking a file and counting bytes is stdlib + numpy; only
training and encoding import ``tokenizers`` (lazily). Trained tokenizers have no special tokens: documents
are concatenated as they are, the same rule as byte datasets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.spec.dataset import MAX_TOKENIZER_BYTES, MAX_VOCAB

MIN_VOCAB = 256  # the byte alphabet
_CHUNK = 1 << 22


@cache
def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the character a byte is written as in a vocab entry -> the byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


@dataclass(frozen=True, eq=False)
class TokenInfo:
    """A checked tokenizer file: its bytes, hash, vocabulary size and the UTF-8 byte length of every id."""

    blob: bytes
    vocab_size: int
    lengths: np.ndarray  # (vocab_size,) int64: bytes id i decodes to (0 for special tokens)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.blob).digest()

    def text_bytes(self, ids: np.ndarray) -> int:
        """UTF-8 bytes of the text ``ids`` decode from (in chunks: bounded memory on a long stream)."""
        flat = np.asarray(ids).reshape(-1)
        return sum(int(self.lengths[flat[lo:lo + _CHUNK]].sum()) for lo in range(0, flat.shape[0], _CHUNK))


def _bad(what: str, why: str) -> UserError:
    return UserError(f"{what} is not a byte-level BPE tokenizer file ({why}); make one with "
                     "`pogo data tokenizer train PATH... --vocab N --out tok.json`")


def _has_byte_level(obj: object) -> bool:
    if not isinstance(obj, dict):
        return False
    if obj.get("type") == "ByteLevel":
        return True
    return obj.get("type") == "Sequence" and any(_has_byte_level(x) for x in obj.get("pretokenizers", []))


def parse_tokenizer(blob: bytes, what: str = "tokenizer file") -> TokenInfo:
    """Check a tokenizer file's bytes (stdlib + numpy, no ``tokenizers``): a BPE model with a byte-level
    pre-tokenizer and decoder, no normalizer, ids exactly 0..V-1, V <= 2**32."""
    if not 0 < len(blob) <= MAX_TOKENIZER_BYTES:
        raise _bad(what, f"{len(blob)} bytes, expected 1 to {MAX_TOKENIZER_BYTES}")
    try:
        obj = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        raise _bad(what, "not JSON") from None
    model = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise _bad(what, "no BPE model with a vocab")
    if obj.get("normalizer") is not None:
        raise _bad(what, "it has a normalizer, so its ids do not decode to the exact input bytes")
    if not _has_byte_level(obj.get("pre_tokenizer")) or not _has_byte_level(obj.get("decoder")):
        raise _bad(what, "its pre-tokenizer or decoder is not ByteLevel")
    ids: dict[int, int] = {}
    chars = _byte_of_char()
    for tok, i in model["vocab"].items():
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < MAX_VOCAB:
            raise _bad(what, f"id {i!r} of {tok!r}")
        if not all(c in chars for c in tok):
            raise _bad(what, f"vocab entry {tok!r} is not written in the byte-level alphabet")
        ids[i] = len(tok)
    for a in obj.get("added_tokens") or []:
        if not isinstance(a, dict) or not isinstance(a.get("id"), int) or not isinstance(a.get("content"), str):
            raise _bad(what, "malformed added_tokens")
        ids[a["id"]] = 0 if a.get("special") else len(a["content"].encode("utf-8"))
    v = len(ids)
    if v == 0 or min(ids) != 0 or max(ids) != v - 1:
        raise _bad(what, "its ids are not exactly 0..V-1")
    if v > MAX_VOCAB:
        raise UserError(f"{what}: a vocabulary of {v} ids is over 2**32")
    lengths = np.zeros(v, dtype=np.int64)
    for i, n in ids.items():
        lengths[i] = n
    return TokenInfo(blob, v, lengths)


def load_tokenizer(path: str | Path) -> TokenInfo:
    what = f"tokenizer file '{path}'"
    try:
        blob = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found") from None
    except IsADirectoryError:
        raise UserError(f"{what} is a directory; give the .json file") from None
    except OSError as e:
        raise UserError(f"cannot read {what}: {e.strerror}") from None
    return parse_tokenizer(blob, what)


def _lib():  # noqa: ANN202 - the tokenizers module
    try:
        import tokenizers
    except ImportError:
        raise UserError("tokenizing needs the Hugging Face tokenizers library: pip install tokenizers") from None
    return tokenizers


class Encoder:
    """Encodes text with a checked tokenizer (``tokenizers``); refuses ids whose bytes differ from the text."""

    def __init__(self, info: TokenInfo, what: str = "tokenizer") -> None:
        try:
            self.tok = _lib().Tokenizer.from_str(info.blob.decode("utf-8"))
        except Exception as e:  # noqa: BLE001 - the library raises plain Exceptions on a bad file
            raise UserError(f"{what} does not load: {str(e).splitlines()[0][:200]}") from None
        self.info = info

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The ids of ``texts`` concatenated (no separator), int64."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encs = self.tok.encode_batch(list(texts), add_special_tokens=False)
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encs])
        want = sum(len(t.encode("utf-8")) for t in texts)
        if self.info.text_bytes(ids) != want:
            raise UserError("the tokenizer does not reproduce its input bytes (special tokens in the text, or a "
                            "tokenizer that drops or changes bytes); use one from `pogo data tokenizer train`")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)


def train_tokenizer(texts: Iterable[str], vocab: int, out: str | Path) -> TokenInfo:
    """Train a byte-level BPE of at most ``vocab`` ids on ``texts`` and write it atomically to ``out``."""
    if not MIN_VOCAB < vocab <= MAX_VOCAB:
        raise UserError(f"--vocab must be in ({MIN_VOCAB}, 2**32] (the 256 bytes plus merges), got {vocab}")
    out = Path(out).expanduser()
    if out.is_dir() or not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise UserError(f"cannot write '{out}': give a file name in an existing directory")
    tk = _lib()
    seen = [0]

    def counted() -> Iterable[str]:
        for t in texts:
            seen[0] += len(t)
            yield t

    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
                                     show_progress=False)
    tok.train_from_iterator(counted(), trainer)
    if seen[0] == 0:
        raise UserError("the corpus is empty: no text to train a tokenizer on")
    blob = tok.to_str().encode("utf-8")
    info = parse_tokenizer(blob, "the trained tokenizer")
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write '{out}': {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(blob)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return info
