"""What one ledger append costs as the chain grows: the incremental append (pogo_jax/chain/ledger.py: only the
derived rows the entry changed) against the whole-table rewrite it replaced (kept below, in this script only),
side by side on the same entries in one process.

A real chain log is made first with the test kit (tests/chainkit.py: signed headers, bundles, committed and
revealed full votes, closes, beacon reveals, finalizes; 2 miners, 8 verifiers, about 40 entries a round).
Then the log is replayed into two fresh ledgers, each entry applied to one ``ChainState`` and appended to
both, and each append timed: the whole transaction, twice, once with ``PRAGMA synchronous = OFF`` (the
derived-table work alone) and once with the node's ``FULL`` (what it pays under its lock, fsync included; on a
shared disk the fsync is the noisy part). Medians over the ``--window`` appends before each reported length, of
the wall time and of the appending thread's CPU time (``time.thread_time``: what the append computes, without
the waits of a machine shared with other jobs).
At the end both ledgers' tables must equal ``summary`` of the replayed state. At the same lengths it also
times the explorer's snapshot (what a page view does under the chain lock) and its rendering. Writes
benchmarks/results/ledger_append.json.

    PYTHONPATH=. python scripts/bench_ledger.py                       # up to 5,000 entries
    PYTHONPATH=. python scripts/bench_ledger.py --at 100,1000 --out /tmp  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from chainkit import Kit, make_dataset  # noqa: E402

from pogo_jax.chain.explorer import render_snapshot, snapshot  # noqa: E402
from pogo_jax.chain.ledger import TABLES, Ledger, summary  # noqa: E402
from pogo_jax.chain.state import ChainState  # noqa: E402


class RewriteLedger(Ledger):
    """The append this change replaced: every derived table deleted and re-inserted from ``summary(st)``."""

    def append(self, entry, st) -> None:  # noqa: ANN001
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
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise


def make_log(tmp: Path, n: int) -> list:
    """At least ``n`` entries of a real chain: rounds of 2 candidates, each voted on by 8 full verifiers."""
    data = make_dataset(tmp / "data.pogodata", n_bytes=800_000, sealed=192)
    kit = Kit(tmp / "kit", n_miners=2, n_verifiers=8, dataset=data)
    while kit.chain.state.seq < n:
        kit.run_round([kit.make(0), kit.make(1)])
    entries = kit.chain.ledger.entries()
    kit.chain.close()
    return entries


def time_explorer(st: ChainState, n: int = 5) -> dict:
    """The explorer's two steps at this state: the snapshot (taken under the chain lock) and the rendering of
    the first page (in a worker thread, no lock); medians of ``n``."""
    snap, page = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        s = snapshot(st)
        t1 = time.perf_counter()
        render_snapshot(s)
        snap.append(t1 - t0)
        page.append(time.perf_counter() - t1)
    return {"rounds": len(st.history) + 1, "snapshot_ms": round(1e3 * statistics.median(snap), 3),
            "render_ms": round(1e3 * statistics.median(page), 2)}


def replay_both(tmp: Path, entries: list, sync: str,
                explorer_at: dict | None = None) -> tuple[dict, dict, ChainState, dict[int, int]]:
    """Each entry applied once and appended to both ledgers (``PRAGMA synchronous = sync``), each append timed."""
    new, old = Ledger.create(tmp / f"new-{sync}.sqlite"), RewriteLedger.create(tmp / f"old-{sync}.sqlite")
    for led in (new, old):
        led._conn.execute(f"PRAGMA synchronous = {sync}")
    times: dict[str, list[float]] = {"incremental": [], "rewrite": []}
    cpu: dict[str, list[float]] = {"incremental": [], "rewrite": []}
    rows_at: dict[int, int] = {}
    st = ChainState()
    for i, e in enumerate(entries):
        st.apply(e)
        pair = ((new, "incremental"), (old, "rewrite")) if i % 2 else ((old, "rewrite"), (new, "incremental"))
        for led, name in pair:  # alternate which goes first, so neither always meets a warm cache
            t0, c0 = time.perf_counter(), time.thread_time()
            led.append(e, st)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
        if (i + 1) % 100 == 0:
            rows_at[i + 1] = sum(len(v) for v in summary(st).values())
        if explorer_at is not None and i + 1 in explorer_at:
            explorer_at[i + 1] = time_explorer(st)
    want = {t: [tuple(r) for r in rows] for t, rows in summary(st).items()}
    assert new.tables() == want and old.tables() == want, "a ledger's tables differ from summary(state)"
    new.close()
    old.close()
    return times, cpu, st, rows_at


def report(times: dict[str, list[float]], cpu: dict[str, list[float]], rows_at: dict[int, int], at: list[int],
           window: int) -> dict:
    out = []
    for n in at:
        lo = n - min(window, n // 2)  # the first appends also warm SQLite's caches: not counted
        row = {"entries": n, "window": [lo, n], "derived_rows": rows_at.get(n)}
        for name, ts in times.items():
            w = [1e3 * t for t in ts[lo:n]]
            c = [1e3 * t for t in cpu[name][lo:n]]
            row[name] = {"mean_ms": round(statistics.fmean(w), 3), "median_ms": round(statistics.median(w), 3),
                         "max_ms": round(max(w), 3), "cpu_median_ms": round(statistics.median(c), 3)}
        row["rewrite_over_incremental"] = round(row["rewrite"]["median_ms"] / row["incremental"]["median_ms"], 2)
        out.append(row)
        print(json.dumps(row), flush=True)
    first, last = out[0], out[-1]
    growth = {name: round(last[name]["median_ms"] / first[name]["median_ms"], 2) for name in times}
    print(f"median append, {first['entries']} -> {last['entries']} entries: x{growth['incremental']} incremental, "
          f"x{growth['rewrite']} rewrite", flush=True)
    return {"at": out, "median_growth": growth}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--at", default="100,500,1000,2500,5000", help="chain lengths (entries) to report")
    ap.add_argument("--window", type=int, default=100, help="appends averaged before each reported length")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    at = sorted(int(x) for x in args.at.split(","))
    res: dict = {"command": "PYTHONPATH=. python scripts/bench_ledger.py " + " ".join(sys.argv[1:]),
                 "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_before": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        entries = make_log(tmp, at[-1])
        res["log"] = {"entries": len(entries), "made_s": round(time.perf_counter() - t0, 1),
                      "kinds": {k: sum(e.kind == k for e in entries) for k in sorted({e.kind for e in entries})}}
        print(f"log: {len(entries)} entries in {res['log']['made_s']} s", flush=True)
        res["runs"] = {}
        for sync in ("OFF", "FULL"):
            print(f"PRAGMA synchronous = {sync}", flush=True)
            ex = {n: None for n in at} if sync == "OFF" else None
            times, cpu, st, rows_at = replay_both(tmp, entries, sync, ex)
            if ex is not None:
                res["explorer"] = [{"entries": n, **v} for n, v in ex.items()]
                print(json.dumps(res["explorer"]), flush=True)
            res["runs"][f"synchronous={sync}"] = report(times, cpu, rows_at, at, args.window)
    res["log"]["rounds"] = len(st.history) + 1
    res["log"]["derived_rows_at_end"] = sum(len(v) for v in summary(st).values())
    res["host"]["load_avg_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ledger_append.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
