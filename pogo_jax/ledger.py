"""The ledger: one SQLite file with the chain's headers, beacons, attestations, stakes and events.

Why SQLite: one file that every role can open, with transactions. Every state change below runs
in one ``BEGIN IMMEDIATE ... COMMIT`` (WAL, ``synchronous=FULL``, foreign keys on), and every check
runs inside that same transaction, so a failed or interrupted call leaves the file exactly as it
was and two processes cannot both extend the chain. The raw signed bytes of every header and
attestation are stored next to the parsed columns, so anyone can re-verify the whole history.
Schema and rules are described in docs/protocol.md ("Ledger"). No jax here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from pogo_jax.beacon import LocalHashChainBeacon
from pogo_jax.errors import Rejected, UserError
from pogo_jax.protocol.finalize import Outcome, Rules, decide, slashed_amount
from pogo_jax.spec.attestation import SignedAttestation
from pogo_jax.spec.header import SignedHeader

SCHEMA_VERSION = 1
APPLICATION_ID = 0x504F474F  # "POGO"
ROLES = frozenset({"miner", "verifier"})
GENESIS_HASH = bytes(32)  # parent_hash of block 1
REQUIRED_META = (
    "chain_id",
    "genesis_root",
    "layout_hash",
    "data_root",
    "leaf_size",
    "group_size",
    "n_leaves",
)
_NAME = re.compile(r"[\x20-\x7e]{1,64}")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE participants (
    key BLOB PRIMARY KEY CHECK (length(key) = 32),
    role TEXT NOT NULL CHECK (role IN ('miner', 'verifier')),
    name TEXT NOT NULL,
    stake INTEGER NOT NULL CHECK (stake >= 0),
    slashed INTEGER NOT NULL DEFAULT 0 CHECK (slashed IN (0, 1))
) STRICT;
CREATE TABLE blocks (
    id INTEGER PRIMARY KEY,
    header_hash BLOB NOT NULL UNIQUE CHECK (length(header_hash) = 32),
    height INTEGER NOT NULL CHECK (height >= 1),
    parent_hash BLOB NOT NULL,
    miner_key BLOB NOT NULL REFERENCES participants(key),
    root_prev BLOB NOT NULL,
    root_next BLOB NOT NULL,
    root_q BLOB NOT NULL,
    data_root BLOB NOT NULL,
    layout_hash BLOB NOT NULL,
    header_bytes BLOB NOT NULL,
    update_sha256 BLOB NOT NULL CHECK (length(update_sha256) = 32),
    update_path TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'slashed')),
    reason TEXT NOT NULL DEFAULT '',
    accept_stake INTEGER,
    reject_stake INTEGER,
    fraud_confirmed INTEGER NOT NULL DEFAULT 0 CHECK (fraud_confirmed IN (0, 1)),
    fraud_evidence TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX blocks_one_confirmed_per_height ON blocks(height) WHERE status = 'confirmed';
CREATE UNIQUE INDEX blocks_one_pending_per_height ON blocks(height) WHERE status = 'pending';
CREATE TABLE beacons (
    idx INTEGER PRIMARY KEY CHECK (idx >= 1),
    header_hash BLOB NOT NULL UNIQUE REFERENCES blocks(header_hash),
    value BLOB NOT NULL CHECK (length(value) = 32)
) STRICT;
CREATE TABLE attestations (
    id INTEGER PRIMARY KEY,
    attestation_hash BLOB NOT NULL UNIQUE,
    header_hash BLOB NOT NULL REFERENCES blocks(header_hash),
    verifier_key BLOB NOT NULL REFERENCES participants(key),
    verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject')),
    tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    loss_prev REAL,
    loss_next REAL,
    evidence BLOB,
    signed_bytes BLOB NOT NULL,
    UNIQUE (header_hash, verifier_key, verdict)
) STRICT;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    height INTEGER,
    header_hash BLOB,
    key BLOB,
    amount INTEGER,
    detail TEXT NOT NULL DEFAULT ''
) STRICT;
"""


