"""The node's read-only explorer page at ``/``: rounds (with their sealed shard), candidates with the chain's
measurement (median improvement and its lower confidence bound), votes (committed, revealed, outlier) and
verifier pay, stakes, and the verified loss by height as an inline SVG plot. Server-rendered from the
node's replayed state; no script, no build step, every value escaped."""

from __future__ import annotations

import html

from pogo_jax.chain.state import Candidate, ChainState, Round

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f23;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f6f8fa} code{font-size:12px} .muted{color:#6a737d}
.confirmed{color:#116329;font-weight:600} .fraud,.false-loss,.outlier{color:#b31d28;font-weight:600}
.withheld,.void,.weak{color:#b08800;font-weight:600} .valid,.undecided,.pending{color:#444}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _short(b: bytes | None) -> str:
    return "" if b is None else b.hex()[:12]


def _name(st: ChainState, key: bytes) -> str:
    p = st.participants.get(key)
    return p.name if p else _short(key)


def _verified_losses(r: Round) -> tuple[float, float] | None:
    """The chain's measurement of the winner: means of the per-window median losses before and after."""
    if r.winner is None or r.candidates[r.winner].measurement is None:
        return None
    m = r.candidates[r.winner].measurement
    return float(m.prev_mean), float(m.next_mean)


def votes_summary(c: Candidate) -> dict:
    """Who committed a full vote, who revealed one, which were outliers, who voted light, who was paid."""
    full = [k for k, v in c.votes.items() if v.body.tier == "full"]
    return {"committed": list(c.commits), "revealed": full, "unrevealed": [k for k in c.commits if k not in full],
            "light": [k for k, v in c.votes.items() if v.body.tier == "light"],
            "outliers": list(c.measurement.outliers) if c.measurement else [], "paid": list(c.paid)}


def measured(c: Candidate) -> tuple[str, str]:
    """(improvement, lower bound) as text, nats per token, or blanks."""
    if c.measurement is None:
        return "", ""
    b = c.measurement.bound
    return f"{float(b.mean):.4f}", f"{b.lcb:.4f}"


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
                    for h in sorted({x0, *hs}))
    yt = "".join(f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.3f}</text>'
                 for v in (y0, (y0 + y1) / 2, y1))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="verified loss by height">'
            f'<rect x="{left}" y="{pad}" width="{width - left - pad}" height="{height - 2 * pad}" fill="#fafbfc" '
            f'stroke="#ddd"/><path d="{path}" fill="none" stroke="#0969da" stroke-width="2"/>{dots}{ticks}{yt}'
            f'<text x="{(left + width - pad) / 2}" y="{height - 6}" font-size="12" text-anchor="middle">height</text>'
            f'<text x="14" y="{height / 2}" font-size="12" transform="rotate(-90 14 {height / 2})" '
            f'text-anchor="middle">verified loss (nats/token)</text></svg>')


def render(chain) -> str:  # noqa: ANN001 - a Chain (the caller holds its lock)
    st: ChainState = chain.state
    g, r = st.genesis, st.round
    rounds = [*st.history, r]
    points = []
    for x in st.history:
        lv = _verified_losses(x)
        if lv is not None:
            points.append((x.height, *lv))
    sealed = r.data.manifest.get("sealed", {}).get("shards", [])
    used = st.shards_used.get(r.data.manifest_hash, 0)
    shards = (f"{used} of {len(sealed)} sealed evaluation shards of the current dataset used"
              + ("; <b>none left: no round opens until a governance epoch adds a newly sealed dataset</b>"
                 if r.phase == "waiting" else ""))
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>pogo chain {_e(g.name)}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>pogo chain {_e(g.name)} <code>{_short(bytes.fromhex(g.chain_id))}</code></h1>",
           f"<p class='muted'>chain id (genesis hash) <code>{_e(g.chain_id)}</code> &middot; confirmed height "
           f"<b id='tip'>{st.tip_height}</b> &middot; open round ({r.height}, {r.round}) in phase <b>{_e(r.phase)}</b>"
           f" &middot; {st.seq} log entries &middot; node key <code>{_short(g.node_key)}</code> &middot; "
           f"<span id='shards'>{shards}</span> &middot; epoch budget left {st.budget_left}</p>",
           "<h2>Verified loss by height</h2>", loss_svg(points),
           "<h2>Rounds</h2><table id='rounds'><tr><th>height</th><th>round</th><th>shard</th><th>status</th>"
           "<th>winner</th><th>improvement (nats/token)</th><th>lower bound</th><th>reward</th>"
           "<th>candidates</th></tr>"]
    for x in reversed(rounds):
        if x.finalized_at is None:
            status = f"open ({x.phase})"
        else:
            status = "confirmed" if x.winner is not None else ("empty" if not x.sealed or x.sealed == "OK"
                                                               else f"empty ({x.sealed})")
        win = x.candidates.get(x.winner) if x.winner is not None else None
        imp, lcb = measured(win) if win else ("", "")
        out.append(f"<tr data-height='{x.height}' data-status='{_e(status)}'><td>{x.height}</td><td>{x.round}</td>"
                   f"<td>{'' if x.shard is None else x.shard}</td>"
                   f"<td class='{'confirmed' if win else 'muted'}'>{_e(status)}</td>"
                   f"<td>{_e(_name(st, win.miner)) if win else ''}</td><td>{imp}</td><td>{lcb}</td>"
                   f"<td>{win.reward if win else ''}</td><td>{len(x.candidates)}</td></tr>")
    out.append("</table><h2>Candidates and votes</h2><p class='muted'>improvement: mean over the round's windows of "
               "the per-window median paired difference L(prev) - L(next) of the counted full votes; valid when its "
               "lower confidence bound reaches delta. Votes: committed / revealed / outliers (slashed, not counted) "
               "/ unrevealed (fee forfeited); paid: verifier_reward each.</p><table id='candidates'><tr><th>round</th>"
               "<th>candidate</th><th>miner</th><th>status</th><th>reason</th><th>improvement</th><th>lower bound</th>"
               "<th>reward</th><th>votes</th><th>verdicts (verifier: verdict/tier/reason)</th></tr>")
    for x in reversed(rounds):
        for hh, c in x.candidates.items():
            vs = votes_summary(c)
            counts = (f"{len(vs['committed'])} committed, {len(vs['revealed'])} revealed, {len(vs['outliers'])} "
                      f"outlier, {len(vs['unrevealed'])} unrevealed, {len(vs['light'])} light, {len(vs['paid'])} paid")
            votes = "<br>".join(f"{_e(_name(st, k))}: {_e(v.body.verdict)}/{_e(v.body.tier)}/{_e(v.body.reason)}"
                                + (" <span class='outlier'>outlier</span>" if k in vs["outliers"] else "")
                                for k, v in c.votes.items())
            imp, lcb = measured(c)
            out.append(f"<tr><td>({x.height}, {x.round})</td><td><code>{_short(hh)}</code></td>"
                       f"<td>{_e(_name(st, c.miner))}</td><td class='{_e(c.status)}'>{_e(c.status)}</td>"
                       f"<td>{_e(c.reason)}</td><td>{imp}</td><td>{lcb}</td><td>{c.reward or ''}</td>"
                       f"<td>{_e(counts)}</td><td>{votes}</td></tr>")
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
