"""The reviewer's bundle flood (issue 22), measured against a real ``pogo node serve`` process on loopback.

The node's open round is in its proof window with one candidate. ``--connections`` sockets (250) each POST
``/v1/bundles`` announcing the largest body the node takes (``Chain.max_bundle_bytes``), push junk as fast as the
node reads it for ``--burst`` seconds (a third random bytes, a third a well-formed bundle start whose header no
chain recorded, a third stalled inside a bundle's metadata), then keep every connection alive with a byte every
2 s (under the old average-since-start pace rule the burst bought a long hold). Meanwhile the candidate's miner
uploads its real bundle with ``NodeClient`` (its usual retries) and a reader polls ``GET /v1/info``. Reports the
node's resident memory (before, peak, after), the answers the junk got, the GETs, and whether and when the honest
bundle got in. ``--reopen`` makes the attacker open a new connection whenever one is answered or closed.

    PYTHONPATH=. python scripts/flood_bundles.py                          # this tree's node
    git archive OLD | tar -x -C /tmp/old && PYTHONPATH=. python scripts/flood_bundles.py --node-src /tmp/old --out ''

Writes benchmarks/results/bundle_flood.json (``--out``; '' prints only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_node import rss_mb  # noqa: E402 - the node's memory, as the node benchmark reads it


def proof_window_chain(tmp: Path):  # noqa: ANN201 - (kit, honest bundle bytes, fake bundle bytes)
    """A chain (its node stopped) whose open round is in a proof window of 10 minutes of wall-clock time, with
    one candidate and its miner's real bundle, and a bundle for a header the chain never recorded."""
    import dataclasses

    import chainkit
    from chainkit import Kit

    from pogo_jax.chain.chain import wall_ms
    from pogo_jax.spec.bundle import Bundle

    fake_clock = chainkit.FakeClock
    chainkit.FakeClock = lambda: fake_clock(wall_ms())  # the node serves on the wall clock
    try:
        kit = Kit(tmp, n_miners=2, submit_window_ms=1, prove_window_ms=600_000)
    finally:
        chainkit.FakeClock = fake_clock
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    assert kit.st.round.phase == "proof", kit.st.round.phase
    honest = kit.bundle(m)
    fake = dataclasses.replace(Bundle.from_bytes(honest), signed_header=kit.make(1).signed).signed(
        kit.miners[1]).to_bytes()
    limit = kit.chain.max_bundle_bytes()
    kit.chain.close()
    return kit, honest, fake, limit


