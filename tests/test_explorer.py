"""The node's explorer page: rendered from Jinja2 templates with every record value escaped, paginated, showing
the governance epochs (a table and a marker on the loss plot at each dataset switch), one word for a round's
outcome everywhere, an auto-reload that ``?refresh=0`` turns off, and the templating done without the chain
lock. The last test loads it in a real headless browser (Debian's chromium; skipped where it is absent)."""

from __future__ import annotations

import hashlib
import re
import threading

import httpx
import numpy as np
import pytest
from chainkit import Kit, keys_of, make_dataset
from nodekit import serve

from pogo_jax.chain import explorer
from pogo_jax.chain.explorer import render, render_snapshot, snapshot
from pogo_jax.chain.genesis import data_ref
from pogo_jax.demo.screenshot import chromium, dump_dom, screenshot
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Epoch
from pogo_jax.train.data import SealSpec, _build

HOSTILE = "</text></svg><script>alert('pwned')</script><img src=x onerror=alert(1)>\"'&"


def hostile_dataset(path, seed: int = 11):  # noqa: ANN001, ANN201 - a sealed dataset whose source is markup
    tokens = np.random.default_rng(seed).integers(32, 127, size=200_000, dtype=np.uint8)
    spec = SealSpec(4, 1024, keys_of(path), seed=b"hostile %d" % seed)
    _build(tokens, 4096, 0.1, HOSTILE, 1, 0, path, spec)
    return path


def add_epoch(kit: Kit, path, n: int):  # noqa: ANN001, ANN201 - the epoch's DataRef
    kit.beacon.add_keys(keys_of(path))
    ref = data_ref(path, hashlib.sha256(path.read_bytes()).digest())
    kit.chain.submit_epoch(seal(Epoch(kit.chain_id, public_bytes(kit.gov), n, ref, None), kit.gov).to_bytes(),
                           [path.read_bytes()], None)
    return ref


def accept(miner: int, losses=(2.0, 1.5)) -> dict:  # noqa: ANN001
    return {(miner, v): ("accept", "full", None, losses) for v in range(3)}


def rows(html: str, table: str) -> list[str]:
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr data-[^>]*>.*?</tr>", body, flags=re.S)


def test_a_hostile_string_in_a_record_is_escaped_everywhere_it_is_shown(tmp_path) -> None:
    """A dataset's manifest ``source`` is free text chosen by whoever packed it, and it reaches the epochs
    table, the rounds table and the plot's epoch marker: markup in it must arrive as text."""
    kit = Kit(tmp_path)
    kit.run_round([kit.make(0)], accept(0, (3.0, 2.5)))
    add_epoch(kit, hostile_dataset(tmp_path / "hostile.pogodata"), 1)
    kit.run_round([kit.make(1)], accept(1, (2.5, 2.25)))  # the last round on the genesis dataset
    kit.run_round([kit.make(0)], accept(0, (4.0, 3.5)))  # judged on the hostile one
    html = render(kit.chain)
    assert f'<code id="head">{kit.chain.state.last_hash.hex()}</code>' in html  # the head roles compare theirs with
    assert "<script>" not in html and "<img" not in html and "alert('pwned')" not in html
    escaped = "&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"
    epochs = html.split('<table id="epochs">', 1)[1].split("</table>", 1)[0]
    chart = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert escaped in epochs and "&lt;img src=x onerror=alert(1)&gt;&#34;&#39;&amp;" in epochs
    assert escaped[:40] in chart  # the marker's label (truncated to 40 characters)
    assert html.count("</svg>") == 1 and html.count("<script") == 0


