"""A live run meeting the venue's errors on its reads, through the CLI: ``orchestrator
venue`` (faults installed mid-run through /admin/faults) and ``orchestrator run`` (mode
live, real ccxt), each in its own process.

Bybit's passing troubles (10016 "System error. Please try again later", 10006 rate
limit, 10002 timestamp, HTTP 5xx) are waited out as a lost network is: positions left as
they are, nothing opened, said once, read again. A key the venue refuses mid-run (10003,
10005: revoked, a permission withdrawn) stops the run cleanly, exit 5, the cause said,
the positions left open on the venue, the journal marked stopped: ``--resume`` carries
it on."""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.journal import Journal
from tests.test_crash_resume_live import (
    VenueProcess,
    Watched,
    journal_state,
    orchestrator,
    write_config,
)

SETTLEMENT_MS = 1704441600000  # 2024-01-05 08:00 UTC: the venue's next settlement
SYSTEM_ERROR = {"kind": "reject", "error": "system_error"}


def holding(workdir: Path, venue: VenueProcess) -> tuple[Watched, Path]:
    """A run (``on_stop: leave``) once it holds its position."""
    write_config(workdir, venue.url, on_stop="leave")
    run = Watched(orchestrator("run", "config.yaml", cwd=workdir))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((workdir / "runs").glob("*"))
        if folders and journal_state(folders[-1])[0] == ["validated"] and run.trading:
            return run, folders[-1]
        time.sleep(0.05)
    run.process.kill()
    raise AssertionError("no position held:\n" + "".join(run.lines))


def fired(venue: VenueProcess, run: Watched, timeout: float = 20) -> None:
    """Until every rule in force has fired as often as it may, the run still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.process.poll() is None:
        rules = venue.admin("faults")["rules"]
        if all(r["exhausted"] for r in rules):
            return
        time.sleep(0.05)
    raise AssertionError("the faults did not fire while it ran:\n" + "".join(run.lines))


def said(run: Watched, words: str, *, since: int = 0, timeout: float = 30) -> None:
    """Until the run says ``words`` in a line after its first ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.process.poll() is None:
        if any(words in line for line in run.lines[since:]):
            return
        time.sleep(0.05)
    raise AssertionError(f"never said {words!r}:\n" + "".join(run.lines))


def perp_short(venue: VenueProcess) -> Decimal:
    held = venue.admin("state")["positions"]
    return sum((Decimal(p["size"]) for p in held if p["side"] == "Sell"), Decimal(0))


def test_passing_venue_errors_on_reads_are_waited_out_not_a_crash(tmp_path: Path) -> None:
    venue = VenueProcess(tmp_path, [], "100000")
    try:
        run, run_dir = holding(tmp_path, venue)
        short, creates = perp_short(venue), len(venue.admin("requests")["creates"])
        # Each of the cycle's reads answered once with an error Bybit means as passing.
        once: list[dict[str, Any]] = [
            {**SYSTEM_ERROR, "endpoint": "market/time"},
            {**SYSTEM_ERROR, "endpoint": "market/tickers"},
            {**SYSTEM_ERROR, "endpoint": "account/wallet-balance"},
            {**SYSTEM_ERROR, "endpoint": "position/list"},
            {"kind": "reject", "endpoint": "account/wallet-balance", "error": "rate_limit"},
            {"kind": "reject", "endpoint": "position/list", "ret_code": 10002,
             "ret_msg": "invalid request, please check your server timestamp or recv_window param"},
            {"kind": "http", "endpoint": "market/tickers", "status": 503},
        ]  # fmt: skip
        for rule in once:
            venue.admin("faults", {"rules": [rule]})
            fired(venue, run)
        # The funding executions, read after a settlement: failing a few times over.
        funding = {**SYSTEM_ERROR, "endpoint": "execution/list", "times": 6}
        venue.admin("faults", {"rules": [funding]})
        venue.admin("clock", {"time_ms": SETTLEMENT_MS + 60_000})
        fired(venue, run)
        # And one that lasts: said once, however many cycles fail; said when it clears.
        since = len(run.lines)
        lasting = {**SYSTEM_ERROR, "endpoint": "market/tickers", "times": None}
        venue.admin("faults", {"rules": [lasting]})
        said(run, "the venue is unreachable since", since=since)
        while venue.admin("faults")["rules"][0]["hits"] < 8:  # two cycles, retried
            time.sleep(0.1)
        venue.admin("faults", method="DELETE")
        said(run, "the venue answers again", since=since)
        outage = "".join(run.lines[since:])
        time.sleep(1)
        assert run.process.poll() is None, "".join(run.lines)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        # Nothing was sent meanwhile; the position is held as it was, and paid its funding.
        assert len(venue.admin("requests")["creates"]) == creates
        assert perp_short(venue) == short > 0
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert outage.count("the venue is unreachable since") == 1, outage
    assert 'VenueBusy: bybit {"retCode":10016' in outage
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"validated": 1}
    assert summary["ledger_balances"] is True
    assert Decimal(summary["total"]["funding"]) != 0
    assert not (run_dir / "INCOMPLETE").exists()


@pytest.mark.parametrize(
    ("rule", "cause"),
    [
        (
            {"endpoint": "account/wallet-balance", "ret_code": 10005,
             "ret_msg": "Permission denied, please check your API key permissions."},
            "the API key lacks the permission: retCode 10005",
        ),
        (
            {"endpoint": "position/list", "ret_code": 10003, "ret_msg": "API key is invalid."},
            "the API key is not valid: retCode 10003",
        ),
    ],
    ids=["10005 permission denied", "10003 key revoked"],
)  # fmt: skip
def test_a_key_refused_mid_run_stops_it_cleanly_leaving_the_positions(
    tmp_path: Path, rule: dict[str, Any], cause: str
) -> None:
    venue = VenueProcess(tmp_path, [], "100000")
    try:
        run, run_dir = holding(tmp_path, venue)
        short, creates = perp_short(venue), len(venue.admin("requests")["creates"])
        venue.admin("faults", {"rules": [{"kind": "reject", **rule}]})
        code, err = run.finish(timeout=30)
        assert code == 5, err
        assert "Traceback" not in err
        assert f"the venue refused the API key ({cause}" in err
        assert "positions are left as they are on the venue (BTCUSDT-0001 validated)" in err
        # Left as it was: nothing sent, the hedge held on the venue and in the results.
        assert len(venue.admin("requests")["creates"]) == creates
        assert perp_short(venue) == short > 0
        assert not (run_dir / "INCOMPLETE").exists()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["positions"] == {"validated": 1}
        assert any(cause in alert for alert in summary["alerts"]), summary["alerts"]
        with Journal.read(run_dir) as view:
            assert view.meta()["live_state"] == "stopped"

        # The key works again: the run is carried on from its journal.
        resumed = Watched(orchestrator("run", "--resume", str(run_dir), cwd=tmp_path))
        said(resumed, "unfinished positions: BTCUSDT-0001 (validated)")
        resumed.process.send_signal(signal.SIGTERM)
        code, err = resumed.finish(timeout=60)
        assert code == 128 + signal.SIGTERM, err
    finally:
        venue.stop()
