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
import threading
from itertools import islice
from pathlib import Path

from pogo_jax.chain.log import Entry
from pogo_jax.chain.state import Candidate, ChainState, Round, StakeEvent
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


def _participant_row(st: ChainState, key: bytes) -> tuple:
    p = st.participants[key]
    return key.hex(), p.role, p.name, st.stakes[key]


def _round_row(r: Round) -> tuple:
    return r.height, r.round, r.phase, r.opened_at, r.finalized_at, _hex(r.winner), _hex(r.beacon)


def _candidate_row(r: Round, c: Candidate) -> tuple:
    return (c.hash.hex(), r.height, r.round, c.miner.hex(), c.seq, c.status, c.reason,
            None if c.improvement is None else str(c.improvement), c.reward, c.update_sha256.hex(),
            _hex(c.bundle_sha256), len(c.votes))


def _event_row(i: int, e: StakeEvent) -> tuple:
    return i + 1, e.seq, e.key.hex(), e.delta, e.reason, e.height, e.round, _hex(e.header_hash)


def summary(st: ChainState) -> dict[str, list[tuple]]:
    """The derived tables' rows, each table sorted: what replaying the log says the node should hold."""
    rounds = [*st.history, *([st.round] if st.round is not None else [])]
    return {
        "participants": sorted(_participant_row(st, k) for k in st.participants),
        "rounds": sorted(_round_row(r) for r in rounds),
        "candidates": sorted(_candidate_row(r, c) for r in rounds for c in r.candidates.values()),
        "stake_events": [_event_row(i, e) for i, e in enumerate(st.events)],
    }


def touched_rows(st: ChainState, n_events: int, n_participants: int) -> dict[str, list[tuple]]:
    """The rows one entry can have changed, given the stake events and participants stored before it.

    Why this is enough (state.py): an entry changes only the open round, or closes it (it moves to the end
    of ``history``, where it is never changed again) and opens the next one; an epoch recorded while the
    round waits replaces it under the same (height, round). A stake changes only with a stake event, which
    is appended with the entry's seq; participants are only added (genesis, registrations), at the end of
    the insertion-ordered dict. So: the last closed round and the open one, their candidates, the
    participants named by the new stake events or added, and the new stake events. Cost: independent of
    the chain's length.
    """
    rounds = [*st.history[-1:], *([st.round] if st.round is not None else [])]
    new_keys = islice(reversed(st.participants), max(0, len(st.participants) - n_participants))
    keys = {*new_keys, *(e.key for e in st.events[n_events:])}
    return {
        "participants": [_participant_row(st, k) for k in keys],
        "rounds": [_round_row(r) for r in rounds],
        "candidates": [_candidate_row(r, c) for r in rounds for c in r.candidates.values()],
        "stake_events": [_event_row(n_events + i, e) for i, e in enumerate(st.events[n_events:])],
    }


_KEYS = {"participants": ("key",), "rounds": ("height", "round"), "candidates": ("header_hash",),
         "stake_events": ("id",)}


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
        # one connection, used from the node's threads: a reader must not see an append's transaction half
        # done (the connection sees its own uncommitted rows), so reads and appends take turns
        self._lock = threading.RLock()

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
        with self._lock:
            rows = self._conn.execute(q, args).fetchall()
        return [Entry(r[0], r[1], r[2], bytes(r[3]), json.loads(r[4]), bytes(r[5]), bytes(r[6])) for r in rows]

    def tables(self) -> dict[str, list[tuple]]:
        """The derived tables as stored (sorted like ``summary``)."""
        order = {"participants": "key", "rounds": "height, round", "candidates": "header_hash",
                 "stake_events": "id"}
        with self._lock:
            return {t: [tuple(r) for r in self._conn.execute(f"SELECT * FROM {t} ORDER BY {order[t]}")]
                    for t in TABLES}

    def append(self, entry: Entry, st: ChainState) -> None:
        """Write ``entry`` and the derived rows it changed (``st`` is the state after it), in one transaction.

        Only the rows ``touched_rows`` names are compared with what the file holds and the different ones
        written, so an append costs the same at any chain length. The result is the same as rewriting every
        table from ``summary(st)``: ``tests/test_ledger.py`` checks that after every entry of a varied chain,
        and the node (on start) and ``pogo audit`` compare the whole tables with their replay. Should the file
        not be where the state before this entry left it (an entry skipped, more stake events or participants
        stored than the state has), the tables are rewritten whole from ``summary(st)`` instead."""
        with self._lock:
            self._append(entry, st)

    def _append(self, entry: Entry, st: ChainState) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT INTO log VALUES (?,?,?,?,?,?,?)", (entry.seq, entry.at, entry.kind, entry.record,
                                                                json.dumps(entry.extra, sort_keys=True),
                                                                entry.prev, entry.hash))
            n_events = c.execute("SELECT coalesce(max(id), 0) FROM stake_events").fetchone()[0]
            n_parts = c.execute("SELECT coalesce(max(rowid), 0) FROM participants").fetchone()[0]
            last = c.execute("SELECT coalesce(max(seq), -1) FROM log WHERE seq < ?", (entry.seq,)).fetchone()[0]
            if last != entry.seq - 1 or n_events > len(st.events) or n_parts > len(st.participants):
                self._rewrite(summary(st))
            else:
                self._update(touched_rows(st, n_events, n_parts))
            if _CRASH_IN_APPEND and entry.kind == _CRASH_IN_APPEND:  # fault injection for the kill -9 tests
                os.kill(os.getpid(), signal.SIGKILL)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _update(self, rows: dict[str, list[tuple]]) -> None:
        """Write the given rows where they differ from the stored row with the same primary key: an UPDATE
        of a changed row (so a row keeps its rowid: the participants' rowids stay 1..n, their count), an
        INSERT of a new one."""
        c = self._conn
        for t, new in rows.items():
            pk = _KEYS[t]
            where = " AND ".join(f"{k} = ?" for k in pk)
            for r in new:
                cur = c.execute(f"SELECT * FROM {t} WHERE {where}", r[:len(pk)])
                old = cur.fetchone()
                if old is None:
                    c.execute(f"INSERT INTO {t} VALUES ({','.join('?' * len(r))})", r)
                elif old != r:
                    cols = [d[0] for d in cur.description]
                    c.execute(f"UPDATE {t} SET {', '.join(f'{k} = ?' for k in cols)} WHERE {where}",
                              (*r, *r[:len(pk)]))

    def _rewrite(self, rows: dict[str, list[tuple]]) -> None:
        c = self._conn
        for t in TABLES:
            c.execute(f"DELETE FROM {t}")
            if rows[t]:
                c.executemany(f"INSERT INTO {t} VALUES ({','.join('?' * len(rows[t][0]))})", rows[t])
