"""The dry run (issue 22): ``mode: paper`` with ``market: live``, paper fills on the venue's
live prices and funding, no key. Through the CLI: ``orchestrator venue`` (the loopback
Bybit venue, recorded prices at a standing clock the test moves) and ``orchestrator run``,
each in its own process, with no API key in the environment. No order reaches the venue;
the settlement the venue publishes is paid on the paper short; the ledger balances; a
run killed with ``kill -9`` is carried on by ``run --resume`` from its journal."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.journal.recorder import CRASH_ENV
from tests.test_crash_resume_live import VenueProcess, Watched, env, journal_state, write_config

SETTLEMENT_MS = 1704441600000  # 2024-01-05 08:00 UTC, after the venue's 00:00 start
RATE = Decimal("0.0001")  # the recorded BTCUSDT rate settled then
OPENS = ("so1", "po1")  # client order ids of the first open's legs end so1 and po1


def keyless(**extra: str) -> dict[str, str]:
    return {k: v for k, v in env(**extra).items() if not k.startswith("BYBIT_")}


def dry_run(workdir: Path, *args: str, crash: str | None = None) -> Watched:
    extra = {CRASH_ENV: crash} if crash else {}
    return Watched(
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", *args],
            cwd=workdir,
            env=keyless(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )


def dry_config(workdir: Path, url: str) -> None:
    write_config(workdir, url, on_stop="close")
    path = workdir / "config.yaml"
    path.write_text(path.read_text().replace("mode: live", "mode: paper\nmarket: live"))


def wait_for(workdir: Path, run: Watched, states: list[str]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((workdir / "runs").glob("*"))
        if folders and journal_state(folders[-1])[0] == states and run.trading:
            return folders[-1]
        time.sleep(0.05)
    run.process.kill()
    raise AssertionError(f"never {states}:\n" + "".join(run.lines))


def ledger_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "ledger.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["run"] == "strategy"]


@pytest.mark.parametrize("killed", [False, True], ids=["whole", "killed-and-resumed"])
def test_a_dry_run_trades_on_paper_at_live_prices_and_collects_funding(
    tmp_path: Path, killed: bool
) -> None:
    venue = VenueProcess(tmp_path, [], "100000")
    try:
        dry_config(tmp_path, venue.url)
        run = dry_run(tmp_path, "config.yaml")
        run_dir = wait_for(tmp_path, run, ["validated"])
        if killed:
            run.process.kill()
            code, err = run.finish(timeout=30)
            assert code == -signal.SIGKILL, err
        venue.admin("clock", {"time_ms": SETTLEMENT_MS + 60_000})  # the 08:00 settlement
        if killed:
            run = dry_run(tmp_path, "--resume", str(run_dir))
            wait_for(tmp_path, run, ["validated"])
        deadline = time.monotonic() + 30
        while not any(r["kind"] == "funding" for r in _journal_ledger(run_dir)):
            assert time.monotonic() < deadline, "".join(run.lines)
            time.sleep(0.1)
        run.process.send_signal(signal.SIGTERM)  # on_stop: close
        code, err = run.finish(timeout=60)
        creates = venue.admin("requests")["creates"]
        hits = venue.admin("state")["hits"]
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    assert creates == []  # paper: no order reached the venue
    private = {"account/wallet-balance", "position/list", "execution/list", "account/info"}
    assert not private & {k for k, n in hits.items() if n}, hits  # public data only
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}, err
    assert summary["ledger_balances"] is True, err
    rows = ledger_rows(run_dir)
    (paid,) = [r for r in rows if r["kind"] == "funding"]
    assert int(paid["time_ms"]) == SETTLEMENT_MS
    # Paid on the short as Bybit pays it: size x price x rate, to the short.
    expected = Decimal(paid["quantity"]) * Decimal(paid["price"]) * RATE
    assert Decimal(paid["amount"]) == expected > 0
    opened = [
        r for r in rows if r["kind"] == "fill" and ("-so1" in r["note"] or "-po1" in r["note"])
    ]
    assert len(opened) == 2, rows  # opened once: the resume carried the position on


def _journal_ledger(run_dir: Path) -> list[dict[str, str]]:
    from orchestrator.journal import Journal

    try:
        with Journal.read(run_dir) as view:
            return [{"kind": e.kind} for e in view.ledger_entries("strategy")]
    except Exception:  # being written: look again
        return []


def test_check_says_a_dry_run_needs_no_key_and_live_on_recorded_data_is_refused(
    tmp_path: Path,
) -> None:
    dry_config(tmp_path, "http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "check", "config.yaml"],
        cwd=tmp_path, env=keyless(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "a dry run (paper fills) on the live market of http://127.0.0.1:9" in done.stdout
    assert "no API key needed" in done.stdout
    path = tmp_path / "config.yaml"
    path.write_text(
        path.read_text().replace("mode: paper\nmarket: live", "mode: live\nmarket: recorded")
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "check", "config.yaml"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "market: a live run trades on the live market" in done.stderr
