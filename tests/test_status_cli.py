"""``orchestrator status`` through the real CLI, on real run folders: a finished paper
run, a live run against the shipped venue while it holds a position, the same run
killed (kill -9), and folders that are no run. Every figure is recomputed here from
the journal or ledger.csv, never written down."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.journal import Journal
from orchestrator.journal import status as journal_status
from orchestrator.journal.schema import DB_NAME, SCHEMA_VERSION
from orchestrator.live import run as live_run
from tests.test_crash_resume_live import VenueProcess, Watched, write_config
from tests.test_crash_resume_live import env as live_env
from tests.test_crash_resume_live import orchestrator as live_orchestrator

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(live_env()["ORCHESTRATOR_DATA"])
D = Decimal
DAY_MS = 86_400_000


def status(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "status", *args],
        cwd=cwd,
        env=dict(os.environ, ORCHESTRATOR_DATA=str(DATA)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def status_json(*args: str, cwd: Path) -> dict[str, Any]:
    done = status(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    value: dict[str, Any] = json.loads(done.stdout)
    return value


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default config's replay, finished."""
    workdir = tmp_path_factory.mktemp("paper")
    shutil.copyfile(ROOT / "config.yaml", workdir / "config.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=dict(os.environ, ORCHESTRATOR_DATA=str(DATA)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = (workdir / "runs").iterdir()
    return run_dir


def ledger_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "ledger.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["run"] == "strategy"]


def test_a_finished_paper_run_is_stopped_with_the_ledgers_figures(paper_run: Path) -> None:
    workdir = paper_run.parent.parent
    got = status_json(cwd=workdir)  # no RUN_DIR: the latest run under runs/
    assert Path(got["run_dir"]).name == paper_run.name
    assert (got["mode"], got["state"], got["writer_pid"]) == ("paper", "stopped", None)

    summary = json.loads((paper_run / "summary.json").read_text())
    rows = ledger_rows(paper_run)
    funding = [r for r in rows if r["kind"] == "funding"]
    with Journal.read(paper_run) as view:
        positions = view.positions()
        times = [t.time_ms for t in view.transitions()]
        snap = view.last_balances("strategy")
    assert snap is not None and snap.time_ms is not None
    as_of = max([int(r["time_ms"]) for r in rows] + times + [snap.time_ms])
    day = as_of - as_of % DAY_MS

    assert got["clock"] == "data" and got["as_of_ms"] == as_of  # the run's own clock
    assert D(got["equity"]["equity"]) == D(summary["ending_equity"])
    assert D(got["starting_balance"]) == D(summary["starting_balance"])
    assert D(got["equity"]["allocated_to_positions"]) == 0  # everything closed
    assert D(got["funding"]["total"]) == sum(D(r["amount"]) for r in funding)
    today = [r for r in funding if day <= int(r["time_ms"]) < day + DAY_MS]
    assert D(got["funding"]["today"]) == sum((D(r["amount"]) for r in today), D(0))
    assert D(got["fees_total"]) == -sum(D(r["amount"]) for r in rows if r["kind"] == "fee")
    assert D(got["account"]["total"]) == snap.wallet["USDT"]

    assert [p["id"] for p in got["positions"]] == [p.id for p in positions]
    for shown, record in zip(got["positions"], positions, strict=True):
        assert (shown["state"], shown["open"]) == (record.state, False)
        assert D(shown["quantity"]) == record.quantity
        assert D(shown["spot_entry_price"]) == record.spot_entry_price
        mine = [r for r in rows if r["position_id"] == record.id]
        assert D(shown["funding"]) == sum(
            (D(r["amount"]) for r in mine if r["kind"] == "funding"), D(0)
        )
        assert D(shown["fees"]) == -sum(D(r["amount"]) for r in mine if r["kind"] == "fee")
    assert "paper replay" in got["last_venue_contact"]

    text = status(str(paper_run), cwd=workdir)
    assert text.returncode == 0, text.stderr
    assert "STOPPED: it ended and wrote summary.json" in text.stdout
    assert f"{D(summary['ending_equity']):,.2f} USDT" in text.stdout
    assert f"0 open; ended: closed {len(positions)}" in text.stdout
    assert text.stderr == ""


def test_clear_errors_for_what_is_not_a_run(paper_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = status(str(tmp_path / "empty"), cwd=tmp_path)
    assert done.returncode == 2
    assert "is not a run folder: it holds no journal" in done.stderr

    done = status(cwd=tmp_path)  # no runs/ here
    assert done.returncode == 2 and "error: no runs:" in done.stderr
    (tmp_path / "runs" / "not-a-run").mkdir(parents=True)
    done = status("--runs", "runs", cwd=tmp_path)
    assert done.returncode == 2 and "no folder under runs holds a journal" in done.stderr

    newer = tmp_path / "newer"
    shutil.copytree(paper_run, newer)
    with sqlite3.connect(newer / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    done = status(str(newer), cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert f"is a journal of version {SCHEMA_VERSION + 1}" in done.stderr
    assert "a newer orchestrator wrote it" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_meta_names_agree_with_what_the_live_run_writes() -> None:
    assert journal_status.START_MS == live_run.START_MS
    assert journal_status.STARTING_BALANCE == live_run.STARTING_BALANCE


def snapshots(text: str) -> list[str]:
    return [part for part in text.split("\n\n") if part.strip()]


def wait_holding(workdir: Path, run: Watched) -> Path:
    """The run's folder once it holds a validated position and has journaled a cycle
    (its prices, account and last contact) begun after the position was seen held."""
    deadline = time.monotonic() + 90
    seen_ms: float | None = None  # when the position was first seen held
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((workdir / "runs").glob("*"))
        if folders and (folders[0] / DB_NAME).is_file() and run.trading:
            try:
                with Journal.read(folders[0]) as view:
                    positions, meta = view.positions(), view.meta()
            except Exception:  # being created: look again
                positions, meta = [], {}
            cycle = json.loads(meta.get(journal_status.LAST_CYCLE, "{}"))
            if seen_ms is None and any(p.state == "validated" for p in positions):
                seen_ms = time.time() * 1000  # (the venue's clock stands: the machine's)
            if seen_ms is not None and cycle.get("contact_ms", 0) > seen_ms:
                return folders[0]
        time.sleep(0.1)
    raise AssertionError("the run held no position in time:\n" + "".join(run.lines))


def test_a_live_run_running_then_killed(tmp_path: Path) -> None:
    venue = VenueProcess(tmp_path, [], "100000")
    run: Watched | None = None
    try:
        write_config(tmp_path, venue.url, on_stop="leave")
        run = Watched(live_orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = wait_holding(tmp_path, run)

        got = status_json(str(run_dir), cwd=tmp_path)
        now_ms = time.time() * 1000
        assert (got["mode"], got["state"], got["writer_pid"]) == (
            "live",
            "running",
            run.process.pid,
        )
        # The venue's clock stands still: the journal holds what it held at status's read.
        with Journal.read(run_dir) as view:
            (position,) = view.positions()
            meta = view.meta()
            ledger = view.ledger_entries("strategy")
            transitions = view.transitions()
        cycle = json.loads(meta[journal_status.LAST_CYCLE])
        prices = {symbol: D(price) for symbol, (price, _) in cycle["prices"].items()}
        spot, perp = prices[position.spot_symbol], prices[position.perp_symbol]
        assert position.spot_entry_price is not None and position.perp_entry_price is not None

        (shown,) = got["positions"]
        assert (shown["id"], shown["state"], shown["open"]) == (position.id, "validated", True)
        assert (D(shown["spot_qty"]), D(shown["perp_qty"])) == (
            position.spot_qty,
            position.perp_qty,
        )
        assert D(shown["quantity"]) == position.quantity
        assert D(shown["spot_entry_price"]) == position.spot_entry_price
        assert D(shown["perp_entry_price"]) == position.perp_entry_price
        assert shown["spot_price"]["source"] == shown["perp_price"]["source"] == "venue"
        assert (D(shown["spot_price"]["price"]), D(shown["perp_price"]["price"])) == (spot, perp)
        unrealised = position.spot_qty * (spot - position.spot_entry_price) - (
            position.perp_qty * (perp - position.perp_entry_price)
        )
        assert D(shown["unrealised_pnl"]) == unrealised
        fees = -sum((e.amount for e in ledger if e.kind == "fee"), D(0))
        assert D(shown["fees"]) == fees > 0
        assert D(shown["funding"]) == sum((e.amount for e in ledger if e.kind == "funding"), D(0))
        # Ages and "today" on the run's clock: the venue's time at its last record.
        times = [e.time_ms for e in ledger] + [t.time_ms for t in transitions]
        as_of = max([*times, cycle["market_ms"]])
        assert (got["clock"], got["as_of_ms"]) == ("venue", as_of)
        assert position.opened_at is not None
        opened_ms = int(position.opened_at.timestamp() * 1000)
        assert shown["age_seconds"] == (as_of - opened_ms) // 1000

        cash = D(meta["starting_balance"]) + sum(
            (e.amount for e in ledger if e.kind in ("fill", "fee", "funding")), D(0)
        )
        equity = cash + position.spot_qty * spot - position.perp_qty * perp
        allocated = position.spot_qty * spot + position.perp_qty * position.perp_entry_price
        assert D(got["equity"]["equity"]) == equity  # leverage 1: margin = notional
        assert D(got["equity"]["allocated_to_positions"]) == allocated
        assert D(got["equity"]["available"]) == equity - allocated
        assert got["account"]["source"] == "venue"
        assert D(got["account"]["equity"]) == D(cycle["equity"])
        assert now_ms - 15_000 < got["last_venue_contact_ms"] <= now_ms
        today = datetime.fromtimestamp(as_of / 1000, UTC).strftime("%Y-%m-%d")
        assert got["funding"]["day"] == today

        text = status(str(run_dir), cwd=tmp_path)
        assert text.returncode == 0, text.stderr
        assert f"RUNNING: process {run.process.pid}" in text.stdout
        assert position.id in text.stdout and "validated" in text.stdout
        assert "unrealised PnL at the venue's prices at the run's last cycle" in text.stdout

        # --watch on a pipe: one snapshot after another, until SIGINT: exit 130.
        watcher = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "status", str(run_dir), "--watch", "0.2"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None
            seen = ""
            deadline = time.monotonic() + 30
            while seen.count("\nrun ") < 2 and time.monotonic() < deadline:
                seen += watcher.stdout.readline()
            watcher.send_signal(signal.SIGINT)
            watcher.wait(timeout=20)
            rest = watcher.stdout.read()  # (communicate would miss what readline buffered)
            assert watcher.stderr is not None
            err = watcher.stderr.read()
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.communicate()
        assert watcher.returncode == 130, err
        assert "Traceback" not in err
        parts = snapshots(seen + rest)
        assert len(parts) >= 2
        assert all(p.startswith("run ") and "RUNNING" in p for p in parts), parts
        assert "\x1b[" not in seen + rest  # no screen control codes on a pipe

        # kill -9: nobody holds the run, no summary: it died, and says how to carry on.
        run.process.kill()
        run.finish(timeout=30)
        got = status_json(str(run_dir), cwd=tmp_path)
        assert (got["state"], got["writer_pid"]) == ("died", None)
        assert f"orchestrator run --resume {run_dir}" in got["state_detail"]
        (shown,) = got["positions"]
        assert (shown["state"], D(shown["perp_qty"])) == ("validated", position.perp_qty)
        text = status(str(run_dir), cwd=tmp_path)
        assert "DIED: no process holds it" in text.stdout
        assert not (run_dir / "summary.json").exists()
    finally:
        if run is not None and run.process.poll() is None:
            run.process.kill()
            run.finish(timeout=30)
        venue.stop()


def test_the_pauses_the_run_said_are_shown_with_their_causes(
    paper_run: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "paused"
    shutil.copytree(paper_run, copy)
    lines = {
        "pause strategy 2": "ETHUSDT: paused, opens nothing more this run: 3 opens in a row failed",
        "pause strategy 10": "strategy: opening stopped for every pair: failed opens have cost 9",
    }
    request = "2026-01-02 03:04:05 UTC orchestrator pause --pair BTCUSDT (by ann): paused"
    with sqlite3.connect(copy / DB_NAME) as conn:  # as trader._tell journals them
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", lines.items())
        conn.execute("INSERT INTO meta (key, value) VALUES ('control 1a2b', ?)", (request,))
    conn.close()
    got = status_json(str(copy), cwd=tmp_path)
    assert [(p["n"], p["line"]) for p in got["pauses"]] == [
        (2, lines["pause strategy 2"]),
        (10, lines["pause strategy 10"]),
    ]
    assert got["operator_requests"] == [request]
    text = status(str(copy), cwd=tmp_path).stdout
    assert f"paused      {lines['pause strategy 2']}" in text
    assert f"operator    {request}" in text
