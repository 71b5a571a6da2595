"""A perp leg the venue fills late is waited for until the open's deadline
(``trading.order_timeout_seconds``), not cancelled after the first few reads. Through the
CLI: ``orchestrator venue`` (its first perp open works ``hold_ms`` before it fills) and
``orchestrator run`` (mode live, real ccxt, ``on_stop: leave``), each in its own process."""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from pathlib import Path

from orchestrator.journal import Journal
from tests.test_crash_resume_live import (
    VenueProcess,
    Watched,
    journal_state,
    orchestrator,
    write_config,
)

TIMEOUT_S = 4  # trading.order_timeout_seconds


def slow_perp_open(workdir: Path, hold_ms: int) -> tuple[VenueProcess, Watched]:
    """A run whose first perp open works ``hold_ms`` on the venue before it fills."""
    rule = {"kind": "fill_late", "category": "linear", "link_id": "*-po1", "hold_ms": hold_ms}
    venue = VenueProcess(workdir, [rule], "100000")
    write_config(workdir, venue.url, on_stop="leave")
    config = workdir / "config.yaml"
    config.write_text(
        config.read_text().replace(
            "order_timeout_seconds: 2", f"order_timeout_seconds: {TIMEOUT_S}"
        )
    )
    return venue, Watched(orchestrator("run", "config.yaml", cwd=workdir))


def arrivals(venue: VenueProcess) -> dict[str, int]:
    """When each order create first reached the venue (ns), by the end of its client
    order id: the first position's (a later open, after a rollback, repeats the ends)."""
    found: dict[str, int] = {}
    for c in venue.admin("requests")["creates"]:
        found.setdefault(str(c["order_link_id"]).rsplit("-", 1)[-1], int(c["arrival_ns"]))
    return found


def wait_for(run: Watched, venue: VenueProcess, leg: str) -> None:
    deadline = time.monotonic() + 60
    while leg not in arrivals(venue):
        assert run.process.poll() is None and time.monotonic() < deadline, "".join(run.lines)
        time.sleep(0.05)


def test_a_perp_leg_filling_within_the_deadline_is_waited_for_and_a_stop_lets_it_finish(
    tmp_path: Path,
) -> None:
    """It works 3 s of the 4 s deadline; SIGTERM comes meanwhile: the open is finished
    (stopping-and-resuming.md), left open and hedged, never rolled back."""
    venue, run = slow_perp_open(tmp_path, hold_ms=3000)
    try:
        wait_for(run, venue, "po1")
        time.sleep(0.5)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        sent = arrivals(venue)
        held = venue.admin("state")["positions"]
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    assert sorted(sent) == ["po1", "so1"], sent  # no rollback, no second open
    assert [(p["side"], p["size"]) for p in held] == [("Sell", "0.452")]
    (run_dir,) = (tmp_path / "runs").glob("*")
    assert journal_state(run_dir) == (["validated"], 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"validated": 1}
    # Left open and hedged by the stop, as asked: said so, not as a position with no reason.
    assert "strategy: position BTCUSDT-0001 left open and hedged (validated)" in summary["alerts"]
    assert summary["ledger_balances"] is True


def test_a_perp_leg_still_working_at_the_deadline_is_cancelled_then_and_rolled_back(
    tmp_path: Path,
) -> None:
    venue, run = slow_perp_open(tmp_path, hold_ms=8000)
    try:
        wait_for(run, venue, "sr1")  # the spot leg sold back
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        sent = arrivals(venue)
        held = venue.admin("state")["positions"]
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    waited = (sent["sr1"] - sent["po1"]) / 1e9
    # Cancelled once the deadline came, not after the first reads of its fill.
    assert TIMEOUT_S - 0.5 <= waited < TIMEOUT_S + 2, waited
    assert all(Decimal(p["size"]) == 0 for p in held), held
    (run_dir,) = (tmp_path / "runs").glob("*")
    with Journal.read(run_dir) as view:
        first = view.positions()[0]
    assert first.state == "rolled_back"
    assert f"legs not done within {TIMEOUT_S:.1f} s" in (first.reason or ""), first.reason
