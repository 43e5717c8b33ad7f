"""The beacon (PROTOCOL 4.2): one unpredictable 32-byte value per round, from a service no other role can read.

A commit-then-reveal hash chain: from a secret ``s`` and a length ``L``, ``value(i) = H^(L-i)(s)``
with ``H(x) = SHA-256(b"pogo/beacon/v1" || x)``. The anchor ``value(0)`` is published in the
genesis record; a reveal proves itself (``H(value(i)) == value(i-1)``) yet says nothing about
``value(i+1)``. Indices count reveals: round after round, never reused.

``BeaconService`` is the only holder of ``s`` (its own directory, mode 0600). It is bound to one
chain and one node key (pinned, or trust on first use), and it releases the value of round (h, a)
only against the node's *signed* submit ``Close`` record for that round whose time has passed on
the beacon's own clock, and only once: asking twice for a round returns the same signed reveal, and
rounds only move forward. So neither a miner (no node signature) nor the node itself (it cannot make
the beacon reveal before the close time, nor twice for one round) can learn a value early or choose
among values. Every reveal is written to ``reveals.jsonl`` (fsync) before it is returned.

It also holds the keys of the chain's sealed evaluation shards (PROTOCOL 14; ``keys/<manifest
hash>.json``, copied in by ``pogo beacon serve --eval-keys FILE``) and releases shard ``i`` of a dataset
with the reveal of the ``i``-th round judged on that dataset, never earlier and never out of order: the
close record names the dataset and the shard, and the beacon refuses any shard but the next one it has
not released. A shard it holds no key for is released as ``null`` (the round closes empty).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from pogo_jax.chain.log import GENESIS_PREV, Entry, check_chain
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.spec.encoding import canonical, parse_canonical
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import generate_key, load_private_pem, public_bytes, save_private_pem, write_secret_file
from pogo_jax.spec.records import Close, Reveal, read_record
from pogo_jax.spec.sealed import read_keys

BEACON_DOMAIN = b"pogo/beacon/v1"
DEFAULT_LENGTH = 4096
MAX_LENGTH = 1 << 20
SKEW_MS = 2_000  # the node's close time may be at most this far ahead of the beacon's clock
MAX_LOG_SEGMENT = 100_000  # entries one reveal request may carry (a round's writes, many times over)


def _body_hash(record: bytes) -> str:
    """Hex SHA-256 of a signed record's canonical body (for the genesis record: the chain id)."""
    obj = parse_canonical(record, "genesis record", 1 << 20)
    if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
        raise MalformedInput("the genesis entry does not hold a signed record")
    return hashlib.sha256(canonical(obj["body"])).hexdigest()


def step(x: bytes) -> bytes:
    """One link of the hash chain: value(i - 1) = step(value(i))."""
    return hashlib.sha256(BEACON_DOMAIN + x).digest()


def walk(x: bytes, n: int) -> bytes:
    for _ in range(n):
        x = step(x)
    return x


def verify_next(previous: bytes, value: bytes) -> bool:
    """``value`` is the reveal right after ``previous`` (the anchor for index 1)."""
    return isinstance(value, bytes) and len(value) == 32 and step(value) == previous


def verify_index(anchor: bytes, index: int, value: bytes) -> bool:
    """``value`` hashed ``index`` times is ``anchor`` (cost: ``index`` hashes)."""
    return isinstance(value, bytes) and len(value) == 32 and 1 <= index <= MAX_LENGTH and walk(value, index) == anchor


def now_ms() -> int:
    return int(time.time() * 1000)