def test_rounds_are_paginated_newest_first(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(explorer, "PAGE_ROUNDS", 2)
    kit = Kit(tmp_path)
    for i in range(4):
        kit.run_round([kit.make(i % 2)])
    heights = {p: [int(h) for h in re.findall(r'<tr data-height="(\d+)"', render(kit.chain, page=p))]
               for p in (1, 2, 3, 9, 0)}
    assert heights[1] == [5, 4] and heights[2] == [3, 2] and heights[3] == [1]  # 5 rounds, the open one first
    assert heights[9] == heights[3] and heights[0] == heights[1]  # out of range: clamped
    page2 = render(kit.chain, page=2)
    assert 'href="?page=3"' in page2 and 'href="?page=1"' in page2 and "page 2 of 3" in page2
    cand_rounds = re.findall(r'<tr data-round="(\d+),(\d+)"', page2)
    assert cand_rounds == [("3", "1"), ("2", "1")]  # only the candidates of the rounds shown
    assert "<circle" in page2 and page2.count("<circle") == 4  # the plot still has every confirmed block
    with serve(kit.chain) as url:
        r = httpx.get(url + "/", params={"page": 2, "refresh": 0}, timeout=30)
        assert r.status_code == 200 and re.findall(r'<tr data-height="(\d+)"', r.text) == ["3", "2"]
        assert 'href="?page=3&amp;refresh=0"' in r.text and 'http-equiv="refresh"' not in r.text
        for bad in ({"page": "x"}, {"page": -1}, {"refresh": "yes"}):
            assert httpx.get(url + "/", params=bad, timeout=30).status_code == 400


def test_epochs_are_a_table_and_markers_on_the_loss_plot(tmp_path) -> None:
    kit = Kit(tmp_path)
    kit.run_round([kit.make(0)], accept(0, (3.0, 2.5)))
    ref = add_epoch(kit, make_dataset(tmp_path / "second.pogodata", seed=5, sealed=4), 1)
    html = render(kit.chain)
    assert "in effect from the next round" in html and 'data-epoch="1"' in html and "not yet" in html
    kit.run_round([kit.make(1)], accept(1, (2.5, 2.25)))  # height 2, still on the genesis dataset
    kit.run_round([kit.make(0)], accept(0, (4.0, 3.5)))  # height 3: the new dataset (the loss jumps)
    html = render(kit.chain, refresh=False)
    epochs = rows(html, "epochs")
    assert len(epochs) == 2 and "0 (genesis)" in epochs[0] and "(1, 1)" in epochs[0]
    assert "(3, 1)" in epochs[1] and ref.manifest_hash.hex()[:12] in epochs[1]
    assert re.findall(r'<tr data-height="(\d+)" data-status="[^"]*"><td>\d+</td><td>\d+</td>\s*<td[^>]*>(\d)</td>',
                      html) == [("4", "1"), ("3", "1"), ("2", "0"), ("1", "0")]
    markers = re.findall(r'<g class="epoch-marker"><line x1="([\d.]+)".*?>(epoch 1: [^<]*)</text>', html, flags=re.S)
    assert len(markers) == 1 and "synthetic" in markers[0][1]
    tick2 = re.search(r'<text x="([\d.]+)" y="\d+" font-size="11" text-anchor="middle">2</text>', html).group(1)
    assert markers[0][0] == tick2  # between block 2 (old data) and block 3 (new data)
    assert "verified loss (nats/token)" in html
    assert re.search(r'<text x="[\d.]+" y="\d+" font-size="11" text-anchor="middle">0</text>', html)  # x origin


def test_one_word_for_a_round_outcome_everywhere(tmp_path) -> None:
    """v2 called a round without a block "empty" in the rounds table while its candidate said "undecided"."""
    kit = Kit(tmp_path)
    und = kit.make(0)  # one full vote of min_full = 2: undecided
    kit.run_round([und], {(0, 0): ("accept", "full", None, (2.0, 1.5)), (0, 1): None, (0, 2): None})
    cheat = kit.make(1, tamper_rows=range(kit.layout.n_leaves))  # fraud: no valid block
    kit.run_round([cheat], {(1, v): ("reject", "light", "APPLY_MISMATCH", None) for v in range(3)})
    kit.run_round([kit.make(0)])
    html = render(kit.chain)
    outcome = {(h, r): s for s, h, r in re.findall(r'<tr data-height="\d+" data-status="([^"]*)"><td>(\d+)</td>'
                                                    r'<td>(\d+)</td>', html)}
    assert outcome == {("1", "1"): "undecided", ("1", "2"): "no valid block", ("1", "3"): "confirmed",
                       ("2", "1"): "open: submit"}
    in_candidates = {(h, r): s for h, r, s in re.findall(r'<tr data-round="(\d+),(\d+)" data-status="[^"]*">\s*'
                                                         r'<td>\(\d+, \d+\) <span class="[^"]*">([^<]*)</span>', html)}
    assert in_candidates == {k: v for k, v in outcome.items() if k != ("2", "1")}
    assert "empty" not in html
    assert re.search(r'<b id="open">open: submit</b>', html)


def test_auto_refresh_is_on_unless_turned_off(tmp_path) -> None:
    kit = Kit(tmp_path)
    on, off = render(kit.chain), render(kit.chain, refresh=False)
    assert f'<meta http-equiv="refresh" content="{explorer.REFRESH_S}">' in on and "?page=1&amp;refresh=0" in on
    assert "http-equiv" not in off and "Auto-reload is off" in off
    assert "no confirmed block yet" in on


def test_templating_runs_without_the_chain_lock(tmp_path, monkeypatch) -> None:
    kit = Kit(tmp_path)
    kit.run_round([kit.make(0)])
    chain = kit.chain
    with chain.lock:
        snap = snapshot(chain.state)
    # another thread holds the lock (a long append, say) while the page is rendered from the snapshot
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with chain.lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    assert held.wait(10)
    out: list[str] = []
    r = threading.Thread(target=lambda: out.append(render_snapshot(snap)), daemon=True)
    r.start()
    r.join(20)
    release.set()
    t.join(10)
    assert out and '<b id="tip">1</b>' in out[0]
    # and render(chain) holds the lock only for the snapshot: during the templating another thread gets it
    real = explorer.render_snapshot
    free: list[bool] = []

    def checking(*a, **kw) -> str:  # noqa: ANN002, ANN003
        got: list[bool] = []
        probe = threading.Thread(target=lambda: got.append(chain.lock.acquire(timeout=5) and not chain.lock.release()))
        probe.start()
        probe.join(10)
        free.append(got == [True])
        return real(*a, **kw)

    monkeypatch.setattr(explorer, "render_snapshot", checking)
    render(chain)
    assert free == [True]
    # the snapshot does not change when the chain goes on
    before = render_snapshot(snap, refresh=False)
    kit.run_round([kit.make(1)])
    assert render_snapshot(snap, refresh=False) == before and render(chain, refresh=False) != before


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_explorer_shows_the_confirmed_heights(tmp_path) -> None:
    kit = Kit(tmp_path)
    a = kit.make(0)
    kit.run_round([a], {(0, v): ("accept", "full", None, (3.0, 2.5)) for v in range(3)})
    b = kit.make(1)
    kit.run_round([b], {(1, v): ("accept", "full", None, (2.5, 2.25)) for v in range(3)})
    cheat = kit.make(0, tamper_rows=range(kit.layout.n_leaves))
    kit.run_round([cheat], {(0, v): ("reject", "light", "APPLY_MISMATCH", None) for v in range(3)})
    with serve(kit.chain) as url:
        dom = dump_dom(url + "/?refresh=0")
        png = screenshot(url + "/?refresh=0", tmp_path / "explorer.png")
    assert re.search(r"<b id=\"tip\">2</b>", dom), dom[:500]
    confirmed = re.findall(r"<tr data-height=\"(\d+)\" data-status=\"confirmed\">", dom)
    assert sorted(confirmed) == ["1", "2"]
    assert "fraud" in dom and "APPLY_MISMATCH" in dom and "<svg" in dom and "verified loss" in dom
    assert 'data-status="no valid block"' in dom and "Governance epochs" in dom
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
