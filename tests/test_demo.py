"""``pogo demo`` as a user runs it: the beacon and the node as child processes, the miner and verifiers as
clients in their own directories; a second run with the same ``--out`` continues the chain. And the light
verifier's whole path (CLI, role, chain view, node client) never imports jax."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETS = ["--set", "miner.block_steps=5", "--set", "chain.k_leaves=32", "--set", "chain.submit_window_ms=1000"]


def pogo(*argv: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pogo_jax.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "100"})


def test_demo_runs_through_the_node_and_continues(tmp_path) -> None:
    out = tmp_path / "demo"
    p = pogo("demo", "--config", "tiny", "--blocks", "1", "--out", str(out), *SETS)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rep = json.loads((out / "report" / "report.json").read_text())
    assert rep["tip_height"] == 1 and rep["rounds"][0]["confirmed"]
    c = rep["rounds"][0]["candidates"][0]
    assert c["status"] == "confirmed" and c["loss_next"] < c["loss_prev"] and c["reward"] > 0
    assert sorted(v["tier"] for v in c["verdicts"]) == ["full", "full", "light"]
    assert (out / "report" / "loss.png").stat().st_size > 1000 and (out / "report" / "blocks.md").is_file()
    for role in ("beacon", "node", "governance", "miner-0", "verifier-0", "verifier-1", "verifier-2", "logs"):
        assert (out / role).is_dir(), role
    assert not any((out / "node").rglob("secret.key")) and (out / "beacon" / "secret.key").is_file()
    p = pogo("demo", "--config", "tiny", "--blocks", "1", "--out", str(out), *SETS)
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads((out / "report" / "report.json").read_text())
    assert rep["tip_height"] == 2
    a = pogo("audit", str(out / "node"))
    assert a.returncode == 0 and "no difference" in a.stdout, a.stdout


def test_demo_bad_input_is_one_line() -> None:
    for argv in (["--adversary", "nobody"], ["--verifiers", "2", "--full", "3"], ["--blocks", "-1"],
                 ["--set", "chain.verifier_fee=0"], ["--config", "no-such-config"]):
        p = pogo("demo", "--out", "/nonexistent/never", *argv, timeout=60)
        assert p.returncode == 2, (argv, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 2, (argv, p.stderr)


def test_the_light_path_imports_no_jax() -> None:
    code = ("import sys\n"
            "import pogo_jax.cli, pogo_jax.cli.verify, pogo_jax.cli.attest, pogo_jax.cli.audit, pogo_jax.cli.chain\n"
            "import pogo_jax.roles.verify, pogo_jax.roles.sync, pogo_jax.chain.view, pogo_jax.chain.client\n"
            "import pogo_jax.chain.audit, pogo_jax.chain.node, pogo_jax.spec.light, pogo_jax.demo.adversary\n"
            "assert 'jax' not in sys.modules, 'jax imported'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_sigterm_stops_the_demo_like_ctrl_c() -> None:
    """``timeout``, systemd and CI runners stop a process with SIGTERM: inside the demo it raises the same
    KeyboardInterrupt as Ctrl-C, whose handler stops every child process, and the old handler comes back."""
    import signal
    import time

    from pogo_jax.interrupt import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before