def _hash_arg(h: bytes | str, what: str = "header hash") -> bytes:
    """Accept a 32-byte hash as bytes or as 64 lowercase hex digits (block dicts carry hex)."""
    if isinstance(h, str):
        try:
            h = bytes.fromhex(h)
        except ValueError:
            raise UserError(f"{what} is not hex") from None
    if not isinstance(h, bytes) or len(h) != 32:
        raise UserError(f"{what} must be 32 bytes")
    return h


def _hex(b: bytes | None) -> str | None:
    return None if b is None else bytes(b).hex()


def _check_meta(chain: dict) -> str:
    if not isinstance(chain, dict):
        raise UserError("chain metadata must be a dict")
    missing = [k for k in REQUIRED_META if k not in chain]
    if missing:
        raise UserError(f"chain metadata lacks '{missing[0]}' (needed: {', '.join(REQUIRED_META)})")
    for k in (
        "genesis_root",
        "layout_hash",
        "data_root",
        *(("beacon_anchor",) if "beacon_anchor" in chain else ()),
    ):
        _hash_arg(chain[k], f"chain metadata '{k}'")
    if chain.get("beacon_kind", "hash-chain") == "hash-chain" and "beacon_anchor" not in chain:
        raise UserError(
            "chain metadata lacks 'beacon_anchor' (the hash-chain beacon's anchor, hex); "
            "set beacon_kind='external' to accept unverified beacon values"
        )
    try:
        return json.dumps(chain, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UserError(f"chain metadata is not plain JSON: {e}") from None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class Ledger:
    """Open with ``Ledger.open(path)`` or make one with ``Ledger.create(path, chain)``."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._meta: dict | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, chain: dict) -> Ledger:
        """A new ledger for ``chain`` (see REQUIRED_META). Built in a temp file and linked into
        place, so ``path`` either does not exist or is a complete ledger; never overwritten."""
        path = Path(path)
        if path.exists():
            raise UserError(f"a ledger already exists at {path} (use another path or remove it)")
        meta_json = _check_meta(chain)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        try:
            conn = _connect(tmp)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute("INSERT INTO meta VALUES ('chain', ?)", (meta_json,))
                conn.execute(
                    "INSERT INTO events (at, kind, detail) VALUES (?, 'create', ?)",
                    (int(time.time()), f"chain {chain['chain_id']}"),
                )
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never overwrite
            except FileExistsError:
                raise UserError(
                    f"a ledger already exists at {path} (use another path or remove it)"
                ) from None
        finally:
            for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                p.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no ledger at {path} (run pogo demo or create a chain first)")
        try:
            conn = _connect(path)
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            ver = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            raise UserError(f"{path} is not a pogo ledger (not an SQLite database)") from None
        if app != APPLICATION_ID:
            conn.close()
            raise UserError(f"{path} is an SQLite file but not a pogo ledger")
        if ver != SCHEMA_VERSION:
            conn.close()
            raise UserError(
                f"{path} has ledger schema version {ver}; this pogo reads version {SCHEMA_VERSION}"
            )
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _event(
        self,
        c: sqlite3.Connection,
        kind: str,
        height: int | None = None,
        header_hash: bytes | None = None,
        key: bytes | None = None,
        amount: int | None = None,
        detail: str = "",
    ) -> None:
        c.execute(
            "INSERT INTO events (at, kind, height, header_hash, key, amount, detail) VALUES (?,?,?,?,?,?,?)",
            (int(time.time()), kind, height, header_hash, key, amount, detail),
        )

    # ---- reads -----------------------------------------------------------------------------
    def meta(self) -> dict:
        if self._meta is None:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'chain'").fetchone()
            self._meta = json.loads(row[0])
        return json.loads(json.dumps(self._meta))  # a copy: callers cannot change the cache

    def participants(self) -> list[dict]:
        rows = self._conn.execute("SELECT key, role, name, stake, slashed FROM participants ORDER BY rowid")
        return [
            {
                "key": r["key"].hex(),
                "role": r["role"],
                "name": r["name"],
                "stake": r["stake"],
                "slashed": bool(r["slashed"]),
            }
            for r in rows
        ]

    def participant(self, pubkey: bytes) -> dict | None:
        return next((p for p in self.participants() if p["key"] == pubkey.hex()), None)

    def tip(self) -> dict:
        """The last confirmed block, or genesis (height 0, header hash all zeros, genesis root)."""
        return self._tip(self._conn)

    def _tip(self, c: sqlite3.Connection) -> dict:
        r = c.execute(
            "SELECT height, header_hash, root_next FROM blocks WHERE status = 'confirmed' "
            "ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if r is None:
            root = self.meta()["genesis_root"]
            return {"height": 0, "header_hash": GENESIS_HASH.hex(), "root_next": root,
                    "root": self._state_root_at(c, 0)}
        return {
            "height": r["height"],
            "header_hash": r["header_hash"].hex(),
            "root_next": r["root_next"].hex(),
            "root": self._state_root_at(c, r["height"]),
        }

    # ---- epochs (fine-tuning: a new initial state and dataset after some height) ----------------
    def epochs(self) -> list[dict]:
        """Started epochs in order (epoch 0, the chain's genesis and dataset, is implicit)."""
        return self._epochs(self._conn)

    def _epochs(self, c: sqlite3.Connection) -> list[dict]:
        r = c.execute("SELECT value FROM meta WHERE key = 'epochs'").fetchone()
        return [] if r is None else json.loads(r[0])

    def epoch_for(self, height: int) -> dict:
        """The epoch a block at ``height`` belongs to: the last one started at or after height - 1."""
        return self._epoch_for(self._conn, height)

    def _epoch_for(self, c: sqlite3.Connection, height: int) -> dict:
        meta = self.meta()
        ep = {"epoch": 0, "after_height": 0, "genesis_root": meta["genesis_root"], "data_root": meta["data_root"],
              "data_path": "", "state_path": ""}
        for e in self._epochs(c):
            if e["after_height"] < height:
                ep = e
        return ep

    def _data_roots(self, c: sqlite3.Connection, height: int) -> set[str]:
        ep = self._epoch_for(c, height)
        if ep["epoch"] == 0:
            return {self.meta()["data_root"], *self.meta().get("data_roots", [])}
        return {ep["data_root"]}

    def state_root_at(self, height: int) -> bytes:
        """Root of the state a block at ``height + 1`` extends: the confirmed block at ``height``
        (genesis at 0), unless an epoch was started right after it (then the epoch's state)."""
        return bytes.fromhex(self._state_root_at(self._conn, height))

    def _state_root_at(self, c: sqlite3.Connection, height: int) -> str:
        starts = [e for e in self._epochs(c) if e["after_height"] == height]
        if starts:
            return starts[-1]["genesis_root"]
        if height == 0:
            return self.meta()["genesis_root"]
        r = c.execute("SELECT root_next FROM blocks WHERE height = ? AND status = 'confirmed'", (height,)).fetchone()
        if r is None:
            raise UserError(f"height {height} is not confirmed")
        return r[0].hex()

    def start_epoch(self, miner_key: bytes, record: dict) -> dict:
        """Start a new epoch after the confirmed tip: ``record`` names the initial state
        (``genesis_root``, ``state_path``), the dataset (``data_root``, ``data_path``,
        ``data_manifest``) and ``layout_hash`` (the chain's: fine-tuning keeps the layout).
        Paths are relative to the chain directory. Any registered, unslashed miner may start one
        while no block is pending (docs/adversaries.md: in deployment this is a governance step)."""
        need = ("genesis_root", "state_path", "data_root", "data_path", "data_manifest", "layout_hash")
        missing = [k for k in need if k not in record]
        if missing:
            raise UserError(f"epoch record lacks '{missing[0]}'")
        for k in ("genesis_root", "data_root", "layout_hash"):
            _hash_arg(record[k], f"epoch {k}")
        if record["layout_hash"] != self.meta()["layout_hash"]:
            raise Rejected("LAYOUT_MISMATCH", "the new epoch's layout differs from the chain's (fine-tuning keeps "
                                              "the layout: same model shapes, leaf and group size)")
        with self._tx() as c:
            p = c.execute("SELECT role, slashed FROM participants WHERE key = ?", (miner_key,)).fetchone()
            if p is None or p["role"] != "miner" or p["slashed"]:
                raise Rejected("UNREGISTERED_MINER", "only a registered, unslashed miner may start an epoch")
            tip = self._tip(c)
            if c.execute("SELECT 1 FROM blocks WHERE status = 'pending'").fetchone():
                raise UserError("a block is pending: finalize it before starting a new epoch")
            epochs = self._epochs(c)
            rec = {**{k: record[k] for k in need}, "epoch": len(epochs) + 1, "after_height": tip["height"],
                   "miner_key": miner_key.hex(), "source": str(record.get("source", ""))[:256]}
            try:
                value = json.dumps([*epochs, rec], sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise UserError(f"epoch record is not plain JSON: {e}") from None
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epochs', ?)", (value,))
            self._event(c, "epoch", tip["height"], key=miner_key, amount=rec["epoch"],
                        detail=f"root {rec['genesis_root'][:16]} data {rec['data_root'][:16]}")
        return rec

    def _block_dict(self, r: sqlite3.Row) -> dict:
        b = self._conn.execute(
            "SELECT idx, value FROM beacons WHERE header_hash = ?", (r["header_hash"],)
        ).fetchone()
        d = {
            k: r[k]
            for k in (
                "height",
                "update_path",
                "status",
                "reason",
                "accept_stake",
                "reject_stake",
                "fraud_evidence",
            )
        }
        d.update(
            {
                k: r[k].hex()
                for k in (
                    "header_hash",
                    "parent_hash",
                    "miner_key",
                    "root_prev",
                    "root_next",
                    "root_q",
                    "data_root",
                    "layout_hash",
                    "update_sha256",
                )
            }
        )
        d["header_bytes"] = bytes(r["header_bytes"])
        d["fraud_confirmed"] = bool(r["fraud_confirmed"])
        d["beacon_index"] = None if b is None else b["idx"]
        d["beacon"] = None if b is None else b["value"].hex()
        return d

    def block(
        self, height: int | None = None, header_hash: bytes | str | None = None, status: str | None = None
    ) -> dict | None:
        """One block by hash, or by height (the confirmed one, else the pending one, else the
        latest recorded; ``status`` restricts the choice). Hashes in the dict are hex strings."""
        q, args = "SELECT * FROM blocks WHERE 1", []
        if header_hash is not None:
            q += " AND header_hash = ?"
            args.append(_hash_arg(header_hash))
        if height is not None:
            q += " AND height = ?"
            args.append(height)
        if status is not None:
            q += " AND status = ?"
            args.append(status)
        q += " ORDER BY CASE status WHEN 'confirmed' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, id DESC LIMIT 1"
        r = self._conn.execute(q, args).fetchone()
        return None if r is None else self._block_dict(r)

    def blocks(self) -> list[dict]:
        return [self._block_dict(r) for r in self._conn.execute("SELECT * FROM blocks ORDER BY id")]

    def pending(self) -> dict | None:
        """The block waiting for finalization right after the tip, if any."""
        return self.block(height=self.tip()["height"] + 1, status="pending")

    def beacon(self, header_hash: bytes | str) -> bytes | None:
        r = self._conn.execute(
            "SELECT value FROM beacons WHERE header_hash = ?", (_hash_arg(header_hash),)
        ).fetchone()
        return None if r is None else bytes(r[0])

    def next_beacon_index(self) -> int:
        """The hash-chain index the next revealed beacon must have (one fresh value per header)."""
        return self._next_beacon(self._conn)[0]

    def _next_beacon(self, c: sqlite3.Connection) -> tuple[int, bytes | None]:
        r = c.execute("SELECT idx, value FROM beacons ORDER BY idx DESC LIMIT 1").fetchone()
        if r is None:
            anchor = self.meta().get("beacon_anchor")
            return 1, None if anchor is None else bytes.fromhex(anchor)
        return r["idx"] + 1, bytes(r["value"])

    def attestations(self, header_hash: bytes | str) -> list[dict]:
        rows = self._conn.execute(
            "SELECT * FROM attestations WHERE header_hash = ? ORDER BY id", (_hash_arg(header_hash),)
        )
        return [
            {
                "attestation_hash": r["attestation_hash"].hex(),
                "header_hash": r["header_hash"].hex(),
                "verifier_key": r["verifier_key"].hex(),
                "verdict": r["verdict"],
                "tier": r["tier"],
                "reason": r["reason"],
                "loss_prev": r["loss_prev"],
                "loss_next": r["loss_next"],
                "evidence": _hex(r["evidence"]),
                "signed_bytes": bytes(r["signed_bytes"]),
            }
            for r in rows
        ]

    def events(self) -> list[dict]:
        rows = self._conn.execute("SELECT * FROM events ORDER BY seq")
        return [
            {
                "seq": r["seq"],
                "at": r["at"],
                "kind": r["kind"],
                "height": r["height"],
                "header_hash": _hex(r["header_hash"]),
                "key": _hex(r["key"]),
                "amount": r["amount"],
                "detail": r["detail"],
            }
            for r in rows
        ]

    # ---- writes ----------------------------------------------------------------------------
    def add_participant(self, pubkey: bytes, role: str, name: str, stake: int) -> None:
        if not isinstance(pubkey, bytes) or len(pubkey) != 32:
            raise UserError("participant key must be a 32-byte Ed25519 public key")
        if role not in ROLES:
            raise UserError(f"participant role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError("participant name must be 1-64 printable ASCII characters")
        if isinstance(stake, bool) or not isinstance(stake, int) or not 0 <= stake < 2**63:
            raise UserError(f"stake must be a non-negative integer, got {stake!r}")
        with self._tx() as c:
            if c.execute("SELECT 1 FROM participants WHERE key = ?", (pubkey,)).fetchone():
                raise UserError(f"participant {pubkey.hex()[:16]}... is already registered")
            c.execute(
                "INSERT INTO participants (key, role, name, stake) VALUES (?,?,?,?)",
                (pubkey, role, name, stake),
            )
            self._event(c, "register", key=pubkey, amount=stake, detail=f"{role} {name}")

    def record_header(self, signed: SignedHeader, update_sha256: bytes, update_path: str) -> bytes:
        """Record a miner's signed header as the pending block after the tip; returns its hash."""
        if not isinstance(update_sha256, bytes) or len(update_sha256) != 32:
            raise UserError("update_sha256 must be 32 bytes")
        if not isinstance(update_path, str) or not update_path:
            raise UserError("update_path must be a non-empty string")
        h = signed.header
        hh = h.hash()
        meta = self.meta()
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", "header signature does not verify under its miner key")
        if h.chain_id != meta["chain_id"]:
            raise Rejected(
                "WRONG_CHAIN", f"header is for chain {h.chain_id!r}, this ledger is {meta['chain_id']!r}"
            )
        if h.layout_hash.hex() != meta["layout_hash"]:
            raise Rejected("LAYOUT_MISMATCH", "header layout_hash differs from the chain's layout")
        if (h.leaf_size, h.group_size, h.n_leaves) != (
            meta["leaf_size"],
            meta["group_size"],
            meta["n_leaves"],
        ):
            raise Rejected(
                "LAYOUT_MISMATCH", "leaf_size / group_size / n_leaves differ from the chain's layout"
            )
        with self._tx() as c:
            if c.execute("SELECT 1 FROM blocks WHERE header_hash = ?", (hh,)).fetchone():
                raise UserError(f"header {hh.hex()[:16]}... is already recorded")
            p = c.execute("SELECT role, slashed FROM participants WHERE key = ?", (h.miner_key,)).fetchone()
            if p is None or p["role"] != "miner":
                raise Rejected(
                    "UNREGISTERED_MINER", f"key {h.miner_key.hex()[:16]}... is not a registered miner"
                )
            if p["slashed"]:
                raise Rejected("SLASHED_MINER", f"miner {h.miner_key.hex()[:16]}... has been slashed")
            tip = self._tip(c)
            if h.height != tip["height"] + 1:
                raise Rejected("WRONG_HEIGHT", f"header height {h.height}, expected {tip['height'] + 1}")
            if h.parent_hash.hex() != tip["header_hash"]:
                raise Rejected("WRONG_PARENT", "parent_hash is not the confirmed tip's header hash")
            if h.root_prev.hex() != tip["root"]:
                raise Rejected("WRONG_PARENT", "root_prev is not the confirmed tip's state root")
            if c.execute(
                "SELECT 1 FROM blocks WHERE height = ? AND status = 'pending'", (h.height,)
            ).fetchone():
                raise Rejected(
                    "HEIGHT_PENDING", f"a block at height {h.height} is already waiting for finalization"
                )
            if h.data_root.hex() not in self._data_roots(c, h.height):
                raise Rejected("WRONG_DATA", "header data_root is not the dataset of this chain's current epoch")
            if c.execute("SELECT 1 FROM blocks WHERE root_q = ?", (h.root_q,)).fetchone():
                raise Rejected("REPLAYED_UPDATE", "root_q is the update of an earlier recorded block")
            c.execute(
                "INSERT INTO blocks (header_hash, height, parent_hash, miner_key, root_prev, root_next, "
                "root_q, data_root, layout_hash, header_bytes, update_sha256, update_path, status) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?, 'pending')",
                (
                    hh,
                    h.height,
                    h.parent_hash,
                    h.miner_key,
                    h.root_prev,
                    h.root_next,
                    h.root_q,
                    h.data_root,
                    h.layout_hash,
                    signed.to_bytes(),
                    update_sha256,
                    update_path,
                ),
            )
            self._event(c, "header", h.height, hh, h.miner_key)
        return hh

    def report_invalid_header(self, signed: SignedHeader, update_sha256: bytes, update_path: str,
                              rules: Rules) -> str:
        """Slash the miner of a header that ``record_header`` refused for a fault only its signer
        can have made; returns the reason code. Attributable faults: the header is validly signed
        by a registered miner, names this chain, the next height and the confirmed tip as parent,
        yet commits to another root_prev (WRONG_PARENT), layout (LAYOUT_MISMATCH), dataset
        (WRONG_DATA) or an earlier block's update (REPLAYED_UPDATE). Stale or duplicate headers, bad
        signatures and foreign chains prove nothing about anyone: UserError, nothing changes. The
        signed header is stored as a 'slashed' block (evidence; it never becomes part of the chain)."""
        h = signed.header
        hh = h.hash()
        meta = self.meta()
        if not signed.verify():
            raise UserError("header signature does not verify: it proves nothing about its miner key")
        if h.chain_id != meta["chain_id"]:
            raise UserError("header is for another chain: not evidence on this one")
        with self._tx() as c:
            if c.execute("SELECT 1 FROM blocks WHERE header_hash = ?", (hh,)).fetchone():
                raise UserError(f"header {hh.hex()[:16]}... is already recorded")
            p = c.execute("SELECT role, slashed FROM participants WHERE key = ?", (h.miner_key,)).fetchone()
            if p is None or p["role"] != "miner" or p["slashed"]:
                raise UserError("header is not from a registered, unslashed miner")
            tip = self._tip(c)
            if h.height != tip["height"] + 1 or h.parent_hash.hex() != tip["header_hash"]:
                raise UserError("header does not extend the confirmed tip (stale or replayed): refused, not slashable")
            if h.root_prev.hex() != tip["root"]:
                code, why = "WRONG_PARENT", "names the tip as parent but commits to another root_prev"
            elif h.layout_hash.hex() != meta["layout_hash"] or (h.leaf_size, h.group_size, h.n_leaves) != (
                    meta["leaf_size"], meta["group_size"], meta["n_leaves"]):
                code, why = "LAYOUT_MISMATCH", "commits to another layout than the chain's"
            elif h.data_root.hex() not in self._data_roots(c, h.height):
                code, why = "WRONG_DATA", "commits to another dataset than the current epoch's"
            elif c.execute("SELECT 1 FROM blocks WHERE root_q = ?", (h.root_q,)).fetchone():
                code, why = "REPLAYED_UPDATE", "publishes the update of an earlier block"
            else:
                raise UserError("header is not provably invalid: record it instead")
            c.execute(
                "INSERT INTO blocks (header_hash, height, parent_hash, miner_key, root_prev, root_next, root_q, "
                "data_root, layout_hash, header_bytes, update_sha256, update_path, status, reason, "
                "fraud_confirmed, fraud_evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?, 'slashed', ?, 1, ?)",
                (hh, h.height, h.parent_hash, h.miner_key, h.root_prev, h.root_next, h.root_q, h.data_root,
                 h.layout_hash, signed.to_bytes(), update_sha256, update_path, code, f"{code}: signed header {why}"),
            )
            self._event(c, "invalid_header", h.height, hh, h.miner_key, detail=f"{code}: {why}")
            stake = c.execute("SELECT stake FROM participants WHERE key = ?", (h.miner_key,)).fetchone()[0]
            burn = slashed_amount(stake, rules)
            c.execute("UPDATE participants SET stake = stake - ?, slashed = 1 WHERE key = ?", (burn, h.miner_key))
            self._event(c, "slash", h.height, hh, h.miner_key, burn, code)
        return code

    def _pending_row(self, c: sqlite3.Connection, hh: bytes, doing: str) -> sqlite3.Row:
        r = c.execute("SELECT * FROM blocks WHERE header_hash = ?", (hh,)).fetchone()
        if r is None:
            raise UserError(f"unknown header {hh.hex()[:16]}...: record the header before {doing}")
        if r["status"] != "pending":
            raise UserError(f"block {r['height']} ({hh.hex()[:16]}...) already finalized ({r['status']})")
        return r

    def record_beacon(self, header_hash: bytes | str, value: bytes) -> None:
        """Store the beacon value for a recorded, pending header; once per header, at the next
        hash-chain index, checked against the previous reveal (or the anchor)."""
        hh = _hash_arg(header_hash)
        if not isinstance(value, bytes) or len(value) != 32:
            raise UserError("beacon value must be 32 bytes")
        with self._tx() as c:
            r = self._pending_row(c, hh, "revealing its beacon")
            if c.execute("SELECT 1 FROM beacons WHERE header_hash = ?", (hh,)).fetchone():
                raise UserError(f"the beacon for block {r['height']} is already recorded")
            idx, prev = self._next_beacon(c)
            if prev is not None and not LocalHashChainBeacon.verify_next(prev, value):
                raise Rejected("BAD_BEACON", f"value is not beacon index {idx} of this chain's hash chain")
            c.execute("INSERT INTO beacons (idx, header_hash, value) VALUES (?,?,?)", (idx, hh, value))
            self._event(c, "beacon", r["height"], hh, amount=idx, detail=value.hex())

    def add_attestation(self, signed: SignedAttestation) -> None:
        """Store a verifier's signed verdict. Re-sending the same bytes is a no-op; a second
        verdict of the other kind is kept as evidence of equivocation."""
        a = signed.attestation
        ah = a.hash()
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", "attestation signature does not verify under its verifier key")
        if a.chain_id != self.meta()["chain_id"]:
            raise Rejected("WRONG_CHAIN", f"attestation is for chain {a.chain_id!r}")
        with self._tx() as c:
            if c.execute("SELECT 1 FROM attestations WHERE attestation_hash = ?", (ah,)).fetchone():
                return
            r = self._pending_row(c, a.header_hash, "attesting to it")
            if a.height != r["height"]:
                raise Rejected(
                    "WRONG_HEIGHT", f"attestation names height {a.height}, the header is {r['height']}"
                )
            p = c.execute(
                "SELECT role, slashed FROM participants WHERE key = ?", (a.verifier_key,)
            ).fetchone()
            if p is None or p["role"] != "verifier":
                raise Rejected(
                    "UNREGISTERED_VERIFIER", f"key {a.verifier_key.hex()[:16]}... is not a verifier"
                )
            if p["slashed"]:
                raise Rejected(
                    "SLASHED_VERIFIER", f"verifier {a.verifier_key.hex()[:16]}... has been slashed"
                )
            if not c.execute("SELECT 1 FROM beacons WHERE header_hash = ?", (a.header_hash,)).fetchone():
                raise UserError(
                    f"no beacon revealed yet for block {r['height']}: there is no challenge to attest"
                )
            same = c.execute(
                "SELECT verdict FROM attestations WHERE header_hash = ? AND verifier_key = ?",
                (a.header_hash, a.verifier_key),
            ).fetchall()
            if any(s["verdict"] == a.verdict for s in same):
                raise UserError(f"this verifier already attested '{a.verdict}' for block {r['height']}")
            c.execute(
                "INSERT INTO attestations (attestation_hash, header_hash, verifier_key, verdict, tier, "
                "reason, loss_prev, loss_next, evidence, signed_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    ah,
                    a.header_hash,
                    a.verifier_key,
                    a.verdict,
                    a.tier,
                    a.reason,
                    a.loss_prev,
                    a.loss_next,
                    a.evidence,
                    signed.to_bytes(),
                ),
            )
            self._event(
                c, "attest", r["height"], a.header_hash, a.verifier_key, detail=f"{a.verdict} {a.reason}"
            )
            if same:
                self._event(
                    c,
                    "equivocation",
                    r["height"],
                    a.header_hash,
                    a.verifier_key,
                    detail="signed both verdicts",
                )

    def set_fraud_confirmed(self, header_hash: bytes | str, evidence: str) -> None:
        """Mark that the caller itself re-ran the light check on the published bundle and it
        failed objectively; ``finalize`` then slashes the miner whatever the votes."""
        hh = _hash_arg(header_hash)
        if not isinstance(evidence, str) or not evidence:
            raise UserError("fraud evidence must be a non-empty description")
        with self._tx() as c:
            r = self._pending_row(c, hh, "confirming fraud")
            c.execute(
                "UPDATE blocks SET fraud_confirmed = 1, fraud_evidence = ? WHERE id = ?", (evidence, r["id"])
            )
            self._event(c, "fraud", r["height"], hh, r["miner_key"], detail=evidence)

    def finalize(self, header_hash: bytes | str, rules: Rules) -> Outcome:
        """Apply ``decide`` to the stored attestations and stakes. Confirmed: the block becomes the
        tip and the miner gains ``rules.block_reward``; slashed: the miner (and any equivocator)
        loses ``slash_fraction`` of its stake and is barred. Pending: nothing changes."""
        hh = _hash_arg(header_hash)
        with self._tx() as c:
            r = self._pending_row(c, hh, "finalizing it")
            miner = bytes(r["miner_key"])
            atts = [
                SignedAttestation.from_bytes(bytes(x[0])).attestation
                for x in c.execute(
                    "SELECT signed_bytes FROM attestations WHERE header_hash = ? ORDER BY id", (hh,)
                )
            ]
            stakes = {
                bytes(p["key"]): 0 if p["slashed"] else p["stake"]
                for p in c.execute("SELECT key, stake, slashed FROM participants")
            }
            out = decide(atts, stakes, miner, rules, bool(r["fraud_confirmed"]))
            if out.status == "pending":
                return out
            if out.status == "confirmed":
                tip = self._tip(c)
                if r["height"] != tip["height"] + 1 or r["parent_hash"].hex() != tip["header_hash"]:
                    raise Rejected("WRONG_PARENT", "block no longer extends the confirmed tip")
            c.execute(
                "UPDATE blocks SET status = ?, reason = ?, accept_stake = ?, reject_stake = ? WHERE id = ?",
                (out.status, out.reason, out.accept_stake, out.reject_stake, r["id"]),
            )
            self._event(c, out.status, r["height"], hh, miner, detail=out.reason)
            if out.status == "confirmed" and rules.block_reward:
                c.execute(
                    "UPDATE participants SET stake = stake + ? WHERE key = ?", (rules.block_reward, miner)
                )
                self._event(c, "reward", r["height"], hh, miner, rules.block_reward, "block confirmed")
            for key in out.slashed_keys:
                stake = c.execute("SELECT stake FROM participants WHERE key = ?", (key,)).fetchone()[0]
                burn = slashed_amount(stake, rules)
                c.execute("UPDATE participants SET stake = stake - ?, slashed = 1 WHERE key = ?", (burn, key))
                why = out.reason if key == miner else "EQUIVOCATION"
                self._event(c, "slash", r["height"], hh, key, burn, why)
        return out
