"""Serving a chain over real HTTP on loopback inside the test process (uvicorn in a thread), or starting
the ``pogo`` servers as child processes; both bounded in time and stopped by the test."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from pogo_jax.chain.node import make_app


@contextlib.contextmanager
def serve(chain, tick_every: float = 0.05, limit_concurrency: int | None = None,  # noqa: ANN001
          body_pace=None, admission=None) -> Iterator[str]:  # noqa: ANN001
    # log_config=None: uvicorn's dictConfig would shut down every logging handler of this process, among them
    # absl's (orbax imports it), which then closed the stream it had bound at import: pytest's captured stderr
    server = uvicorn.Server(uvicorn.Config(make_app(chain, tick_every, body_pace, admission), host="127.0.0.1", port=0,
                                           log_level="error", access_log=False, limit_concurrency=limit_concurrency,
                                           log_config=None))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    end = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > end or not t.is_alive():
            raise RuntimeError("the in-process node did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


_URL = re.compile(r"listening on (http://\S+)")


class Child:
    """A ``pogo`` command as a child process in its own session; ``url`` once it prints one."""

    def __init__(self, *argv: str, env: dict | None = None, log: Path | None = None, cwd: Path | None = None) -> None:
        self.log = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115
        self.p = subprocess.Popen([sys.executable, "-m", "pogo_jax.cli", *argv], stdout=self.log,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                                  start_new_session=True, cwd=cwd)
        self.url: str | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stderr:
            self.lines.append(line)
            m = _URL.search(line)
            if m:
                self.url = m.group(1)

    def wait_url(self, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while self.url is None:
            if self.p.poll() is not None:
                raise RuntimeError(f"child exited {self.p.returncode}: {''.join(self.lines)[-2000:]}")
            if time.monotonic() > end:
                raise RuntimeError("child did not start")
            time.sleep(0.02)
        return self.url

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> None:
        if self.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