class NodeProcess:
    """``pogo node serve`` from the source tree ``src`` (its own working directory and PYTHONPATH, so the
    node imports that tree's ``pogo_jax`` and not this one's)."""

    def __init__(self, src: Path, chain_dir: Path) -> None:
        import subprocess

        self.p = subprocess.Popen([sys.executable, "-m", "pogo_jax.cli", "node", "serve", "--dir", str(chain_dir),
                                   "--port", "0"], cwd=src, env={**os.environ, "PYTHONPATH": str(src)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stderr:
            if "listening on " in line:
                self.url = line.split("listening on ")[1].strip()

    def wait_url(self, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while self.url is None:
            if self.p.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"flood_bundles: the node did not start (exit {self.p.poll()})")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(10)
        except Exception:  # noqa: BLE001
            self.p.kill()
            self.p.wait(10)


class Attacker:
    """The junk connections: opened, pushed, kept alive, their answers read (status line or reset)."""

    def __init__(self, url: str, n: int, limit: int, fake: bytes, reopen: bool) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port, self.limit, self.fake, self.reopen = int(port), limit, fake, reopen
        self.junk = os.urandom(1 << 20)
        self.socks: list[list] = []  # [socket, kind, bytes sent]
        self.answers: Counter = Counter()
        self.opened = 0
        self.pushed = 0
        for i in range(n):
            self._open(i % 3)

    def _open(self, kind: int) -> None:
        try:
            s = socket.create_connection((self.host, self.port), timeout=5)
            s.sendall(f"POST /v1/bundles HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\n"
                      f"content-length: {self.limit}\r\n\r\n".encode())
            first = (b"", self.fake[:4096], self.fake[:60])[kind]
            s.sendall(first)
            s.setblocking(False)
        except OSError:
            self.answers["connect failed"] += 1
            return
        self.opened += 1
        self.socks.append([s, kind, len(first)])

    def _answer(self, entry: list) -> bool:
        """True when the node answered or closed this connection (then it is dropped)."""
        s = entry[0]
        try:
            got = s.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            self.answers["reset"] += 1
            return True
        if not got:
            self.answers["closed, no answer"] += 1
        else:
            line = got.split(b"\r\n")[0].decode(errors="replace")
            code = got.split(b'"code":"')[1].split(b'"')[0].decode() if b'"code":"' in got else ""
            self.answers[f"{line.split(' ')[1] if ' ' in line else line} {code}".strip()] += 1
        return True

    def step(self, push: bool) -> None:
        """One pass over the connections: read answers, push junk (or one keep-alive byte), reopen."""
        keep, current, self.socks = [], self.socks, []  # reopened connections land in self.socks
        for entry in current:
            if self._answer(entry):
                entry[0].close()
                if self.reopen:
                    self._open(entry[1])
                continue
            s, kind, sent = entry
            if not (kind == 2 and push) and sent < self.limit - 1:  # the stalled ones only keep alive
                n = min(len(self.junk), self.limit - 1 - sent) if push else 1
                with contextlib.suppress(OSError):
                    k = s.send(self.junk[:n])
                    entry[2] += k
                    self.pushed += k
            keep.append(entry)
        self.socks = keep + self.socks

    def close(self) -> None:
        for s, _, _ in self.socks:
            s.close()


def run(args: argparse.Namespace) -> dict:
    import httpx

    from pogo_jax.chain.client import NodeClient, Refused

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        kit, honest, fake, limit = proof_window_chain(tmp)
        src = Path(args.node_src or REPO).resolve()
        node = NodeProcess(src, tmp / "node")
        try:
            url = node.wait_url()
            pid = node.p.pid
            httpx.get(url + "/v1/info", timeout=10)
            time.sleep(1.0)
            before = rss_mb(pid)
            peak = [before]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], rss_mb(pid))

            threading.Thread(target=sample, daemon=True).start()
            t0 = time.monotonic()
            att = Attacker(url, args.connections, limit, fake, args.reopen)
            honest_out: dict = {}
            gets: Counter = Counter()

            def miner() -> None:
                time.sleep(args.honest_after)
                s = time.monotonic()
                try:
                    out = NodeClient(url).submit_bundle(honest)
                    honest_out.update(result=out["result"])
                except Refused as e:
                    honest_out.update(result=f"refused {e.status} {e.code}")
                except Exception as e:  # noqa: BLE001 - the client gave up (UserError after its retries)
                    honest_out.update(result=f"failed: {str(e)[:120]}")
                honest_out.update(seconds=round(time.monotonic() - s, 2), started_s=args.honest_after)

            def reader() -> None:
                while not stop.is_set():
                    try:
                        gets[str(httpx.get(url + "/v1/info", timeout=5).status_code)] += 1
                    except httpx.HTTPError as e:
                        gets[type(e).__name__] += 1
                    time.sleep(0.5)

            threads = [threading.Thread(target=miner), threading.Thread(target=reader, daemon=True)]
            for t in threads:
                t.start()
            last_keepalive = 0.0
            while time.monotonic() - t0 < args.hold:
                push = time.monotonic() - t0 < args.burst
                if push or time.monotonic() - last_keepalive >= 2.0:
                    att.step(push)
                    last_keepalive = time.monotonic()
                time.sleep(0.005 if push else 0.05)
            held_at_end = len(att.socks)
            during = rss_mb(pid)
            threads[0].join(120)
            att.close()
            stop.set()
            time.sleep(2.0)
            after = rss_mb(pid)
            kinds = [e["kind"] for e in httpx.get(url + "/v1/log", timeout=10).json()["entries"]]
        finally:
            node.stop()
    return {
        "node_src": args.node_src or "this tree", "connections": args.connections, "reopen": args.reopen,
        "announced_body_bytes": limit, "burst_s": args.burst, "hold_s": args.hold,
        "junk_bytes_pushed": att.pushed, "junk_connections_opened": att.opened,
        "junk_still_open_at_end": held_at_end, "junk_answers": dict(att.answers),
        "node_rss_mb": {"before": round(before, 1), "peak": round(peak[0], 1),
                        "at_end_of_hold": round(during, 1), "after": round(after, 1)},
        "gets_during_flood": dict(gets), "honest_bundle": honest_out,
        "bundles_in_log": kinds.count("bundle"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=250)
    p.add_argument("--burst", type=float, default=8.0, help="seconds of pushing junk as fast as the node reads it")
    p.add_argument("--hold", type=float, default=40.0, help="seconds the attack lasts (burst included)")
    p.add_argument("--honest-after", type=float, default=4.0, help="when the miner starts its upload")
    p.add_argument("--reopen", action="store_true", help="reopen a junk connection whenever one ends")
    p.add_argument("--node-src", default=None, help="run the node from another source tree (PYTHONPATH)")
    p.add_argument("--label", default=None, help="the run's key in the results file (default: once or reopen)")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/bundle_flood.json"))
    args = p.parse_args()
    res = run(args)
    print(json.dumps(res, indent=1))
    if args.out:
        out = Path(args.out)
        runs = json.loads(out.read_text()) if out.is_file() else {}
        runs[args.label or ("reopen" if args.reopen else "once")] = {**res, "command": " ".join(sys.argv)}
        out.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