class BeaconService:
    """The beacon's secret, signing key and reveal log in one directory (see the module docstring)."""

    def __init__(self, directory: str | Path, clock=now_ms) -> None:
        self.dir = Path(directory)
        self.clock = clock
        meta_f, secret_f, key_f = self.dir / "beacon.json", self.dir / "secret.key", self.dir / "key.pem"
        if not (meta_f.is_file() and secret_f.is_file() and key_f.is_file()):
            raise UserError(f"no beacon in {self.dir} (create one with: pogo beacon serve --dir {self.dir})")
        try:
            meta = json.loads(meta_f.read_text())
            self.length = int(meta["length"])
            self.anchor = bytes.fromhex(meta["anchor"])
            self._secret = bytes.fromhex(secret_f.read_text().strip())
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise UserError(f"beacon state in {self.dir} is unreadable (corrupted files?)") from None
        ok = 1 <= self.length <= MAX_LENGTH and len(self._secret) == 32
        if not ok or walk(self._secret, self.length) != self.anchor:
            raise UserError(f"beacon secret in {self.dir} does not hash to its anchor (files mixed up?)")
        self.key = load_private_pem(key_f)
        self.public = public_bytes(self.key)
        self.reveals: list[dict] = []
        log = self.dir / "reveals.jsonl"
        if log.is_file():
            for line in log.read_text().splitlines():
                if line.strip():
                    self.reveals.append(json.loads(line))
        self.binding = json.loads((self.dir / "binding.json").read_text()) if (self.dir / "binding.json").is_file() \
            else None
        self.eval_keys: dict[bytes, tuple[bytes, ...]] = {}
        self._load_keys()

    def _load_keys(self) -> None:
        """The keys files in ``keys/`` (``add_keys`` from this or another process puts them there)."""
        kd = self.dir / "keys"
        if kd.is_dir():
            for f in sorted(kd.glob("*.json")):
                if bytes.fromhex(f.stem) not in self.eval_keys:
                    k = read_keys(f)
                    self.eval_keys[k.manifest_hash] = k.keys

    def add_keys(self, path: str | Path) -> bytes:
        """Take a dataset's shard keys into the beacon's own directory (mode 0600); returns its manifest hash."""
        k = read_keys(path)
        held = self.eval_keys.get(k.manifest_hash)
        if held is not None and held != k.keys:
            raise UserError(f"the beacon already holds other keys for dataset {k.manifest_hash.hex()[:16]}...")
        if held is None:
            kd = self.dir / "keys"
            kd.mkdir(mode=0o700, exist_ok=True)
            write_secret_file(kd / f"{k.manifest_hash.hex()}.json", Path(path).expanduser().read_bytes())
            self.eval_keys[k.manifest_hash] = k.keys
        return k.manifest_hash

    @classmethod
    def create(cls, directory: str | Path, length: int = DEFAULT_LENGTH, secret: bytes | None = None,
               clock=now_ms, key=None) -> BeaconService:  # noqa: ANN001
        """A new beacon: random (or given, for tests) secret, fresh (or given) signing key; refuses to overwrite."""
        d = Path(directory)
        if (d / "beacon.json").exists():
            raise UserError(f"a beacon already exists in {d}")
        if not 1 <= length <= MAX_LENGTH:
            raise UserError(f"beacon length must be in [1, {MAX_LENGTH}], got {length}")
        s = os.urandom(32) if secret is None else secret
        if len(s) != 32:
            raise ValueError("beacon secret must be 32 bytes")
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        write_secret_file(d / "secret.key", s.hex().encode() + b"\n")
        save_private_pem(generate_key() if key is None else key, d / "key.pem")
        meta = {"version": 1, "kind": "hash-chain", "length": length, "anchor": walk(s, length).hex()}
        write_secret_file(d / "beacon.json", json.dumps(meta, sort_keys=True).encode() + b"\n")
        return cls(d, clock)

    @classmethod
    def open_or_create(cls, directory: str | Path, length: int = DEFAULT_LENGTH, clock=now_ms) -> BeaconService:
        d = Path(directory)
        return cls(d, clock) if (d / "beacon.json").exists() else cls.create(d, length, clock=clock)

    def info(self) -> dict:
        return {"key": self.public.hex(), "anchor": self.anchor.hex(), "length": self.length,
                "revealed": len(self.reveals), "binding": self.binding,
                "eval_keys": {h.hex(): len(k) for h, k in sorted(self.eval_keys.items())}}

    def bind(self, chain_id: str, node_key: bytes) -> None:
        """Serve one chain and one node: pinned by the first call (or ``pogo beacon serve --node-key``)."""
        want = {"chain_id": chain_id, "node_key": node_key.hex()}
        if self.binding is None:
            atomic_write_bytes(self.dir / "binding.json", json.dumps(want, sort_keys=True).encode())
            self.binding = want
        elif self.binding != want:
            raise Rejected("WRONG_NODE", "this beacon serves another chain or node key")

    @property
    def head(self) -> tuple[int, bytes] | None:
        """The last log entry this beacon countersigned (the submit close of its last reveal)."""
        for rec in reversed(self.reveals):
            if "head_seq" in rec:
                return rec["head_seq"], bytes.fromhex(rec["head"])
        return None

    def _check_log(self, log: list[Entry], close_bytes: bytes, chain_id: str) -> tuple[int, bytes]:
        """``log`` must run, hash-linked, from the head this beacon last signed (from genesis the first time)
        to the close entry itself: so the node cannot get a value for a history that forks off one the beacon
        already countersigned (docs/protocol.md section 22). Returns the close entry's (seq, hash): the new head."""
        if not log or len(log) > MAX_LOG_SEGMENT:
            raise MalformedInput(f"a reveal request carries 1 to {MAX_LOG_SEGMENT} log entries, got {len(log)}")
        check_chain(log, log[0].prev, log[0].seq)
        head = self.head
        if head is None:
            first = log[0]
            if first.seq != 0 or first.prev != GENESIS_PREV or first.kind != "genesis" or \
                    _body_hash(first.record) != chain_id:
                raise Rejected("NOT_FROM_GENESIS", "the first reveal needs the log from the chain's genesis entry")
        else:
            i = head[0] - log[0].seq
            if not 0 <= i < len(log) or log[i].hash != head[1]:
                raise Rejected("FORK", f"the node's log does not extend entry {head[0]} ({head[1].hex()[:16]}...), "
                                       "which this beacon countersigned: the node rewrote history")
        last = log[-1]
        if last.kind != "close" or last.record != close_bytes:
            raise MalformedInput("the log segment must end with the close entry itself")
        return last.seq, last.hash

    def reveal(self, close_bytes: bytes, log: list[Entry]) -> bytes:
        """The signed reveal for the round that ``close_bytes`` (the node's signed submit Close) closes; ``log``:
        the node's entries from this beacon's head (``head``; genesis at first) through that close."""
        signed = read_record(close_bytes, "close")
        c: Close = signed.body
        if self.binding is None:
            raise Rejected("NOT_BOUND", "this beacon is bound to no chain yet")
        if c.chain_id != self.binding["chain_id"] or c.node_key.hex() != self.binding["node_key"]:
            raise Rejected("WRONG_NODE", "the close record is not from the node this beacon serves")
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", "the close record is not signed by the node")
        if c.window != "submit":
            raise MalformedInput("only a submit close record releases a beacon value")
        now = self.clock()
        if c.at > now + SKEW_MS:
            raise Rejected("TOO_EARLY", f"the close record is dated {c.at - now} ms ahead of the beacon's clock")
        for rec in self.reveals:
            if (rec["height"], rec["round"]) == (c.height, c.round):
                if rec["close"] != signed.hash.hex():
                    raise Rejected("ALREADY_REVEALED", "this round's value was released against another close record")
                return rec["reveal"].encode("ascii")
        head_seq, head = self._check_log(log, close_bytes, c.chain_id)
        if self.reveals and (c.height, c.round) < (self.reveals[-1]["height"], self.reveals[-1]["round"]):
            raise Rejected("STALE_ROUND", "rounds only move forward")
        released = sum(1 for rec in self.reveals if rec.get("data") == c.data.hex())
        if c.shard != released:
            raise Rejected("WRONG_SHARD", f"the close record names sealed shard {c.shard} of its dataset; the next one "
                                          f"this beacon releases is {released}")
        index = len(self.reveals) + 1
        if index > self.length:
            raise Rejected("EXHAUSTED", f"beacon chain exhausted after {self.length} reveals")
        value = walk(self._secret, self.length - index)
        if c.data not in self.eval_keys:
            self._load_keys()
        keys = self.eval_keys.get(c.data, ())
        shard_key = keys[c.shard] if c.shard < len(keys) else None
        body = Reveal(c.chain_id, self.public, c.height, c.round, index, value, now, signed.hash, c.data, c.shard,
                      shard_key)
        out = seal(body, self.key).to_bytes()
        rec = {"height": c.height, "round": c.round, "close": signed.hash.hex(), "data": c.data.hex(),
               "shard": c.shard, "reveal": out.decode("ascii"), "head_seq": head_seq, "head": head.hex()}
        with open(self.dir / "reveals.jsonl", "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.reveals.append(rec)
        return out
