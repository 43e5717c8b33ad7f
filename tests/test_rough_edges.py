"""The rough edges a new user hit (issue 22), each from a fresh clone's point of view: a chain that could
never confirm a block, a miner that retried in a tight loop, a bundle only curl could fetch, the README's
verify line rejected, tracebacks and wrong exit codes on plain mistakes, help text cut mid-sentence,
benchmark runs that overwrote committed results, training progress lost in logs, SIGTERM not stopping
cleanly."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from chainkit import Kit
from nodekit import serve

from pogo_jax.cli import COMMANDS, build_parser, main, summary
from pogo_jax.roles.miner import AbstainBackoff, mine_rounds, wait_for_round_change
from pogo_jax.spec.keys import generate_key, public_bytes, save_private_pem
from pogo_jax.spec.rules import ChainRules
from pogo_jax.train.progress import TrainProgress, plot_metrics

REPO = Path(__file__).resolve().parent.parent


def one_line_error(capsys, argv: list[str], needle: str, code: int = 2) -> str:
    capsys.readouterr()
    assert main(argv) == code, argv
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert needle in err, err
    return err


# ---------------------------------------------------------------------------- 1. pogo init and min_full
@pytest.mark.parametrize("n_verifiers,sets", [(0, []), (1, []), (2, ["--set", "chain.min_full=3"])])
def test_init_refuses_a_chain_that_could_never_confirm_a_block(tmp_path, capsys, n_verifiers, sets) -> None:
    """Fewer registered verifiers than min_full: every round would end undecided TOO_FEW_FULL. Refused before
    anything is written (or the beacon is even asked)."""
    gov = tmp_path / "gov.pem"
    save_private_pem(generate_key(), gov)
    vs = [a for _ in range(n_verifiers) for a in ("--verifier", public_bytes(generate_key()).hex())]
    err = one_line_error(capsys, ["init", "--dir", str(tmp_path / "chain"), "--config", "tiny", "--beacon",
                                  "http://127.0.0.1:9", "--governance-key", str(gov), "--miner",
                                  public_bytes(generate_key()).hex(), *vs, *sets], "chain.min_full")
    assert f"{n_verifiers} verifier(s)" in err
    assert not (tmp_path / "chain").exists()


# ---------------------------------------------------------------------------- 2. the miner's backoff
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class FakeView:
    """A round that stays open until ``change_at`` (fake seconds), then the next one."""

    def __init__(self, clock: FakeClock, change_at: float = float("inf")) -> None:
        self.clock, self.change_at = clock, change_at
        self.state = argparse.Namespace(rules=ChainRules(name="t", submit_window_ms=2000, prove_window_ms=3000,
                                                         attest_window_ms=4000, reveal_window_ms=1000),
                                        round=argparse.Namespace(height=8, round=1))
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1
        if self.clock.now >= self.change_at:
            self.state.round = argparse.Namespace(height=9, round=1)


class FakeMiner:
    """Abstains ``abstain`` times, then takes part."""

    def __init__(self, view: FakeView, abstain: int) -> None:
        from pogo_jax.config import load_config

        self.view, self.left, self.calls = view, abstain, []
        self.cfg = load_config("tiny")

    def mine_round(self, timeout: float, on_step=None) -> dict:  # noqa: ANN001
        self.calls.append(self.view.clock.now)
        r = self.view.state.round
        if self.left:
            self.left -= 1
            return {"height": r.height, "round": r.round, "header_hash": None, "status": "abstained",
                    "reason": "SELF_CHECK", "detail": "3 block(s) of 20 steps fell short", "train_losses": []}
        return {"height": r.height, "round": r.round, "header_hash": "ab" * 32, "status": "confirmed", "reason": "",
                "reward": 3, "train_losses": [1.0]}


def test_backoff_doubles_up_to_a_round_and_resets() -> None:
    b = AbstainBackoff(cap_s=10.0, first_s=1.0)
    assert [b.abstained() for _ in range(7)] == [1, 2, 4, 8, 10, 10, 10]
    assert [n for n in range(1, 20) if _line_at(n)] == [1, 2, 4, 8, 16]
    assert b.reset() == 7 and b.streak == 0 and b.abstained() == 1


def _line_at(n: int) -> bool:
    b = AbstainBackoff(cap_s=1.0, streak=n - 1)
    b.abstained()
    return b.worth_a_line()


def test_a_stuck_miner_backs_off_counts_and_hints_once() -> None:
    """The issue's log: 63 abstentions a minute at height 8. With the backoff the same minute holds a handful of
    tries, the hint is said once and the JSON lines come at the 1st, 2nd, 4th... abstention only."""
    clock = FakeClock()
    view = FakeView(clock)
    miner = FakeMiner(view, abstain=40)
    lines: list[str] = []
    mine_rounds(miner, 41, 60.0, say=lines.append, clock=clock, sleep=clock.sleep)
    tries = miner.calls
    assert [t for t in tries if t < 60] == [0, 1, 3, 7, 15, 25, 35, 45, 55]  # 9 tries in the minute, not 63
    gaps = np.diff(tries)
    assert list(gaps[:5]) == [1, 2, 4, 8, 10] and max(gaps) == 10  # the round's length: 2 + 3 + 4 + 1 s
    hints = [x for x in lines if x.startswith("hint:")]
    assert len(hints) == 1 and "miner.max_tries=6" in hints[0] and "optim.lr=" in hints[0] and "delta" in hints[0]
    outs = [json.loads(x) for x in lines if x.startswith("{")]
    assert [o["abstentions_in_a_row"] for o in outs if o["status"] == "abstained"] == [1, 2, 4, 8, 16, 32]
    assert outs[-1]["status"] == "confirmed" and outs[-1]["abstained_before"] == 40
    assert all("train_losses" not in o for o in outs)


def test_the_backoff_ends_when_the_next_round_opens() -> None:
    clock = FakeClock()
    view = FakeView(clock, change_at=2.5)
    miner = FakeMiner(view, abstain=3)
    mine_rounds(miner, 4, 60.0, say=lambda s: None, clock=clock, sleep=clock.sleep)
    # waited 1 s, then 2 s cut short at 2.5 s by the new round (tried at once), then 4 s in that round
    assert miner.calls == [0.0, 1.0, 2.5, 6.5]
    t = clock.now
    assert wait_for_round_change(view, (8, 1), 5.0, clock, clock.sleep) and clock.now == t + 0.5  # at the 1st poll
    assert not wait_for_round_change(view, (9, 1), 3.0, clock, clock.sleep) and clock.now == t + 3.5


def test_rounds_limit_does_not_wait_after_the_last() -> None:
    clock = FakeClock()
    miner = FakeMiner(FakeView(clock), abstain=5)
    assert mine_rounds(miner, 1, 60.0, say=lambda s: None, clock=clock, sleep=clock.sleep) == 1
    assert clock.now == 0.0


# ---------------------------------------------------------------------------- 3. pogo fetch
def test_fetch_bundle_and_update_by_hash_then_verify(tmp_path, capsys, monkeypatch) -> None:
    kit = Kit(tmp_path / "chain")
    made = [kit.make(0), kit.make(1)]
    kit.run_round(made)
    r = kit.st.history[0]
    assert r.winner is not None
    win = r.candidates[r.winner]
    other = next(c for c in r.candidates.values() if c.hash != r.winner)
    monkeypatch.chdir(tmp_path)
    with serve(kit.chain) as url:
        capsys.readouterr()
        assert main(["fetch", "bundle", "--node", url, "1"]) == 0  # the confirmed block, default name
        out = capsys.readouterr().out
        f = tmp_path / f"bundle-1-1-{win.hash.hex()[:8]}.pogo"
        assert f.read_bytes() == kit.chain.fetch(win.bundle_sha256) and str(f.name) in out and "pogo verify" in out
        assert main(["verify", str(f), "--node", url]) == 0  # as the chain demands
        assert main(["verify", str(f)]) == 0  # offline: k from the bundle, and said so
        assert "k (k = the bundle's 8 openings" in capsys.readouterr().out
        n = 1 + list(r.candidates).index(other.hash)
        g = tmp_path / "other.pogo"
        assert main(["fetch", "bundle", "--node", url, "1", "--round", "1", "--candidate", str(n), "--out", str(g)]) == 0
        assert g.read_bytes() == kit.chain.fetch(other.bundle_sha256)
        u = tmp_path / "u.qupd"
        assert main(["fetch", "update", "--node", url, "1", "--candidate", other.hash.hex()[:10], "--out", str(u)]) == 0
        mine = next(m for m in made if m.hash == other.hash)
        assert u.read_bytes() == kit.chain.fetch(other.update_sha256) == mine.update
        before = g.read_bytes()
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "1", "--out", str(g)], "exists with other content")
        assert g.read_bytes() == before  # never overwritten
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "1", "--candidate", "3"], "has 2 candidate(s)")
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "1", "--candidate", "zz"], "neither a number")
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "2"], "no candidate was recorded at height 2")
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "7"], "no round at height 7")
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "0"], "HEIGHT is a block height")
        # a node serving other bytes under the recorded hash is refused, and nothing is written
        blob = kit.chain.blobs.path(win.bundle_sha256)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 1
        os.chmod(blob, 0o644)
        blob.write_bytes(bytes(data))
        bad = tmp_path / "bad.pogo"
        one_line_error(capsys, ["fetch", "bundle", "--node", url, "1", "--out", str(bad)], "does not hash to its name")
        assert not bad.exists()


# ---------------------------------------------------------------------------- 4. pogo verify as the README says
def test_readme_verify_line_accepts_the_example() -> None:
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("pogo verify docs/examples/"))
    argv = line.split("#")[0].split()[1:]
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", *argv], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("ACCEPT block 1 round 1"), p.stdout + p.stderr
    assert "k (k = the bundle's 4 openings" in p.stdout
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", *argv, "--k", "6"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)  # a k the bundle did not answer: rejected, with what to check
    assert p.returncode == 1 and "REJECT WRONG_CHALLENGE" in p.stderr and "the bundle opens 4" in p.stderr


# ---------------------------------------------------------------------------- 5. plain mistakes: one line, exit 2
def test_plain_mistakes_are_one_line_exit_2(tmp_path, capsys) -> None:
    one_line_error(capsys, ["sync", "--node", "http://127.0.0.1:9", "--to", "-1", "--out", str(tmp_path / "s.npz")],
                   "--to is a height")
    one_line_error(capsys, ["sync", "--node", "http://127.0.0.1:9", "--out", str(tmp_path)], "is a directory")
    one_line_error(capsys, ["verify", str(tmp_path)], "is a directory")
    demo = tmp_path / "demo"
    (demo / "node").mkdir(parents=True)
    (demo / "node" / "ledger.sqlite").write_bytes(b"")
    one_line_error(capsys, ["audit", str(demo)], f"try {demo / 'node'}")
    err = one_line_error(capsys, ["audit", str(tmp_path)], "no ledger.sqlite")
    assert "try" not in err


# ---------------------------------------------------------------------------- 6. pogo --help
def test_help_summaries_are_whole_sentences_and_every_option_says_something(capsys) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in COMMANDS:
        p = sub.choices[name]
        helps = [a.help for a in sub._choices_actions if a.dest == name]
        assert helps and helps[0].endswith((".", ")")) and "`" not in helps[0], (name, helps)
        assert "``" not in (p.description or ""), name
        for a in p._actions:
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction):
                assert a.help, (name, a.option_strings or a.dest)
    assert summary("Do a thing: ``x``, e.g. this.\nMore text.\n\nNext para.") == "Do a thing: x, e.g."  # the rule
    init = sub.choices["init"]
    assert "repeatable" in next(a.help for a in init._actions if "--verifier" in a.option_strings)


# ---------------------------------------------------------------------------- 7. results go to runs/ by default
def test_bench_and_costs_write_into_runs_by_default() -> None:
    parser = build_parser()
    for cmd in ("bench", "costs"):
        args = parser.parse_args([cmd])
        assert args.out.parts[0] == "runs" and "benchmarks" not in str(args.out), (cmd, args.out)
    script = (REPO / "scripts" / "device_suite.sh").read_text()
    assert 'OUT="${OUT:-runs/' in script
    assert "/runs/" in (REPO / ".gitignore").read_text().splitlines()


# ---------------------------------------------------------------------------- 8. progress without a terminal
def test_progress_prints_plain_lines_off_a_terminal(tmp_path) -> None:
    stream, t = io.StringIO(), [100.0]
    with TrainProgress(60, 20, every=10, stream=stream, tty=False, clock=lambda: t[0]) as bar:
        for step in range(21, 61):
            t[0] += 0.5
            bar.update(step, f"loss {1 / step:.3f}" if step % 5 == 0 else None)
    lines = stream.getvalue().splitlines()
    assert [x.split()[2] for x in lines] == ["30/60", "40/60", "50/60", "60/60"]
    assert lines[0] == "train: step 30/60 (50%) loss 0.033, 5 s, about 15 s left" and "left" not in lines[-1]
    quiet = io.StringIO()
    with TrainProgress(10, 0, enabled=False, every=1, stream=quiet, tty=False) as bar:
        bar.update(5, "x")
    assert quiet.getvalue() == ""
    m = tmp_path / "metrics.jsonl"
    m.write_text('{"step": 5, "loss": 2.0}\n{"step": 10, "eval_loss": 1.5}\n{"step": 1')  # a line cut by a kill
    assert plot_metrics(m, tmp_path / "loss.png", "t").stat().st_size > 1000


# ---------------------------------------------------------------------------- 9. SIGTERM = Ctrl-C
@pytest.mark.timeout(300)
def test_sigterm_stops_pogo_train_like_ctrl_c_and_it_resumes(tmp_path) -> None:
    """SIGTERM during training (after its first checkpoint): exit 130 with one line, the checkpoints and the
    loss curve so far are kept, and the next run resumes from the last checkpoint and says so."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "pogo_jax.cli", "train", "--config", "tiny", "--out", str(out), "--set",
            "train.checkpoint_every=5", "--set", "train.eval_every=5", "--steps", "100000"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.monotonic() + 200
        while not (out / "loss.png").is_file():  # the first checkpoint writes the curve too
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < end, "no checkpoint in 200 s"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode in (130, 143), (p.returncode, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: what was written is kept"), err
    steps = sorted(int(d.name) for d in (out / "checkpoints").iterdir() if d.name.isdigit())
    assert steps and steps[0] >= 5, steps
    r = subprocess.run([*argv[:-1], str(steps[-1] + 5)], capture_output=True, text=True, env=env, timeout=200)
    assert r.returncode == 0, r.stderr
    assert f"resuming from step {steps[-1]} of {steps[-1] + 5}" in r.stderr
    assert f"done: step {steps[-1] + 5} (resumed from step {steps[-1]})" in r.stdout


def test_sigterm_stops_a_server_like_ctrl_c(tmp_path) -> None:
    """uvicorn takes SIGTERM for its graceful shutdown, then raises it again: the CLI's handler makes it Ctrl-C's
    exit (130, one line) instead of a silent 0 or a kill."""
    from nodekit import Child

    beacon = Child("beacon", "serve", "--dir", str(tmp_path / "beacon"), "--port", "0")
    try:
        beacon.wait_url()
        os.killpg(beacon.p.pid, signal.SIGTERM)
        assert beacon.p.wait(30) == 130
        time.sleep(0.2)  # the reader thread drains stderr
        assert beacon.lines[-1].startswith("interrupted: what was written is kept"), beacon.lines
        assert not any("Traceback" in x for x in beacon.lines)
    finally:
        beacon.stop()
