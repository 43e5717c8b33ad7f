"""The chain node under load, over loopback: streaming a large update both ways against a raw socket copy of
the same bytes, the node's memory while it does, full-vote latency with 32 concurrent clients (each commits
its votes, then reveals them once the commit window has closed), and one whole ``small`` block through the
node against the same block in-process. Writes benchmarks/results/node_cpu.json and node_cpu.md.

    PYTHONPATH=. python scripts/bench_node.py                # 256 MB update
    PYTHONPATH=. python scripts/bench_node.py --quick        # 32 MB, fewer requests (a smoke run)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

LEAF = 1024  # elements per leaf of the benchmarked update (the protocol default)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler:
    """Peak resident memory of a process, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self.t.join()
        return self.peak


def raw_socket_copy(path: Path) -> tuple[float, float]:
    """Bytes/s of a plain loopback TCP copy of ``path``: upload (client -> server writes a file) and download
    (server reads the file -> client writes a file), 1 MiB chunks, the written file fsynced like the node's and
    the client's: the same work minus HTTP, framing and hashing."""
    size = path.stat().st_size

    def serve(mode: str, port_box: list, out: Path) -> None:
        srv = socket.create_server(("127.0.0.1", 0))
        port_box.append(srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn:
            if mode == "recv":
                with open(out, "wb") as f:
                    while chunk := conn.recv(1 << 20):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        conn.sendall(chunk)
        srv.close()

    rates = []
    for mode in ("recv", "send"):
        with tempfile.TemporaryDirectory() as d:
            box: list = []
            t = threading.Thread(target=serve, args=(mode, box, Path(d) / "out"), daemon=True)
            t.start()
            while not box:
                time.sleep(0.001)
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", box[0])) as c:
                if mode == "recv":
                    with open(path, "rb") as f:
                        while chunk := f.read(1 << 20):
                            c.sendall(chunk)
                    c.shutdown(socket.SHUT_WR)
                    t.join()
                else:
                    with open(Path(d) / "in", "wb") as f:
                        while chunk := c.recv(1 << 20):
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
            rates.append(size / (time.perf_counter() - t0))
            t.join()
    return rates[0], rates[1]


def big_update(tmp: Path, mb: int):  # noqa: ANN201
    """A chain whose update is ``mb`` MB (a zero genesis state of ~2 * mb M parameters), with its node stopped."""
    import chainkit
    from chainkit import G, Kit

    from pogo_jax.spec.update import update_leaf_bytes

    # the protocol's default layout (1024-element leaves, 528 bytes on the wire), not the tests' small one
    n_leaves = mb * (1 << 20) // update_leaf_bytes(LEAF, G)
    small, chainkit.SHAPES = chainkit.SHAPES, {"w": (n_leaves * LEAF,)}
    try:
        return Kit(tmp, n_verifiers=3, submit_window_ms=2000, prove_window_ms=600_000, attest_window_ms=600_000,
                   leaf_size=LEAF)
    finally:  # the later benchmarks' chains keep the small test model (a 2 GB genesis each ran out of memory)
        chainkit.SHAPES = small


def bench_transfer(tmp: Path, mb: int) -> dict:
    from nodekit import Child

    from pogo_jax.chain.client import NodeClient

    t0 = time.perf_counter()
    kit = big_update(tmp, mb)
    setup_s = time.perf_counter() - t0
    lay = kit.layout
    rng = np.random.default_rng(0)
    from pogo_jax.demo.synthetic import random_update
    from pogo_jax.spec import merkle as mh
    from pogo_jax.spec.header import Header, sign_header
    from pogo_jax.spec.keys import public_bytes

    q = random_update(lay, rng)
    r = kit.st.round
    h = Header(version=3, chain_id=kit.chain_id, height=1, round=1, parent_hash=r.parent_hash,
               miner_key=public_bytes(kit.miners[0]), layout_hash=lay.layout_hash(), data_root=r.data.data_root,
               root_prev=r.root_prev, root_next=hashlib.sha256(b"not checked at upload").digest(),
               root_q=mh.root(mh.leaf_hashes(mh.TAG_QUPD, q)), leaf_size=lay.leaf_size, group_size=lay.group_size,
               n_leaves=lay.n_leaves, train={"steps": 0})
    header = sign_header(h, kit.miners[0]).to_bytes()
    upd_file = tmp / "update.bin"
    upd_file.write_bytes(q.tobytes())
    del q
    kit.chain.close()
    raw_up, raw_down = raw_socket_copy(upd_file)
    node = Child("node", "serve", "--dir", str(tmp / "node"), "--port", "0")
    try:
        url = node.wait_url()
        c = NodeClient(url, timeout=600)
        time.sleep(1.0)
        idle = rss_mb(node.p.pid)
        s = Sampler(node.p.pid)
        t0 = time.perf_counter()
        c.submit_candidate(header, upd_file, progress=False)
        up_s = time.perf_counter() - t0
        peak_up = s.stop()
        time.sleep(3.0)  # the submission window closes; the update becomes public
        sha = hashlib.sha256(upd_file.read_bytes()).digest()
        s = Sampler(node.p.pid)
        t0 = time.perf_counter()
        c.blob_to_file(sha, tmp / "down.bin", progress=False)
        down_s = time.perf_counter() - t0
        peak_down = s.stop()
    finally:
        node.stop()
    size = upd_file.stat().st_size
    return {"update_bytes": size, "setup_s": setup_s,
            "upload": {"seconds": up_s, "MBps": size / up_s / 1e6, "raw_socket_MBps": raw_up / 1e6,
                       "fraction_of_raw": size / up_s / raw_up},
            "download": {"seconds": down_s, "MBps": size / down_s / 1e6, "raw_socket_MBps": raw_down / 1e6,
                         "fraction_of_raw": size / down_s / raw_down},
            "node_rss_idle_MB": idle, "node_rss_peak_upload_MB": peak_up, "node_rss_peak_download_MB": peak_down,
            "node_rss_above_idle_MB": max(peak_up, peak_down) - idle}


def _post_all(url: str, path: str, bodies: list[list[bytes]]) -> dict:
    """One thread per client, all released at once, each posting its ``bodies`` in turn to ``path``."""
    import httpx

    lat: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(len(bodies))

    def client(v: int) -> None:
        h = httpx.Client(base_url=url, timeout=60)
        go.wait()
        for body in bodies[v]:
            t0 = time.perf_counter()
            r = h.post(path, content=body, headers={"content-type": "application/json"})
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                codes.append(r.status_code)

    ts = [threading.Thread(target=client, args=(v,)) for v in range(len(bodies))]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if set(codes) != {200}:
        raise SystemExit(f"bench_node: {path} posts not all admitted: status codes {sorted(set(codes))}")
    a = np.array(lat) * 1e3
    return {"clients": len(bodies), "requests": len(lat), "all_200": True, "wall_s": wall,
            "requests_per_s": len(lat) / wall, "latency_ms_p50": float(np.percentile(a, 50)),
            "latency_ms_p99": float(np.percentile(a, 99)), "latency_ms_max": float(a.max())}


def bench_attest_latency(tmp: Path, n_clients: int = 32, n_candidates: int = 8) -> dict:
    """``n_clients`` verifier threads each commit one full vote per candidate, all at once, to a node process;
    once every commitment is in, the node closes the commit window and they all reveal their votes at once.
    The top-level figures are the reveals (``POST /v1/attestations``), ``commit`` the commitments."""
    import httpx
    from chainkit import Kit
    from nodekit import Child

    kit = Kit(tmp, n_miners=n_candidates, n_verifiers=n_clients, submit_window_ms=1,
              prove_window_ms=600_000, attest_window_ms=600_000, reveal_window_ms=600_000)
    made = [kit.make(i) for i in range(n_candidates)]
    for m in made:
        kit.submit(m)
    kit.close_submit()
    for m in made:
        kit.chain.submit_bundle(kit.bundle(m, losses=(3.0, 2.0)))
    # Full accepts within the loss tolerance of the miner's reported losses, so every one is admitted: a
    # latency measured on rejections (INCONSISTENT_LOSS) would time the cheap path.
    votes = [[kit.attest(v, m, losses=(3.0, 2.0 + 0.001 * i)) for i, m in enumerate(made)] for v in range(n_clients)]
    commits = [[kit.commit(a) for a in row] for row in votes]
    kit.chain.close()
    node = Child("node", "serve", "--dir", str(tmp / "node"), "--port", "0")
    try:
        url = node.wait_url()
        commit = _post_all(url, "/v1/commits", commits)
        end = time.monotonic() + 60  # every verifier committed on every candidate: the commit window closes
        while httpx.get(url + "/v1/round", timeout=30).json()["phase"] != "reveal":
            if time.monotonic() > end:
                raise SystemExit("bench_node: the node did not close the commit window after every commitment")
            time.sleep(0.05)
        reveal = _post_all(url, "/v1/attestations", votes)
    finally:
        node.stop()
    return {**reveal, "commit": commit,
            "what": "top level: revealing full votes (POST /v1/attestations, checked against the commitment and "
                    "the verdict its losses imply); commit: committing them (POST /v1/commits)"}


def bench_block_through_node(tmp: Path, config: str, block_steps: int) -> dict:
    """The same block's role work (mine + submit, prove + publish, full and light checks + attest) on an
    in-process chain, once through ``LocalClient`` and once over HTTP to the same kind of chain served on
    loopback; each mode runs two blocks and the second (compiled, steady) is the one compared."""
    from nodekit import serve

    from pogo_jax.bench import protocol as bp
    from pogo_jax.chain.client import NodeClient
    from pogo_jax.config import load_config
    from pogo_jax.roles.miner import Miner
    from pogo_jax.roles.verify import Verifier

    cfg = bp.bench_config(load_config(config), 64, block_steps)
    out = {}
    for mode in ("in_process", "http"):
        b = bp.Bench(cfg, tmp / mode)  # on a sealed copy of the config's dataset: b.cfg names it
        # The bench moves the fake clock and ticks the chain itself in both modes; the node's own ticker would
        # tick it concurrently (two ticks may both fetch the round's beacon reveal), so it is kept idle here.
        ctx_mgr = serve(b.chain, tick_every=3600.0) if mode == "http" else None
        url = ctx_mgr.__enter__() if ctx_mgr else None
        try:
            client = NodeClient(url) if url else b.client
            miner = Miner(client, b.miners[0], tmp / mode / "miner", b.cfg)
            full = Verifier(client, b.verifiers[0], tmp / mode / "full", "full")
            light = Verifier(client, b.verifiers[1], tmp / mode / "light", "light")
            extra = Verifier(client, b.verifiers[2], tmp / mode / "extra", "full")
            for _block in range(2):
                t = {}
                miner.view.refresh()
                t0 = time.perf_counter()
                made = miner.make_candidate(miner.view.context())
                t["mine"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                client.submit_candidate(made.header_bytes, made.update_path)
                t["submit"] = time.perf_counter() - t0
                b.clock.now += cfg.chain.submit_window_ms
                b.chain.tick()
                t0 = time.perf_counter()
                miner.view.refresh()
                client.submit_bundle(miner.prove(made))
                t["prove_publish"] = time.perf_counter() - t0
                b.chain.tick()
                t0 = time.perf_counter()
                for v in (full, light, extra):  # full votes are committed, the light one posted
                    v.view.refresh()
                    v.attest(made.hash)
                t["verify_attest"] = time.perf_counter() - t0
                b.close_commits()
                t0 = time.perf_counter()
                for v in (full, extra):
                    v.reveal(made.hash)
                t["reveal"] = time.perf_counter() - t0
                t["total"] = sum(t.values())
                b.finish()
            out[mode] = t
        finally:
            if ctx_mgr:
                ctx_mgr.__exit__(None, None, None)
    # Training is the same work in both modes and its time drifts by more than the whole network cost on
    # this host (17 s in one run, 33 s in the next), so the difference is taken over the parts that talk to
    # the node (submit, prove + publish, verify + attest, reveal) and divided by the HTTP block's whole role work.
    talk = ("submit", "prove_publish", "verify_attest", "reveal")
    share = sum(out["http"][k] - out["in_process"][k] for k in talk) / out["http"]["total"]
    return {"config": config, "block_steps": block_steps, **out, "network_share_of_block": share,
            "what": "second block of each mode; the share is the sum over submit, prove_publish, "
                    "verify_attest and reveal of (http - in_process), over the http block's total role work"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mb", type=int, default=None, help="update size in MB (default 256, 32 with --quick)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    mb = args.mb or (32 if args.quick else 256)
    res: dict = {"command": "PYTHONPATH=. python scripts/bench_node.py " + " ".join(sys.argv[1:]),
                 "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="pogo-bench-node-") as d:
        res["transfer"] = bench_transfer(Path(d) / "transfer", mb)
        print(json.dumps(res["transfer"], indent=1), flush=True)
        res["attest_latency"] = bench_attest_latency(Path(d) / "latency", 32, 2 if args.quick else 8)
        print(json.dumps(res["attest_latency"], indent=1), flush=True)
        res["block"] = bench_block_through_node(Path(d) / "block", "tiny" if args.quick else "small",
                                                5 if args.quick else 100)
        print(json.dumps(res["block"], indent=1), flush=True)
    tr, lt, bl = res["transfer"], res["attest_latency"], res["block"]
    res["targets"] = {"transfer_fraction_of_raw_min": 0.5, "node_rss_above_idle_MB_max": 64,
                      "network_share_of_block_max": 0.02}
    res["meets"] = {"upload": tr["upload"]["fraction_of_raw"] >= 0.5,
                    "download": tr["download"]["fraction_of_raw"] >= 0.5, "memory": tr["node_rss_above_idle_MB"] < 64,
                    "network_share": bl["network_share_of_block"] <= 0.02}
    name = "node_cpu_quick" if args.quick else "node_cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [f"# Node benchmark ({'quick' if args.quick else 'full'})", "", f"`{res['command']}`", "",
          "| measure | value | target |", "|---|---|---|",
          f"| upload of a {tr['update_bytes'] / 1e6:.0f} MB update | {tr['upload']['MBps']:.0f} MB/s "
          f"({tr['upload']['fraction_of_raw']:.0%} of a raw socket copy, "
          f"{tr['upload']['raw_socket_MBps']:.0f} MB/s) | >= 50% |",
          f"| download of it | {tr['download']['MBps']:.0f} MB/s ({tr['download']['fraction_of_raw']:.0%} of "
          f"{tr['download']['raw_socket_MBps']:.0f} MB/s) | >= 50% |",
          f"| node memory above idle | {tr['node_rss_above_idle_MB']:.0f} MB | < 64 MB |",
          f"| full-vote commit POST, {lt['commit']['clients']} concurrent clients | p50 "
          f"{lt['commit']['latency_ms_p50']:.1f} ms, p99 {lt['commit']['latency_ms_p99']:.1f} ms "
          f"({lt['commit']['requests_per_s']:.0f} req/s) | |",
          f"| full-vote reveal (attestation) POST, {lt['clients']} concurrent clients | p50 "
          f"{lt['latency_ms_p50']:.1f} ms, p99 {lt['latency_ms_p99']:.1f} ms ({lt['requests_per_s']:.0f} req/s) | |",
          f"| network's share of a {bl['config']} block's role work | {bl['network_share_of_block']:.1%} | <= 2% |", ""]
    (args.out / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
