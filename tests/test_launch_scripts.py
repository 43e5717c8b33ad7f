"""The TPU launcher with a stand-in ``gcloud``: every remote command it would send parses as bash, and the
miner mode starts ``pogo mine`` against the node on every host with its own key."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fake_gcloud(tmp: Path) -> Path:
    log = tmp / "calls.txt"
    exe = tmp / "bin" / "gcloud"
    exe.parent.mkdir()
    exe.write_text(f"#!/usr/bin/env bash\nprintf '%q ' \"$@\" >> {log}\necho >> {log}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return log


def remote_commands(log: Path) -> list[str]:
    out = []
    for line in log.read_text().splitlines():
        for arg in shlex.split(line):
            if arg.startswith("--command="):
                out.append(arg[len("--command="):])
    return out


def test_tpu_launcher_modes_send_valid_bash(tmp_path) -> None:
    log = fake_gcloud(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "TPU_NAME": "t", "ZONE": "z",
           "PROJECT": "p", "REPO_URL": "https://example.invalid/pogo.git"}
    for argv, want in ((["--node", "http://10.0.0.2:8700", "--set", "miner.block_steps=50"], "pogo mine --node"),
                       (["--node", "http://10.0.0.2:8700", "--keys"], "miner key"),
                       (["--set", "train.steps=5"], "pogo train --distributed")):
        log.write_text("")
        extra = {} if "--node" in argv else {"OUT": "/mnt/shared/run"}
        p = subprocess.run(["bash", str(REPO / "scripts" / "launch_tpu_pod.sh"), *argv], env={**env, **extra},
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        cmds = remote_commands(log)
        assert any(want in c for c in cmds), cmds
        for c in cmds:
            check = subprocess.run(["bash", "-n", "-c", c], capture_output=True, text=True)
            assert check.returncode == 0, (c, check.stderr)
    p = subprocess.run(["bash", str(REPO / "scripts" / "launch_tpu_pod.sh")], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "OUT" in p.stderr  # training needs a shared OUT directory
