"""The node's read-only explorer page at ``/``: rounds (with their sealed shard and outcome), governance epochs,
candidates with the chain's measurement (median improvement and its lower confidence bound), votes
(committed, revealed, outlier) and verifier pay, stakes, and the verified loss by height as an inline SVG
plot with a marker at each dataset switch. Server-rendered from Jinja2 templates (package data in
``templates/``, autoescaped: every value a record carries is escaped), no script, no build step.

Two steps, so that a page view never holds the chain lock for longer than a copy of a few small things:
``snapshot`` (under the lock) keeps references to the closed rounds, which the rules never change again
(``state.py``: a finalized round only moves to ``history``), and copies what can still change (the open
round, stakes, participants, the latest stake events); ``render_snapshot`` (no lock, in a worker thread)
does everything else, the history-long work included: the loss plot, the epochs' first rounds, a page of
rounds and their candidates."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cache

import jinja2

from pogo_jax.chain.state import SEALED_OK, Candidate, ChainState, Round, StakeEvent
from pogo_jax.spec.records import DataRef, Epoch, Genesis, Participant
from pogo_jax.spec.units import shard_bits_per_byte

PAGE_ROUNDS = 50  # rounds (and their candidates) on one page
REFRESH_S = 5  # the page reloads itself this often unless ?refresh=0
EVENTS_SHOWN = 50
MAX_DOTS = 200  # the plot marks (with a hover title) only the latest blocks; its line has them all


@cache
def _env() -> jinja2.Environment:
    # PackageLoader reads pogo_jax/chain/templates from the installed package (pyproject package-data)
    return jinja2.Environment(loader=jinja2.PackageLoader("pogo_jax.chain", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


# ------------------------------------------------------------------------------------------------ the snapshot
@dataclass(frozen=True)
class Snapshot:
    """What a page needs, taken under the chain lock; nothing in it changes afterwards."""

    genesis: Genesis
    seq: int
    head: bytes  # hash of the last log entry: what a participant's WORK/witness/head.json must be a prefix of
    tip_height: int
    budget_left: int
    shards_used: int  # of the open round's dataset
    history: tuple[Round, ...]  # closed rounds: never changed again by the rules
    open_round: Round  # a copy
    epochs: tuple[Epoch, ...]
    pending_epochs: int
    participants: dict[bytes, Participant]
    stakes: dict[bytes, int]
    events: tuple[StakeEvent, ...]  # the latest EVENTS_SHOWN


def _copy_round(r: Round) -> Round:
    """A copy of the open round that later entries cannot change (the signed records in it are immutable)."""
    out = copy.copy(r)
    out.candidates = {h: _copy_candidate(c) for h, c in r.candidates.items()}
    out.loss_prev = dict(r.loss_prev)
    return out


def _copy_candidate(c: Candidate) -> Candidate:
    out = copy.copy(c)
    out.votes, out.commits = dict(c.votes), dict(c.commits)
    return out


def snapshot(st: ChainState) -> Snapshot:
    """Call with the chain lock held. Costs the open round, the participants and the latest stake events
    (and a copy of the list of closed rounds: one pointer each), whatever the chain's length."""
    r = st.round
    return Snapshot(st.genesis, st.seq, st.last_hash, st.tip_height, st.budget_left,
                    st.shards_used.get(r.data.manifest_hash, 0),
                    tuple(st.history), _copy_round(r), tuple(st.epochs), len(st.pending_epochs),
                    dict(st.participants), dict(st.stakes), tuple(st.events[-EVENTS_SHOWN:]))


# ------------------------------------------------------------------------------------------- one vocabulary
def round_outcome(r: Round) -> str:
    """A round's outcome in the words the whole page uses for it, from what the log recorded: ``open:
    PHASE`` until it is finalized; then ``confirmed`` (a block), ``void: REASON`` (its sealed shard could not
    be used: nobody judged), ``no candidates``, ``undecided`` (a candidate had too few or disputed full votes,
    which leaves the round without a block), or ``no valid block`` (every candidate judged and none valid)."""
    if r.finalized_at is None:
        return f"open: {r.phase}"
    if r.winner is not None:
        return "confirmed"
    if r.sealed not in (None, SEALED_OK):
        return f"void: {r.sealed}"
    if not r.candidates:
        return "no candidates"
    if any(c.status == "undecided" for c in r.candidates.values()):
        return "undecided"
    return "no valid block"


def outcome_class(outcome: str) -> str:
    """The CSS class of an outcome (or a candidate status): its first word."""
    return outcome.split(":")[0].replace(" ", "-")


