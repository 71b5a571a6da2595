"""Funding attributed by the settlement's own time (issue 19, item 5), through the CLI:
``orchestrator venue`` replaying the recorded data in real time and ``orchestrator run``
(mode live), each in its own process. The run is stopped (``on_stop: close``) just before
the 08:00 settlement; its perp close is answered late and lands after it, so the venue
pays the short at 08:00 while the close is under way. The run counts that payment for the
position, and its ledger balances on the venue's numbers."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_crash_resume_live import (
    DATA,
    KEY,
    SECRET,
    VenueProcess,
    Watched,
    drive,
    env,
    journal_state,
    orchestrator,
    write_config,
)
from tests.test_live_accounts import Venue

SETTLEMENT_MS = 1704441600000  # 2024-01-05 08:00 UTC


class RealTimeVenue(Venue):
    """The recorded market from 07:59:30, its clock running with the wall clock."""

    def __init__(self, workdir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "venue", "--recorded",
             "--start", "2024-01-05T07:59:30", "--speed", "1", "--key", KEY,
             "--secret", SECRET, "--data-dir", str(DATA)],
            cwd=workdir, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.stop()


def test_a_settlement_during_a_slow_close_is_counted(tmp_path: Path) -> None:
    venue = RealTimeVenue(tmp_path)
    try:
        write_config(tmp_path, venue.url, on_stop="close")
        path = tmp_path / "config.yaml"
        text = path.read_text().replace("order_timeout_seconds: 2", "order_timeout_seconds: 90")
        path.write_text(text.replace("recv_window_ms: 1000", "recv_window_ms: 60000"))
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and run.process.poll() is None:
            folders = sorted((tmp_path / "runs").glob("*"))
            if (journal_state(folders[-1])[0] if folders else []) == ["validated"]:
                break
            time.sleep(0.05)
        clock = venue.admin("state")["clock_ms"]
        assert clock < SETTLEMENT_MS - 2000, "opened too late to test this"
        # The perp close's answer is lost; the order lands 5 s after the settlement.
        late = {"kind": "land_late", "category": "linear", "link_id": "*-pc1"}
        late["delay_ms"] = SETTLEMENT_MS + 5000 - clock
        venue.admin("faults", {"rules": [late]})
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=120)
        executions = venue.admin("state")["executions"]
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    paid = [e for e in executions if e["execType"] == "Funding"]
    assert [int(e["execTime"]) for e in paid] == [SETTLEMENT_MS]  # paid during the close
    (run_dir,) = (tmp_path / "runs").glob("*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}, err
    with (run_dir / "ledger.csv").open() as f:
        funding = [r for r in csv.DictReader(f) if r["kind"] == "funding"]
    assert [r["position_id"] for r in funding] == ["BTCUSDT-0001"], funding
    assert summary["ledger_balances"] is True, err


def test_funding_paid_while_a_run_killed_mid_open_was_down_is_counted(tmp_path: Path) -> None:
    """kill -9 between the legs filling and the delta check (the position has no
    ``opened_at`` yet); the venue's clock moves past the 08:00 settlement while the run
    is down; ``run --resume`` counts that payment for the position (issue 19, item 5b)."""
    venue = VenueProcess(tmp_path, [], "100000")
    try:
        write_config(tmp_path, venue.url, on_stop="close")
        first = orchestrator("run", "config.yaml", cwd=tmp_path, crash="legs_filled")
        code, err = Watched(first).finish(timeout=60)
        assert code == -signal.SIGKILL, err
        (run_dir,) = (tmp_path / "runs").glob("*")
        assert journal_state(run_dir)[0] == ["filled"], err
        moved = venue.admin("clock", {"time_ms": SETTLEMENT_MS + 60_000})
        assert [int(e["execTime"]) for e in moved["settled"]] == [SETTLEMENT_MS]
        resumed = orchestrator("run", "--resume", str(run_dir), cwd=tmp_path)
        code, err = drive(resumed, tmp_path, venue, deposit=False)
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}, err
    with (run_dir / "ledger.csv").open() as f:
        funding = [r for r in csv.DictReader(f) if r["kind"] == "funding"]
    paid = moved["settled"][0]
    assert [(r["position_id"], r["quantity"]) for r in funding] == [
        ("BTCUSDT-0001", paid["execQty"])
    ], funding
    assert summary["ledger_balances"] is True, err
