"""The whole protocol as a user runs it: role commands as separate processes in separate working
directories, bad input with documented exit codes, kill -9 during `pogo demo` and resume.

The chain is `tiny` with 3 steps per block so each process spends its time on compiles, not on
training; the behaviour under test (bytes, roots, exit codes, ledger state) does not depend on size.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TINY = ["--config", "tiny", "--set", "pogo.block_steps=3", "--set", "pogo.n_verifiers=2"]


def pogo(*args: str, cwd: Path, check_rc: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `pogo ARGS` in a fresh interpreter, as a user would."""
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", *args], cwd=cwd, env=e, capture_output=True,
                       text=True, timeout=600)
    if check_rc is not None:
        assert p.returncode == check_rc, f"pogo {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def ledger_dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture(scope="module")
def one_block(tmp_path_factory) -> dict:
    """Miner and two verifiers in different directories drive block 1 through every role command."""
    root = tmp_path_factory.mktemp("roles")
    m, v1, v2 = root / "miner", root / "v1", root / "v2"
    for d in (m, v1, v2):
        d.mkdir()
    pogo("keygen", "--out", "miner.pem", cwd=m)
    pogo("keygen", "--out", "v.pem", cwd=v1)
    pogo("keygen", "--out", "v.pem", cwd=v2)
    pogo("init", "--out", str(root / "chain"), *TINY, "--miner-key", str(m / "miner.pem"),
         "--verifier-key", str(v1 / "v.pem"), "--verifier-key", str(v2 / "v.pem"), cwd=root)
    chain = "../chain"
    mined = json.loads(pogo("mine", "--chain", chain, "--key", "miner.pem", "--workdir", "work", cwd=m).stdout)
    assert mined["height"] == 1
    # Proving before the beacon is revealed is refused: the challenge cannot be known yet.
    early = pogo("prove", "--chain", chain, "--key", "miner.pem", "--workdir", "work", cwd=m, check_rc=2)
    assert "beacon" in early.stderr
    pogo("beacon", "--chain", "chain", cwd=root)
    proved = json.loads(pogo("prove", "--chain", chain, "--key", "miner.pem", "--workdir", "work", cwd=m).stdout)
    bundle = (m / proved["bundle"]).resolve()
    return {"root": root, "m": m, "v1": v1, "v2": v2, "chain": root / "chain", "bundle": bundle}


