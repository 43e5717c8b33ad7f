"""The demo's child processes: each role is its own ``pogo`` process in its own directory, started with
its own arguments, its stdout (JSON events) and stderr read through pipes by the demo, and stopped
cleanly (SIGTERM, then SIGKILL) at the end, on an error and on Ctrl-C. The demo writes each child's
output to ``DIR/logs/<name>.log``; the children themselves open nothing outside their own directory."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pogo_jax.errors import UserError

_URL = re.compile(r"listening on (http://\S+)")


class Proc:
    def __init__(self, name: str, argv: list[str], logs: Path, env: dict | None = None,
                 events: queue.Queue | None = None) -> None:
        self.name = name
        self.url: str | None = None
        self.events = events
        self.last: dict = {}
        logs.mkdir(parents=True, exist_ok=True)
        self.log = open(logs / f"{name}.log", "a", buffering=1)  # noqa: SIM115 - closed in stop()
        self.log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pogo {' '.join(argv)}\n")
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen([sys.executable, "-m", "pogo_jax.cli", *argv], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=full_env, text=True, start_new_session=True)
        self._threads = [threading.Thread(target=self._read, args=(self.p.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.p.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, stream, is_stdout: bool) -> None:  # noqa: ANN001
        for line in stream:
            self.log.write(line)
            m = _URL.search(line)
            if m:
                self.url = m.group(1)
            if is_stdout and line.startswith("{"):
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                ev["_proc"] = self.name
                self.last = ev
                if self.events is not None:
                    self.events.put(ev)

    def alive(self) -> bool:
        return self.p.poll() is None

    def wait_url(self, timeout: float = 120.0) -> str:
        end = time.monotonic() + timeout
        while self.url is None:
            if not self.alive():
                raise UserError(f"{self.name} exited (code {self.p.returncode}); see its log")
            if time.monotonic() > end:
                raise UserError(f"{self.name} did not start within {timeout:.0f} s; see its log")
            time.sleep(0.05)
        return self.url

    def stop(self, grace: float = 8.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        for t in self._threads:
            t.join(timeout=2)
        self.log.close()


class Procs:
    """All children of one demo run; ``stop_all`` in reverse start order (clients first, node, beacon last)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.events: queue.Queue = queue.Queue()
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> Proc:
        p = Proc(name, argv, self.logs, env, self.events)
        self.procs.append(p)
        return p

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    def check(self) -> None:
        """A server or a verifier that died is an error (a miner that finished its rounds is not)."""
        for p in self.procs:
            if not p.alive() and p.p.returncode not in (0, None) and not p.name.startswith(("miner", "adversary")):
                raise UserError(f"{p.name} exited with code {p.p.returncode}; see {self.logs / p.name}.log")