# -------------------------------------------------------------------------------------------- shared helpers
def _short(b: bytes | None) -> str:
    return "" if b is None else b.hex()[:12]


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


def dataset_label(d: DataRef) -> str:
    """How the page names a dataset: its manifest's source (free text chosen by whoever packed it; escaped
    like every value) and the start of its manifest hash."""
    return f"{d.manifest.get('source', '?')} ({_short(d.manifest_hash)})"


# ------------------------------------------------------------------------------------------------ epochs
@dataclass(frozen=True)
class EpochView:
    epoch: int  # 0: the genesis dataset
    dataset: str
    sealed: int
    new_state: bool
    first_round: tuple[int, int] | None  # the first round judged on it; None: not (yet) in effect
    rounds: int  # rounds judged on it


def epoch_of(s: Snapshot, r: Round) -> int | None:
    """The epoch whose dataset judges ``r`` (0: the genesis dataset). A round's dataset is the object its
    epoch record carried (state.py assigns it), so it is matched by identity: two epochs re-adding the same
    file are still two epochs."""
    if r.data is s.genesis.data:
        return 0
    return next((ep.epoch for ep in reversed(s.epochs) if ep.data is r.data), None)


def epochs_view(s: Snapshot) -> list[EpochView]:
    """Each dataset the chain was judged on, in order, with the first round it judged and how many rounds."""
    first: dict[int, tuple[int, int]] = {}
    count: dict[int, int] = {}
    for r in (*s.history, s.open_round):
        n = epoch_of(s, r)
        first.setdefault(n, (r.height, r.round))
        count[n] = count.get(n, 0) + 1
    sources = [(0, s.genesis.data, False), *((ep.epoch, ep.data, ep.state is not None) for ep in s.epochs)]
    return [EpochView(n, dataset_label(d), d.sealed.n if d.sealed else 0, new, first.get(n), count.get(n, 0))
            for n, d, new in sources]


# ----------------------------------------------------------------------------------------------- the chart
def loss_chart(points: list[tuple[int, float, float]], markers: list[tuple[int, str]], width: int = 640,
               height: int = 240) -> dict | None:
    """Geometry of the verified-loss plot: ``points`` (height, L(prev), L(next)) of the confirmed blocks, and
    ``markers`` (height, label) where a new dataset starts judging (drawn at height - 1: the L(prev) of
    that block is the first loss on the new data). Markup is in templates/chart.svg.j2."""
    if not points:
        return None
    pad, left = 40, 72
    hs = [p[0] for p in points]
    ys = [v for p in points for v in p[1:]]
    x0, x1 = min(hs) - 1, max(hs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-6:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(h: float) -> float:
        return round(left + (h - x0) / max(x1 - x0, 1) * (width - left - pad), 1)

    def sy(v: float) -> float:
        return round(height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad), 1)

    path = " ".join(f"L{sx(h - 1)},{sy(a)} L{sx(h)},{sy(b)}" for h, a, b in points)
    n_ticks = max(1, math.ceil(len(hs) / 16))  # at most about 16 height labels, the origin always labelled
    ticks = sorted({x0, *hs[::-1][::n_ticks]})
    return {"width": width, "height": height, "left": left, "top": pad, "plot_w": width - left - pad,
            "plot_h": height - 2 * pad, "path": "M" + path[1:],
            "dots": [{"x": sx(h), "y": sy(b), "title": f"height {h}: {a:.4f} -> {b:.4f}"}
                     for h, a, b in points[-MAX_DOTS:]],
            "xticks": [{"x": sx(h), "label": h} for h in ticks],
            "yticks": [{"y": sy(v), "label": f"{v:.3f}"} for v in (y0, (y0 + y1) / 2, y1)],
            "markers": [{"x": sx(h - 1), "label": label} for h, label in markers if x0 <= h - 1 <= x1],
            "x_label_x": (left + width - pad) / 2, "y_label_y": height / 2}


# ----------------------------------------------------------------------------------------------- the page
def _rounds_page(rounds: list[Round], page: int) -> tuple[list[Round], int, int]:
    """The newest-first page ``page`` (1-based, clamped) of ``rounds`` (oldest first): (rows, page, pages)."""
    pages = max(1, math.ceil(len(rounds) / PAGE_ROUNDS))
    page = min(max(page, 1), pages)
    end = len(rounds) - (page - 1) * PAGE_ROUNDS
    return list(reversed(rounds[max(0, end - PAGE_ROUNDS):end])), page, pages


