"""Every role as its own OS process in its own directory, talking only through the node over loopback HTTP,
exactly as the README's walkthrough runs them: two miners compete in one round (the better verified
improvement wins), two full verifiers and a light one attest, then ``pogo chain``, ``pogo sync`` and
``pogo audit`` re-derive it all. Each role logs every file it opens: none opens a file under another
role's directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nodekit import Child

from pogo_jax.chain.client import NodeClient
from pogo_jax.chain.view import ChainView

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETS = ["--set", "chain.k_leaves=16", "--set", "chain.submit_window_ms=25000", "--set", "chain.prove_window_ms=60000",
        "--set", "chain.attest_window_ms=120000", "--set", "chain.reveal_window_ms=60000"]


def pogo(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pogo_jax.cli", *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_roles_as_processes_two_miners_compete(tmp_path: Path) -> None:
    roles = {name: tmp_path / name for name in ("governance", "beacon", "chain", "m0", "m1", "v0", "v1", "v2")}
    pubs = {}
    for name in ("governance", "m0", "m1", "v0", "v1", "v2"):
        roles[name].mkdir()
        p = pogo("keygen", "--out", str(roles[name] / "key.pem"))
        assert p.returncode == 0, p.stderr
        pubs[name] = p.stdout.strip()
    opens = {n: roles[n] / "opens.log" for n in ("beacon", "chain", "m0", "m1", "v0", "v1", "v2")}
    roles["beacon"].mkdir()
    # governance seals the chain's evaluation shards and hands their keys to the beacon (and only to it)
    sealed, keys = roles["governance"] / "sealed.pogodata", roles["governance"] / "eval.keys"
    p = pogo("data", "seal", "--out", str(sealed), "--sealed-eval", "8", "--keys-out", str(keys))
    assert p.returncode == 0, p.stderr
    (roles["beacon"] / "eval.keys").write_bytes(keys.read_bytes())
    children = []
    try:
        beacon = Child("beacon", "serve", "--dir", str(roles["beacon"] / "state"), "--port", "0",
                       "--eval-keys", str(roles["beacon"] / "eval.keys"), env={"POGO_OPEN_LOG": str(opens["beacon"])})
        children.append(beacon)
        burl = beacon.wait_url()
        p = pogo("init", "--dir", str(roles["chain"]), "--config", "tiny", "--data", str(sealed), "--beacon", burl,
                 "--governance-key", str(roles["governance"] / "key.pem"), "--miner", pubs["m0"], "--miner", pubs["m1"],
                 "--verifier", pubs["v0"], "--verifier", pubs["v1"], "--verifier", pubs["v2"], *SETS)
        assert p.returncode == 0, p.stderr
        node = Child("node", "serve", "--dir", str(roles["chain"]), "--port", "0", "--beacon", burl,
                     env={"POGO_OPEN_LOG": str(opens["chain"])})
        children.append(node)
        url = node.wait_url()
        for v, full in (("v0", True), ("v1", True), ("v2", False)):
            children.append(Child("attest", "--node", url, "--key", str(roles[v] / "key.pem"), "--workdir", str(roles[v]),
                                  "--watch", *(["--full"] if full else []),
                                  env={"POGO_OPEN_LOG": str(opens[v]), "JAX_PLATFORMS": "cpu"}))
        miners = []
        for m, steps in (("m0", 3), ("m1", 12)):
            miners.append(Child("mine", "--node", url, "--key", str(roles[m] / "key.pem"), "--workdir", str(roles[m]),
                                "--config", "tiny", "--set", f"miner.block_steps={steps}", "--rounds", "1",
                                env={"POGO_OPEN_LOG": str(opens[m])}, log=roles[m] / "out.log"))
        children += miners
        end = time.monotonic() + 480
        view = ChainView(NodeClient(url))
        while not (view.state.history and all(c.p.poll() is not None for c in miners)):
            assert time.monotonic() < end, "the round did not finish"
            assert all(c.p.poll() in (None, 0) for c in children), [c.lines[-3:] for c in children]
            time.sleep(0.5)
            view.refresh()
        r = view.state.history[0]
        assert len(r.candidates) == 2 and r.winner is not None
        best = max((c for c in r.candidates.values() if c.status in ("valid", "confirmed")),
                   key=lambda c: c.improvement)
        assert r.winner == best.hash
        for c in r.candidates.values():
            tiers = sorted(v.body.tier for v in c.votes.values())
            assert tiers == ["full", "full", "light"], tiers
        out = pogo("chain", "--node", url, "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["tip_height"] == 1
        s = pogo("sync", "--node", url, "--to", "1", "--out", str(tmp_path / "state.npz"))
        assert s.returncode == 0 and json.loads(s.stdout)["root"] == view.state.blocks[0].header.body.root_next.hex()
        a = pogo("audit", url)
        assert a.returncode == 0 and "no difference" in a.stdout, a.stdout + a.stderr
    finally:
        for c in children:
            c.stop()
    a = pogo("audit", str(roles["chain"]))  # the node stopped: the directory audits the same
    assert a.returncode == 0, a.stdout
    for name, log in opens.items():
        mine = roles[name].resolve()
        others = [roles[o].resolve() for o in roles if o != name]
        touched = {Path(line.strip()) for line in log.read_text().splitlines() if line.strip()}
        bad = [p for p in touched if any(p == o or o in p.parents for o in others) and mine not in p.parents]
        assert not bad, f"{name} opened another role's files: {sorted(bad)[:5]}"
        assert any(mine in p.parents for p in touched) or name == "beacon", name
