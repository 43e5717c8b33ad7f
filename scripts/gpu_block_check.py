"""A ``tiny`` block mined on the accelerator, verified on the CPU: the device suite's step 4.

``make`` (on the GPU host): a ``pogo demo`` chain whose miner runs on the default backend (the GPU) and
whose verifiers run on the CPU (the demo pins them there) mines one block on a small packed dataset; the
chain's log, the genesis state, the dataset, the block's update and bundle are packed into one tar next
to a JSON summary. ``verify TAR`` (anywhere, on the CPU): replays the copied log through the chain's
rules, light-checks the bundle against the replayed context, rebuilds theta_next from the genesis state
and the update with every root checked, and measures the losses on the round's windows; the miner's
reported losses must be within the chain's tolerance of this CPU's.

    PYTHONPATH=. python scripts/gpu_block_check.py make --out OUT/gpu_block.json
    PYTHONPATH=. python scripts/gpu_block_check.py verify OUT/gpu_block.tar
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make(out_json: Path, platform: str | None) -> dict:
    from pogo_jax.chain.blobs import BlobStore
    from pogo_jax.chain.ledger import Ledger
    from pogo_jax.chain.state import replay
    from pogo_jax.train.data import pack

    work = Path(tempfile.mkdtemp(prefix="pogo-gpu-block-"))
    data = pack([REPO / "pogo_jax"], work / "data.pogodata", shard_size=4096, eval_fraction=0.1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if platform:
        env["JAX_PLATFORMS"] = platform
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", "demo", "--config", "tiny", "--blocks", "1",
                        "--out", str(work / "demo"), "--set", "miner.block_steps=3", "--set", "chain.k_leaves=16",
                        "--set", "chain.submit_window_ms=1000", "--set", f"data.path={data.path}",
                        "--set", "demo.sealed_shards=4"],
                       env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"demo failed: {p.stderr[-2000:]}")
    ledger = Ledger.open(work / "demo" / "node" / "ledger.sqlite", readonly=True)
    entries = ledger.entries()
    st = replay(entries)
    blk = st.blocks[-1]
    ctx = st.context(blk.hash)
    store = BlobStore(work / "demo" / "node" / "blobs", readonly=True)
    tar_path = out_json.with_suffix(".tar")
    with tarfile.open(tar_path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("log.json", json.dumps({"entries": [e.to_obj() for e in entries]}).encode())
        for sha in (st.genesis.state.blob, st.genesis.data.blob, ctx.update_sha256, ctx.bundle_sha256):
            add(f"blobs/{sha.hex()}", store.get(sha))
    votes = [v.body for v in st.history[-1].candidates[blk.hash].votes.values()]
    import jax

    res = {"miner_backend": jax.default_backend() if platform is None else platform, "demo_seconds": round(seconds, 1),
           "confirmed": st.tip_height == 1, "header_hash": blk.hash.hex(),
           "device_verdicts": [f"{v.verdict}/{v.tier}/{v.reason}" for v in votes], "tar": tar_path.name,
           "cpu_check_here": verify(tar_path)}
    out_json.write_text(json.dumps(res, indent=2) + "\n")
    return res


def verify(tar_path: Path) -> dict:
    """The copied block, checked on this host's CPU from the copied bytes alone."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from pogo_jax.chain.history import confirmed_state
    from pogo_jax.chain.log import read_entries
    from pogo_jax.chain.state import replay
    from pogo_jax.roles.chaincfg import chain_config
    from pogo_jax.roles.full import verify_full
    from pogo_jax.spec.bundle import Bundle
    from pogo_jax.spec.dataset import read_packed, verify_against
    from pogo_jax.spec.light import verify_light
    from pogo_jax.train.evaluate import Evaluator, mean_loss

    with tarfile.open(tar_path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    blobs = {bytes.fromhex(k.split("/")[1]): v for k, v in files.items() if k.startswith("blobs/")}
    fetch = blobs.__getitem__
    st = replay(read_entries(files["log.json"]))
    blk = st.blocks[-1]
    ctx = st.context(blk.hash)
    bundle = Bundle.from_bytes(fetch(ctx.bundle_sha256))
    light = verify_light(bundle, ctx)
    theta = confirmed_state(st, 0, fetch)
    ds = read_packed(fetch(ctx.data.blob), verify=False)
    verify_against(ds, ctx.data.data_root, ctx.data.manifest_hash, "copied dataset")
    import jax

    full = verify_full(bundle, ctx, theta, fetch(ctx.update_sha256), ds, Evaluator(chain_config(st.genesis)[0]))
    return {"backend": jax.default_backend(), "light": light.reason, "light_accept": light.accept,
            "full": full.reason, "full_accept": full.accept, "loss_prev_cpu": mean_loss(full.losses_prev),
            "loss_next_cpu": mean_loss(full.losses_next), "loss_prev_miner": bundle.loss_prev,
            "loss_next_miner": bundle.loss_next, "windows": len(full.losses_prev)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, required=True, help="the JSON summary (the tar is written beside it)")
    m.add_argument("--platform", default=None, help="backend for the miner (default: jax's default, the GPU)")
    v = sub.add_parser("verify")
    v.add_argument("tar", type=Path)
    args = ap.parse_args()
    res = make(args.out, args.platform) if args.cmd == "make" else verify(args.tar)
    print(json.dumps(res, indent=2))
    ok = res["cpu_check_here"] if args.cmd == "make" else res
    return 0 if ok["light_accept"] and ok["full_accept"] else 1


if __name__ == "__main__":
    sys.exit(main())
