"""Steering a running live run from another terminal (issue 22): ``orchestrator pause``,
``resume-trading`` and ``stop [--close-all]`` through the run folder, and SIGUSR1, the
emergency stop. Through the CLI: ``orchestrator venue`` and ``orchestrator run`` (mode
live, real ccxt) each in its own process, and each steering command in its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from tests.test_crash_resume_live import ROOT, Watched, env, journal_state, orchestrator
from tests.test_live_accounts import Venue


def steer(*args: str, cwd: Path) -> tuple[int, str, str]:
    """One steering command, run as a user runs it; (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd, env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def live_config(workdir: Path, url: str, *, both: bool) -> None:
    text = (ROOT / "config.yaml").read_text().replace("mode: paper", "mode: live")
    if not both:
        text = text.replace("  - spot: ETH/USDT\n    perp: ETH/USDT:USDT\n", "")
    text += (
        f"\nlive:\n  url: {url}\n  poll_seconds: 0.5\n  request_timeout_ms: 1000\n"
        "  recv_window_ms: 1000\n  clock_skew_ms: 100\n  on_stop: leave\n"
    )
    (workdir / "config.yaml").write_text(
        text.replace("order_timeout_seconds: 10", "order_timeout_seconds: 3")
    )


def holding(workdir: Path, run: Watched, count: int) -> Path:
    """The run's folder once it holds ``count`` validated positions."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((workdir / "runs").glob("*"))
        if folders and journal_state(folders[-1])[0].count("validated") == count and run.trading:
            return folders[-1]
        time.sleep(0.05)
    run.process.kill()
    raise AssertionError("no position held:\n" + "".join(run.lines))


def flat(venue: Venue) -> bool:
    state = venue.admin("state")
    return all(Decimal(p["size"]) == 0 for p in state["positions"])


def test_pause_resume_and_stop_close_all_steer_a_running_run(tmp_path: Path) -> None:
    venue = Venue(tmp_path)
    try:
        live_config(tmp_path, venue.url, both=True)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = holding(tmp_path, run, 2)

        code, out, err = steer("pause", str(run_dir), "--pair", "BTCUSDT", cwd=tmp_path)
        assert code == 0, err
        assert "opens nothing more on BTCUSDT" in out
        code, out, _ = steer("pause", str(run_dir), "--pair", "DOGEUSDT", cwd=tmp_path)
        assert code == 2 and "no pair DOGEUSDT" in out, out
        code, out, err = steer("resume-trading", str(run_dir), cwd=tmp_path)
        assert code == 0 and "opens again on BTCUSDT" in out, (out, err)

        # on_stop is leave, but --close-all closes both positions, both legs each.
        code, out, err = steer("stop", str(run_dir), "--close-all", cwd=tmp_path)
        assert code == 0, err
        assert "stopping; closing BTCUSDT-0001, ETHUSDT-0001" in out, out
        code, err = run.finish(timeout=60)
        venue_flat = flat(venue)
        checks = venue.admin("state")["checks"]
    finally:
        venue.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert venue_flat
    assert checks == {"placed_twice": [], "live_overlaps": [], "oversold": {}}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 2}, err
    assert summary["ledger_balances"] is True
    assert "orchestrator stop --close-all" in err
    with Journal.read(run_dir) as view:
        said = [v for k, v in view.meta().items() if k.startswith("control ")]
    assert len(said) == 4, said  # each request journaled with when and who, refused too
    assert any("orchestrator pause --pair BTCUSDT (by " in line for line in said), said
    # The run is over: a request now is refused at once.
    code, _, err = steer("pause", str(run_dir), cwd=tmp_path)
    assert code == 2 and "the run is not running; it stopped and wrote its results" in err


def test_close_one_pair_and_set_thresholds_steer_a_running_run(tmp_path: Path) -> None:
    """``orchestrator close --pair``: that pair's legs closed on the venue, the other
    pair's kept, the pair opens nothing more until resume-trading; ``orchestrator set``:
    thresholds checked by the config's rules (a wrong one refused, nothing changed), a
    right one applied from the next decision and journaled."""
    venue = Venue(tmp_path)
    try:
        live_config(tmp_path, venue.url, both=True)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = holding(tmp_path, run, 2)

        code, out, err = steer("close", str(run_dir), "--pair", "BTCUSDT", cwd=tmp_path)
        assert code == 0, err
        assert out.startswith("closing BTCUSDT-0001; opens nothing more on BTCUSDT until"), out
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            held = {p["symbol"]: Decimal(p["size"]) for p in venue.admin("state")["positions"]}
            if not held.get("BTCUSDT"):
                break
            time.sleep(0.1)
        assert not held.get("BTCUSDT") and held.get("ETHUSDT"), held
        time.sleep(1.5)  # cycles pass: BTCUSDT is not opened again
        states = sorted(journal_state(run_dir)[0])
        assert states == ["closed", "validated"], states

        # Each wrong value is refused by the config's own rule, and nothing changes.
        for setting, said in (
            ("max_basis=5", "max_basis: must be at most 1"),
            ("exit_annualised=0.5", "is above entry_annualised"),
            ("funding_window=3", "a running run may change entry_annualised"),
            ("entry_annualised=lots", "strategy.entry_annualised: 'lots' is not a number"),
            ("min_hold_hours=1.5", "'1.5' is not a whole number of hours"),
        ):
            code, out, _ = steer("set", str(run_dir), setting, cwd=tmp_path)
            assert code == 2 and out.startswith("refused: ") and "nothing changed" in out, out
            assert said in out, out
        code, out, err = steer(
            "set", str(run_dir), "strategy.max_basis=0.0001", "exit_annualised=-1", cwd=tmp_path
        )
        assert code == 0, (out, err)
        assert "strategy.max_basis = 0.0001, strategy.exit_annualised = -1" in out, out
        # The recorded basis is wider than 0.01 %: ETHUSDT leaves at the next decision.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not flat(venue):
            time.sleep(0.1)
        assert flat(venue)
        run.process.send_signal(signal.SIGINT)
        code, err = run.finish(timeout=60)
    finally:
        venue.stop()
    assert code == 130, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 2}, summary["positions"]
    with Journal.read(run_dir) as view:
        said = [v for k, v in view.meta().items() if k.startswith("control ")]
    assert any("orchestrator close --pair BTCUSDT (by " in line for line in said), said
    assert any("orchestrator set max_basis=0.0001 exit_annualised=-1" in line for line in said)


def test_sigusr1_closes_every_position_and_exits_with_the_summary(tmp_path: Path) -> None:
    venue = Venue(tmp_path)
    try:
        live_config(tmp_path, venue.url, both=False)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = holding(tmp_path, run, 1)
        run.process.send_signal(signal.SIGUSR1)
        code, err = run.finish(timeout=60)
        venue_flat = flat(venue)
    finally:
        venue.stop()
    assert code == 128 + signal.SIGUSR1, err
    assert "Traceback" not in err
    assert venue_flat  # on_stop: leave, and yet closed
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}
    assert summary["ledger_balances"] is True


@pytest.mark.parametrize("case", ["paper run", "killed run", "not a run", "bad wait"])
def test_a_run_that_cannot_be_steered_is_said_at_once(tmp_path: Path, case: str) -> None:
    if case == "paper run":
        (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
        command = [sys.executable, "-m", "orchestrator", "run", "config.yaml"]
        subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, check=True)
        (run_dir,) = (tmp_path / "runs").glob("*")
        said = "a paper run cannot be steered"
    elif case == "killed run":
        venue = Venue(tmp_path)
        try:
            live_config(tmp_path, venue.url, both=False)
            run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
            run_dir = holding(tmp_path, run, 1)
            run.process.kill()
            run.finish(timeout=30)
        finally:
            venue.stop()
        said = f"orchestrator run --resume {run_dir}` carries it on"
    elif case == "not a run":
        run_dir = tmp_path
        said = "not a run folder"
    else:
        run_dir = tmp_path
        said = "is not from above 0 to 3600 seconds"
    extra = ["--wait", "nan"] if case == "bad wait" else []
    started = time.monotonic()
    code, out, err = steer("stop", str(run_dir), "--close-all", *extra, cwd=tmp_path)
    assert code == 2, (out, err)
    assert said in err, err
    assert "Traceback" not in err
    assert time.monotonic() - started < 20  # said at once, not after the wait
    assert not list(run_dir.glob("control/*.json"))  # nothing left for a later run to take


def test_a_resumed_run_keeps_the_pauses_and_the_thresholds_it_was_given(tmp_path: Path) -> None:
    """Closed by the operator (paused until resume-trading), a threshold set, then
    stopped: the resumed run says both, keeps BTCUSDT paused (it does not open it again
    at once) and decides with the threshold set; status shows the pair paused now.
    resume-trading lifts the pause as before."""
    venue = Venue(tmp_path)
    try:
        live_config(tmp_path, venue.url, both=False)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = holding(tmp_path, run, 1)
        code, out, err = steer("close", str(run_dir), "--pair", "BTCUSDT", cwd=tmp_path)
        assert code == 0, (out, err)
        code, out, err = steer("set", str(run_dir), "max_basis=0.02", cwd=tmp_path)
        assert code == 0, (out, err)
        code, out, err = steer("stop", str(run_dir), cwd=tmp_path)
        assert code == 0, (out, err)
        code, err = run.finish(timeout=60)
        assert code == 0, err

        resumed = Watched(orchestrator("run", "--resume", str(run_dir), cwd=tmp_path))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not resumed.trading:
            time.sleep(0.05)
        time.sleep(2)  # cycles in which it would have opened BTCUSDT again
        states, _ = journal_state(run_dir)
        code, shown, _ = steer("status", str(run_dir), cwd=tmp_path)
        code_json, shown_json, _ = steer("status", str(run_dir), "--json", cwd=tmp_path)
        code, out, err = steer("resume-trading", str(run_dir), cwd=tmp_path)
        assert code == 0 and "opens again on BTCUSDT" in out, (out, err)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and journal_state(run_dir)[0].count("validated") < 1:
            time.sleep(0.05)
        reopened = journal_state(run_dir)[0]
        code, out, err = steer("stop", str(run_dir), cwd=tmp_path)
        code, err = resumed.finish(timeout=60)
    finally:
        venue.stop()
    assert code == 0, err
    assert states == ["closed"], (states, err)  # still paused: not opened again
    assert "resume: BTCUSDT stays paused: paused by the operator" in err, err
    assert "resume: as set while it ran: from the next decision: strategy.max_basis = 0.02" in err
    assert "paused now" in shown and "BTCUSDT: paused by the operator" in shown, shown
    assert code_json == 0 and "BTCUSDT" in json.loads(shown_json)["paused_now"]
    assert reopened == ["closed", "validated"], reopened  # resume-trading: it opens again
