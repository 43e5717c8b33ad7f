"""The node's read-only explorer page at ``/``: rounds, candidates, verdicts per verifier, stakes, and the
verified loss by height as an inline SVG plot. Server-rendered from the node's replayed state; no
script, no build step, every value escaped."""

from __future__ import annotations

import html
from fractions import Fraction
from statistics import median

from pogo_jax.chain.state import ChainState, Round

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f23;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f6f8fa} code{font-size:12px} .muted{color:#6a737d}
.confirmed{color:#116329;font-weight:600} .fraud,.rejected{color:#b31d28;font-weight:600}
.withheld,.void{color:#b08800;font-weight:600} .valid,.undecided,.pending{color:#444}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _short(b: bytes | None) -> str:
    return "" if b is None else b.hex()[:12]


def _name(st: ChainState, key: bytes) -> str:
    p = st.participants.get(key)
    return p.name if p else _short(key)


def _verified_losses(r: Round) -> tuple[float, float] | None:
    if r.winner is None:
        return None
    c = r.candidates[r.winner]
    acc = [v.body for v in c.votes.values() if v.body.tier == "full" and v.body.verdict == "accept"]
    if not acc:
        return None
    return median(a.loss_prev for a in acc), median(a.loss_next for a in acc)


def loss_svg(points: list[tuple[int, float, float]], width: int = 640, height: int = 240) -> str:
    """Verified loss (median of the full verifiers) before and after each confirmed block."""
    if not points:
        return '<p class="muted">no confirmed block yet</p>'
    pad, left = 40, 72
    hs = [p[0] for p in points]
    ys = [v for p in points for v in p[1:]]
    x0, x1 = min(hs) - 1, max(hs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-6:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(h: float) -> float:
        return left + (h - x0) / max(x1 - x0, 1) * (width - left - pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    path = " ".join(f"L{sx(h - 1):.1f},{sy(a):.1f} L{sx(h):.1f},{sy(b):.1f}" for h, a, b in points)
    path = "M" + path[1:]
    dots = "".join(f'<circle cx="{sx(h):.1f}" cy="{sy(b):.1f}" r="3" fill="#0969da"><title>height {h}: {a:.4f} -> '
                   f'{b:.4f}</title></circle>' for h, a, b in points)
    ticks = "".join(f'<text x="{sx(h):.1f}" y="{height - pad + 16}" font-size="11" text-anchor="middle">{h}</text>'
                    for h in hs)
    yt = "".join(f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.3f}</text>'
                 for v in (y0, (y0 + y1) / 2, y1))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="verified loss by height">'
            f'<rect x="{left}" y="{pad}" width="{width - left - pad}" height="{height - 2 * pad}" fill="#fafbfc" '
            f'stroke="#ddd"/><path d="{path}" fill="none" stroke="#0969da" stroke-width="2"/>{dots}{ticks}{yt}'
            f'<text x="{(left + width - pad) / 2}" y="{height - 6}" font-size="12" text-anchor="middle">height</text>'
            f'<text x="14" y="{height / 2}" font-size="12" transform="rotate(-90 14 {height / 2})" '
            f'text-anchor="middle">verified loss (nats)</text></svg>')


def render(chain) -> str:  # noqa: ANN001 - a Chain (the caller holds its lock)
    st: ChainState = chain.state
    g, r = st.genesis, st.round
    rounds = [*st.history, r]
    points = []
    for x in st.history:
        lv = _verified_losses(x)
        if lv is not None:
            points.append((x.height, *lv))
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>pogo chain {_e(g.chain_id)}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>pogo chain <code>{_e(g.chain_id)}</code></h1>",
           f"<p class='muted'>confirmed height <b id='tip'>{st.tip_height}</b> &middot; open round ({r.height}, "
           f"{r.round}) in phase <b>{_e(r.phase)}</b> &middot; {st.seq} log entries &middot; node key "
           f"<code>{_short(g.node_key)}</code> &middot; genesis <code>{_short(st.genesis_hash)}</code></p>",
           "<h2>Verified loss by height</h2>", loss_svg(points),
           "<h2>Rounds</h2><table id='rounds'><tr><th>height</th><th>round</th><th>status</th><th>winner</th>"
           "<th>improvement (nats)</th><th>reward</th><th>candidates</th></tr>"]
    for x in reversed(rounds):
        if x.finalized_at is None:
            status = f"open ({x.phase})"
        else:
            status = "confirmed" if x.winner is not None else "empty"
        win = x.candidates.get(x.winner) if x.winner is not None else None
        imp = "" if win is None or win.improvement is None else f"{float(Fraction(win.improvement)):.4f}"
        out.append(f"<tr data-height='{x.height}' data-status='{_e(status)}'><td>{x.height}</td><td>{x.round}</td>"
                   f"<td class='{'confirmed' if win else 'muted'}'>{_e(status)}</td>"
                   f"<td>{_e(_name(st, win.miner)) if win else ''}</td><td>{imp}</td>"
                   f"<td>{win.reward if win else ''}</td><td>{len(x.candidates)}</td></tr>")
    out.append("</table><h2>Candidates and verdicts</h2><table id='candidates'><tr><th>round</th><th>candidate</th>"
               "<th>miner</th><th>status</th><th>reason</th><th>bundle</th><th>verdicts (verifier: verdict/tier/reason)"
               "</th></tr>")
    for x in reversed(rounds):
        for hh, c in x.candidates.items():
            votes = "<br>".join(f"{_e(_name(st, k))}: {_e(v.body.verdict)}/{_e(v.body.tier)}/{_e(v.body.reason)}"
                                for k, v in c.votes.items())
            out.append(f"<tr><td>({x.height}, {x.round})</td><td><code>{_short(hh)}</code></td>"
                       f"<td>{_e(_name(st, c.miner))}</td><td class='{_e(c.status)}'>{_e(c.status)}</td>"
                       f"<td>{_e(c.reason)}</td><td>{'stored' if c.bundle_sha256 else '&mdash;'}</td>"
                       f"<td>{votes}</td></tr>")
    out.append("</table><h2>Stakes</h2><table id='stakes'><tr><th>name</th><th>role</th><th>key</th><th>stake</th>"
               "</tr>")
    for k, p in st.participants.items():
        out.append(f"<tr><td>{_e(p.name)}</td><td>{_e(p.role)}</td><td><code>{_short(k)}</code></td>"
                   f"<td>{st.stakes[k]}</td></tr>")
    out.append("</table><h2>Stake changes</h2><table id='events'><tr><th>entry</th><th>who</th><th>change</th>"
               "<th>why</th><th>round</th></tr>")
    for ev in reversed(st.events[-50:]):
        out.append(f"<tr><td>{ev.seq}</td><td>{_e(_name(st, ev.key))}</td><td>{ev.delta:+d}</td><td>{_e(ev.reason)}"
                   f"</td><td>{'' if ev.height is None else f'({ev.height}, {ev.round})'}</td></tr>")
    out.append("</table><p class='muted'>Read-only. Every value here is re-derivable from the signed log: "
               "run <code>pogo audit URL</code>.</p></body></html>")
    return "".join(out)
