"""The node's ledger: one SQLite file holding the log and the tables derived from it.

Why SQLite: transactions. Every append runs in one ``BEGIN IMMEDIATE ... COMMIT`` (WAL,
``synchronous=FULL``): the entry and every derived row it changes commit together or not at all, so
a node killed at any point restarts with the log and tables of the last whole record. The tables
(participants and stakes, rounds, candidates, stake events) are what the node serves as "its"
view; they are a cache of ``ChainState`` and nothing else. On open the node replays the log and
refuses to start if the tables differ; ``pogo audit`` compares them with its own replay too.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

from pogo_jax.chain.log import Entry
from pogo_jax.chain.state import ChainState
from pogo_jax.errors import UserError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x504F474F  # "POGO"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE log (
    seq INTEGER PRIMARY KEY CHECK (seq >= 0),
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record BLOB NOT NULL,
    extra TEXT NOT NULL,
    prev BLOB NOT NULL CHECK (length(prev) = 32),
    hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;
CREATE TABLE participants (
    key TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL, stake INTEGER NOT NULL
) STRICT;
CREATE TABLE rounds (
    height INTEGER NOT NULL, round INTEGER NOT NULL, phase TEXT NOT NULL, opened_at INTEGER NOT NULL,
    finalized_at INTEGER, winner TEXT, beacon TEXT, PRIMARY KEY (height, round)
) STRICT;
CREATE TABLE candidates (
    header_hash TEXT PRIMARY KEY, height INTEGER NOT NULL, round INTEGER NOT NULL, miner TEXT NOT NULL,
    seq INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, improvement TEXT, reward INTEGER NOT NULL,
    update_sha256 TEXT NOT NULL, bundle_sha256 TEXT, votes INTEGER NOT NULL
) STRICT;
CREATE TABLE stake_events (
    id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, key TEXT NOT NULL, delta INTEGER NOT NULL, reason TEXT NOT NULL,
    height INTEGER, round INTEGER, header_hash TEXT
) STRICT;
"""
TABLES = ("participants", "rounds", "candidates", "stake_events")
_CRASH_IN_APPEND = os.environ.get("POGO_TEST_KILL_IN_APPEND", "")  # tests: SIGKILL mid-transaction


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def summary(st: ChainState) -> dict[str, list[tuple]]:
    """The derived tables' rows, each table sorted: what replaying the log says the node should hold."""
    rounds = [*st.history, *([st.round] if st.round is not None else [])]
    out = {
        "participants": sorted((k.hex(), p.role, p.name, st.stakes[k]) for k, p in st.participants.items()),
        "rounds": sorted((r.height, r.round, r.phase, r.opened_at, r.finalized_at, _hex(r.winner), _hex(r.beacon))
                         for r in rounds),
        "candidates": sorted((c.hash.hex(), r.height, r.round, c.miner.hex(), c.seq, c.status, c.reason,
                              None if c.improvement is None else str(c.improvement), c.reward,
                              c.update_sha256.hex(), _hex(c.bundle_sha256), len(c.votes))
                             for r in rounds for c in r.candidates.values()),
        "stake_events": [(i + 1, e.seq, e.key.hex(), e.delta, e.reason, e.height, e.round, _hex(e.header_hash))
                         for i, e in enumerate(st.events)],
    }
    return out


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else str(path)
    conn = sqlite3.connect(uri, isolation_level=None, timeout=30.0, uri=readonly, check_same_thread=False)
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


class Ledger:
    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path, self._conn = path, conn

    @classmethod
    def create(cls, path: str | Path) -> Ledger:
        path = Path(path)
        if path.exists():
            raise UserError(f"a ledger already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute("COMMIT")
        return cls(path, conn)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Ledger:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no ledger at {path} (create a chain with pogo init)")
        try:
            conn = _connect(path, readonly)
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            ver = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            raise UserError(f"{path} is not a pogo ledger (not an SQLite database)") from None
        if app != APPLICATION_ID:
            raise UserError(f"{path} is an SQLite file but not a pogo ledger")
        if ver != SCHEMA_VERSION:
            raise UserError(f"{path} has ledger schema {ver}; this pogo reads schema {SCHEMA_VERSION}")
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def entries(self, start: int = 0, limit: int | None = None) -> list[Entry]:
        q = "SELECT seq, at, kind, record, extra, prev, hash FROM log WHERE seq >= ? ORDER BY seq"
        args: tuple = (start,)
        if limit is not None:
            q += " LIMIT ?"
            args = (start, limit)
        return [Entry(r[0], r[1], r[2], bytes(r[3]), json.loads(r[4]), bytes(r[5]), bytes(r[6]))
                for r in self._conn.execute(q, args)]

    def tables(self) -> dict[str, list[tuple]]:
        """The derived tables as stored (sorted like ``summary``)."""
        order = {"participants": "key", "rounds": "height, round", "candidates": "header_hash",
                 "stake_events": "id"}
        return {t: [tuple(r) for r in self._conn.execute(f"SELECT * FROM {t} ORDER BY {order[t]}")] for t in TABLES}

    def append(self, entry: Entry, st: ChainState) -> None:
        """Write ``entry`` and the derived rows of the state after it, in one transaction."""
        c = self._conn
        rows = summary(st)
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT INTO log VALUES (?,?,?,?,?,?,?)", (entry.seq, entry.at, entry.kind, entry.record,
                                                                json.dumps(entry.extra, sort_keys=True),
                                                                entry.prev, entry.hash))
            for t in TABLES:
                c.execute(f"DELETE FROM {t}")
                if rows[t]:
                    marks = ",".join("?" * len(rows[t][0]))
                    c.executemany(f"INSERT INTO {t} VALUES ({marks})", rows[t])
            if _CRASH_IN_APPEND and entry.kind == _CRASH_IN_APPEND:  # fault injection for the kill -9 tests
                os.kill(os.getpid(), signal.SIGKILL)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