def test_light_verify_accepts_without_importing_jax(one_block):
    code = ("import sys; from pogo_jax.cli import main; rc = main(['verify', sys.argv[1], '--chain', sys.argv[2]]);"
            "assert 'jax' not in sys.modules, 'light verify imported jax'; sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, str(one_block["bundle"]), str(one_block["chain"])],
                       cwd=one_block["v1"], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ACCEPT block 1 (light)")


def test_full_and_light_attest_then_finalize_and_sync(one_block):
    c = str(one_block["chain"])
    full = json.loads(pogo("attest", str(one_block["bundle"]), "--chain", c, "--key", "v.pem", "--full",
                           cwd=one_block["v1"]).stdout)
    assert (full["verdict"], full["tier"], full["reason"]) == ("accept", "full", "OK")
    light = json.loads(pogo("attest", str(one_block["bundle"]), "--chain", c, "--key", "v.pem",
                            cwd=one_block["v2"]).stdout)
    assert (light["verdict"], light["tier"]) == ("accept", "light")
    out = json.loads(pogo("finalize", "--chain", c, cwd=one_block["root"]).stdout)
    assert out["status"] == "confirmed" and out["slashed"] == []
    status = json.loads(pogo("chain", "--chain", c, "--json", cwd=one_block["root"]).stdout)
    assert status["tip"]["height"] == 1
    miner = next(p for p in status["participants"] if p["role"] == "miner")
    assert miner["stake"] > 1000  # rewarded

    # A newcomer rebuilds the model from genesis + confirmed updates: equal to the miner's, bit for bit.
    pogo("sync", "--chain", c, "--to", "1", "--out", "synced.npz", cwd=one_block["v2"])
    a = np.load(one_block["v2"] / "synced.npz")
    b = np.load(one_block["m"] / "work" / "states" / "000001.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)), k

    # Bad input on a finalized block: one line, exit 2, ledger unchanged.
    before = ledger_dump(one_block["chain"] / "ledger.sqlite")
    late = pogo("attest", str(one_block["bundle"]), "--chain", c, "--key", "v.pem", cwd=one_block["v1"],
                check_rc=2)
    assert "already finalized" in late.stderr and len(late.stderr.strip().splitlines()) == 1
    assert ledger_dump(one_block["chain"] / "ledger.sqlite") == before


def _rewrite(src: Path, dst: Path, mutate) -> Path:
    data = bytearray(src.read_bytes())
    mutate(data)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("case", ["truncated", "version", "magic", "leaf_flip", "missing"])
def test_bad_bundles_get_documented_exit_codes(one_block, tmp_path, case):
    src = one_block["bundle"]
    size = src.stat().st_size
    rng = np.random.default_rng()
    if case == "truncated":
        f = _rewrite(src, tmp_path / "b.pogo", lambda d: d.__delitem__(slice(int(rng.integers(1, size - 1)), None)))
        want, text = 2, "error:"
    elif case == "version":
        f = _rewrite(src, tmp_path / "b.pogo", lambda d: d.__setitem__(slice(8, 12), (7).to_bytes(4, "little")))
        want, text = 2, "unsupported version 7"
    elif case == "magic":
        f = _rewrite(src, tmp_path / "b.pogo", lambda d: d.__setitem__(0, ord("X")))
        want, text = 2, "not a pogo proof bundle"
    elif case == "leaf_flip":
        # Flip one random bit inside the leaf data (the last part of the file): a false claim, exit 1.
        jlen = int.from_bytes(src.read_bytes()[12:20], "little")
        lo = 28 + jlen
        pos = int(rng.integers(lo, size))
        bit = int(rng.integers(0, 8))
        f = _rewrite(src, tmp_path / "b.pogo", lambda d: d.__setitem__(pos, d[pos] ^ (1 << bit)))
        want, text = 1, "REJECT BAD_PROOF"
    else:
        f, want, text = tmp_path / "nope.pogo", 2, "does not exist"
    before = ledger_dump(one_block["chain"] / "ledger.sqlite")
    p = pogo("verify", str(f), "--chain", str(one_block["chain"]), cwd=tmp_path, check_rc=None)
    assert p.returncode == want, (case, p.stdout, p.stderr)
    assert text in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert ledger_dump(one_block["chain"] / "ledger.sqlite") == before


def test_header_signed_by_wrong_key_is_rejected(one_block, tmp_path):
    import dataclasses

    from pogo_jax.spec.bundle import Bundle
    from pogo_jax.spec.header import HEADER_DOMAIN, SignedHeader
    from pogo_jax.spec.keys import generate_key, sign

    b = Bundle.from_bytes(one_block["bundle"].read_bytes())
    # The honest header, signed by a key that is not its miner_key.
    forged = SignedHeader(b.header, sign(generate_key(), HEADER_DOMAIN, b.header.hash()))
    (tmp_path / "forged.pogo").write_bytes(dataclasses.replace(b, signed_header=forged).to_bytes())
    p = pogo("verify", str(tmp_path / "forged.pogo"), cwd=tmp_path, check_rc=1)
    assert "REJECT BAD_SIGNATURE" in p.stderr


def test_missing_ledger_is_a_clear_error(tmp_path):
    p = pogo("chain", "--chain", str(tmp_path / "nothing"), cwd=tmp_path, check_rc=2)
    assert "no ledger at" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_demo_killed_with_sigkill_resumes_without_losing_anything(tmp_path):
    out = tmp_path / "demo"
    args = [sys.executable, "-m", "pogo_jax.cli", "demo", *TINY, "--blocks", "3", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill at a random moment after the first block is recorded (inside mine/prove/verify/finalize).
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "blocks" / "000001" / "header.json").exists():
        time.sleep(0.2)
    time.sleep(float(np.random.default_rng().uniform(0.0, 6.0)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rc = pogo("demo", *TINY, "--blocks", "2", "--out", str(out), cwd=tmp_path, check_rc=None)
    assert rc.returncode == 0, rc.stderr
    con = sqlite3.connect(out / "ledger.sqlite")
    rows = con.execute("SELECT height, status FROM blocks ORDER BY height").fetchall()
    con.close()
    confirmed = [h for h, s in rows if s == "confirmed"]
    assert confirmed == list(range(1, len(confirmed) + 1)) and len(confirmed) >= 2, rows
    assert not [r for r in rows if r[1] == "pending"], rows
    # Nothing half-written: the chain rebuilds from genesis + updates to the miner's own state.
    tip = confirmed[-1]
    pogo("sync", "--chain", str(out), "--out", "tip.npz", cwd=tmp_path)
    a = np.load(tmp_path / "tip.npz")
    b = np.load(out / "miner" / "states" / f"{tip:06d}.npz")
    assert all(np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)) for k in a.files)
    report = json.loads((out / "report" / "report.json").read_text())
    assert {r["height"] for r in report["blocks"]} >= {tip}
    assert (out / "report" / "loss.png").stat().st_size > 0
