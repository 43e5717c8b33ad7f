"""Start two local jax.distributed processes on CPU and collect one JSON result line from each.

Reusable by any test that needs a real multi-controller run (training, Merkle commitments...):
``run_two_process(["train", "--out", str(tmp)], timeout=120)`` runs
``python tests/multihost_worker.py train --out ...`` twice, with ``POGO_MH_PROCESS_ID`` 0/1,
``POGO_MH_COORDINATOR=localhost:PORT`` (a free port), ``POGO_MH_NUM_PROCESSES=2`` and
``POGO_MH_LOCAL_DEVICES`` fake CPU devices each. The worker initializes jax.distributed with
gloo CPU collectives and prints ``RESULT {json}`` as its last such line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "multihost_worker.py"
RESULT_PREFIX = "RESULT "


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def run_two_process(
    worker_args: list[str], timeout: float = 180, local_devices: int = 2, worker: Path = WORKER
) -> list[dict[str, Any]]:
    """Run ``worker`` in two processes forming one jax cluster; return their results by process id.

    Raises AssertionError with both processes' output tails when either fails or times out.
    """
    port = free_port()
    procs = []
    for pid in range(2):
        env = dict(os.environ)
        env.update(
            {
                "JAX_PLATFORMS": "cpu",
                "XLA_FLAGS": f"--xla_force_host_platform_device_count={local_devices}",
                "POGO_MH_COORDINATOR": f"localhost:{port}",
                "POGO_MH_NUM_PROCESSES": "2",
                "POGO_MH_PROCESS_ID": str(pid),
                "POGO_MH_LOCAL_DEVICES": str(local_devices),
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            }
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(worker), *worker_args],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs: list[str] = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        tails = [(p.communicate()[0] or "")[-3000:] for p in procs]
        raise AssertionError(
            f"multi-process run timed out after {timeout}s:\n" + "\n----\n".join(tails)
        ) from None
    results = []
    for pid, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        lines = [x for x in out.splitlines() if x.startswith(RESULT_PREFIX)]
        if p.returncode != 0 or not lines:
            raise AssertionError(
                f"process {pid} exited {p.returncode}:\n" + "\n----\n".join(o[-3000:] for o in outputs)
            )
        results.append(json.loads(lines[-1][len(RESULT_PREFIX) :]))
    return results