def _page_links(page: int, pages: int) -> list[int]:
    """First, last, and the pages near ``page``."""
    return sorted({1, pages, *(p for p in range(page - 2, page + 3) if 1 <= p <= pages)})


def render_snapshot(s: Snapshot, page: int = 1, refresh: bool = True) -> str:
    """The page from a snapshot: no chain lock needed (run it in a worker thread)."""
    names = {k: p.name for k, p in s.participants.items()}

    def name(k: bytes) -> str:
        return names.get(k, _short(k))

    r = s.open_round
    every = [*s.history, r]
    epochs = epochs_view(s)
    starts = [(e.first_round[0], f"epoch {e.epoch}: {e.dataset}") for e in epochs if e.epoch and e.first_round]
    points = [(x.height, *lv) for x in s.history if (lv := _verified_losses(x)) is not None]
    shown, page, pages = _rounds_page(every, page)
    rows = []
    for x in shown:
        outcome = round_outcome(x)
        win = x.candidates.get(x.winner) if x.winner is not None else None
        imp, lcb = measured(win) if win else ("", "")
        lv = _verified_losses(x)
        rows.append({"height": x.height, "round": x.round, "shard": "" if x.shard is None else x.shard,
                     "epoch": epoch_of(s, x), "dataset": dataset_label(x.data), "outcome": outcome,
                     "cls": outcome_class(outcome),
                     "winner": name(win.miner) if win else "", "improvement": imp, "lcb": lcb,
                     "loss": "" if lv is None else f"{lv[0]:.4f} -> {lv[1]:.4f}",
                     # beside the loss in nats/token: bits per byte of the shard's text (comparable across tokenizers)
                     "bits_per_byte": "" if lv is None or x.shard is None else
                     f"{shard_bits_per_byte(x.data.manifest, x.shard, lv[0]):.4f} -> "
                     f"{shard_bits_per_byte(x.data.manifest, x.shard, lv[1]):.4f}",
                     "reward": win.reward if win else "", "n_candidates": len(x.candidates),
                     "candidates": [_candidate_row(c, name) for c in x.candidates.values()]})
    sealed = r.data.sealed.n if r.data.sealed else 0
    return _env().get_template("explorer.html").render(
        g=s.genesis, chain_short=s.genesis.chain_id[:12], node_short=_short(s.genesis.node_key), seq=s.seq,
        tip=s.tip_height, head=s.head.hex(), open_round=r, open_outcome=round_outcome(r), shards_used=s.shards_used,
        shards=sealed,
        waiting=r.phase == "waiting", budget_left=s.budget_left, pending_epochs=s.pending_epochs,
        chart=loss_chart(points, starts), epochs=epochs, rounds=rows, page=page, pages=pages,
        page_links=_page_links(page, pages), n_rounds=len(every), per_page=PAGE_ROUNDS,
        show_bpb=any(x["bits_per_byte"] for x in rows), refresh=REFRESH_S if refresh else None,
        stakes=[{"name": p.name, "role": p.role, "key": _short(k), "stake": s.stakes[k]}
                for k, p in s.participants.items()],
        events=[{"seq": e.seq, "who": name(e.key), "delta": f"{e.delta:+d}", "why": e.reason,
                 "round": "" if e.height is None else f"({e.height}, {e.round})"} for e in reversed(s.events)])


def _candidate_row(c: Candidate, name) -> dict:  # noqa: ANN001 - key -> display name
    vs = votes_summary(c)
    imp, lcb = measured(c)
    counts = (f"{len(vs['committed'])} committed, {len(vs['revealed'])} revealed, {len(vs['outliers'])} outlier, "
              f"{len(vs['unrevealed'])} unrevealed, {len(vs['light'])} light, {len(vs['paid'])} paid")
    return {"hash": _short(c.hash), "miner": name(c.miner), "status": c.status, "cls": outcome_class(c.status),
            "reason": c.reason, "improvement": imp, "lcb": lcb, "reward": c.reward or "", "counts": counts,
            "votes": [{"who": name(k), "verdict": v.body.verdict, "tier": v.body.tier, "reason": v.body.reason,
                       "outlier": k in vs["outliers"]} for k, v in c.votes.items()]}


def render(chain, page: int = 1, refresh: bool = True) -> str:  # noqa: ANN001 - a Chain
    """The page of ``chain``: a snapshot under its lock, then the rendering without it."""
    with chain.lock:
        s = snapshot(chain.state)
    return render_snapshot(s, page, refresh)
