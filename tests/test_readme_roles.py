"""The README's "roles, one process each" block, run line by line as written, on loopback, until a block is
confirmed; then its remaining lines (chain, sync, audit, fetch, verify) must each succeed.

The block is read from README.md after its marker, so the README and this test cannot drift apart. What
the test changes, and only this: ``pogo`` is this interpreter's ``-m pogo_jax.cli``; ``--port 8700`` and
``--port 8701`` become ``--port 0`` (a free port, so parallel runs do not collide) and the addresses the
servers print replace ``http://HOST:8700`` and ``http://127.0.0.1:8701``; ``M0_PUBKEY`` and the like are
the public keys the block's own ``pogo keygen --out m0/key.pem`` lines printed. Every ``serve``,
``--watch`` and ``--rounds 0`` line runs in the background (as in its own terminal) and is stopped at the
end."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nodekit import Child

from pogo_jax.spec.rules import ChainRules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- roles-block:"
CONFIRM_WITHIN_S = 150  # from the first line; 44 s on a shared 2-core host (the test prints it)


def readme_commands() -> list[str]:
    """The marked block's commands: continuation lines joined, comments dropped, ``a; b`` split."""
    text = README.read_text()
    start = text.index("```bash\n", text.index(MARKER)) + len("```bash\n")
    block = text[start:text.index("```", start)].replace("\\\n", " ")
    cmds = []
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        cmds += [c.strip() for c in line.split(";") if c.strip()]
    return cmds


def long_running(argv: list[str]) -> bool:
    return "serve" in argv[1:3] or "--watch" in argv or argv[-2:] == ["--rounds", "0"]


def test_the_block_lists_what_a_chain_needs() -> None:
    """Enough verifier keys and full verifiers for the rules' min_full, and each server before its users."""
    cmds = readme_commands()
    full = [c for c in cmds if c.startswith("pogo attest") and "--full" in c and "--watch" in c]
    init = next(c for c in cmds if c.startswith("pogo init"))
    assert len(full) >= ChainRules().min_full and init.count("--verifier") >= len(full)
    keys = {m.group(1) for c in cmds for m in [re.match(r"pogo keygen --out (\w+)/key\.pem$", c)] if m}
    assert {"gov", "m0", "v1", "v2"} <= keys
    order = [next(i for i, c in enumerate(cmds) if c.startswith(p)) for p in
             ("pogo beacon serve", "pogo init", "pogo node serve", "pogo mine", "pogo chain", "pogo fetch bundle",
              "pogo verify")]
    assert order == sorted(order), cmds


def test_the_readme_roles_block_confirms_a_block(tmp_path: Path) -> None:
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "COLUMNS": "160"}  # one CPU device, as on a user's host
    pubkeys: dict[str, str] = {}
    urls: dict[str, str] = {}
    children: list[Child] = []
    t0 = time.monotonic()
    confirmed_at = None

    def fill(c: str) -> str:
        for placeholder, url in (("http://127.0.0.1:8701", urls.get("beacon")), ("http://HOST:8700", urls.get("node"))):
            if placeholder in c:
                assert url, f"{c}: its server has not started"
                c = c.replace(placeholder, url)
        c = c.replace("--port 8700", "--port 0").replace("--port 8701", "--port 0")
        for name, key in pubkeys.items():
            c = c.replace(f"{name.upper()}_PUBKEY", key)
        assert "PUBKEY" not in c and "HOST" not in c, c
        return c

    def wait_confirmed() -> float:
        from pogo_jax.chain.client import NodeClient
        from pogo_jax.chain.view import ChainView

        view = ChainView(NodeClient(urls["node"]))
        end = t0 + CONFIRM_WITHIN_S
        while view.state.tip_height < 1:
            rounds = [(r.height, r.round, r.phase, [(c.status, c.reason) for c in r.candidates.values()])
                      for r in view.state.history]
            assert not any(r[3] and all(s != "confirmed" for s, _ in r[3]) for r in rounds), rounds  # undecided
            assert time.monotonic() < end, f"no block confirmed in {CONFIRM_WITHIN_S} s: {rounds}"
            assert all(ch.p.poll() is None for ch in children), [ch.lines[-5:] for ch in children]
            time.sleep(0.5)
            view.refresh()
        return time.monotonic() - t0

    try:
        for c in readme_commands():
            argv = shlex.split(fill(c))
            if argv[0] != "pogo":  # cp: a shell line
                assert subprocess.run(argv, cwd=tmp_path, timeout=30).returncode == 0, c
                continue
            if long_running(argv):
                log = tmp_path / f"{argv[1]}-{len(children)}.log"
                children.append(Child(*argv[1:], env=env, log=log, cwd=tmp_path))
                if "serve" in argv[1:3]:
                    urls[argv[1]] = children[-1].wait_url(120)
                continue
            if confirmed_at is None and urls.get("node") and argv[1] in ("chain", "sync", "audit", "fetch"):
                confirmed_at = wait_confirmed()  # the user reruns pogo chain until height 1 shows
            p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                               text=True, timeout=180, env={**os.environ, **env})
            assert p.returncode == 0, (c, p.stdout[-2000:], p.stderr[-2000:])
            if argv[1] == "keygen":
                pubkeys[Path(argv[argv.index("--out") + 1]).parent.name] = p.stdout.strip()
            if argv[1] == "chain":
                assert "confirmed height 1" in p.stdout, p.stdout
            if argv[1] == "sync":
                assert json.loads(p.stdout)["height"] == 1
            if argv[1] == "verify":
                assert p.stdout.startswith("ACCEPT block 1 round 1"), p.stdout
        assert confirmed_at is not None, "the block ran no command that waits for a block"
        print(f"README roles block: first block confirmed {confirmed_at:.0f} s after the first line, "
              f"whole block {time.monotonic() - t0:.0f} s")
    finally:
        for ch in children:
            ch.stop()
    assert all(ch.p.returncode is not None for ch in children)
