"""The node's explorer page in a real headless browser (Debian's chromium; skipped where it is absent):
the rendered page shows the confirmed heights, the candidates with their verdicts, and the loss plot."""

from __future__ import annotations

import re

import pytest
from chainkit import Kit
from nodekit import serve

from pogo_jax.demo.screenshot import chromium, dump_dom, screenshot

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed")


def test_explorer_shows_the_confirmed_heights(tmp_path) -> None:
    kit = Kit(tmp_path)
    a = kit.make(0)
    kit.run_round([a], {(0, v): ("accept", "full", None, (3.0, 2.5)) for v in range(3)})
    b = kit.make(1)
    kit.run_round([b], {(1, v): ("accept", "full", None, (2.5, 2.25)) for v in range(3)})
    cheat = kit.make(0, tamper_rows=range(kit.layout.n_leaves))
    kit.run_round([cheat], {(0, v): ("reject", "light", "APPLY_MISMATCH", None) for v in range(3)})
    with serve(kit.chain) as url:
        dom = dump_dom(url + "/")
        png = screenshot(url + "/", tmp_path / "explorer.png")
    assert re.search(r"<b id=\"tip\">2</b>", dom), dom[:500]
    confirmed = re.findall(r"<tr data-height=\"(\d+)\" data-status=\"confirmed\">", dom)
    assert sorted(confirmed) == ["1", "2"]
    assert "fraud" in dom and "APPLY_MISMATCH" in dom and "<svg" in dom and "verified loss" in dom
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
