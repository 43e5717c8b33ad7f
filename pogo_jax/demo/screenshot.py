"""Headless Chromium (Debian's ``chromium``) against a page on loopback: the DOM it renders and a PNG of it.
Used by the explorer's browser test and to make the screenshot in docs/."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=timeout)


def dump_dom(url: str, timeout: float = 60) -> str:
    return _run(["--dump-dom", url], timeout).stdout


def screenshot(url: str, out: str | Path, width: int = 1200, height: int = 1400, timeout: float = 60) -> Path:
    out = Path(out).resolve()
    p = _run([f"--screenshot={out}", f"--window-size={width},{height}", url], timeout)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot: {p.stderr[-400:]}")
    return out
