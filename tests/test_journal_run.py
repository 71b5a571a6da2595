"""A run writes its journal as it goes: every position, every machine transition,
every order intent before it leaves and its outcome, the ledger and the paper
balances. An intent that cannot be made durable is never sent."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.config import Config, Pair
from orchestrator.journal import DB_NAME, Journal
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.models import OrderRequest, Position
from orchestrator.replay.engine import Replay
from orchestrator.strategy.funding import FundingStrategy
from tests.support import BTC_PERP, BTC_SPOT, QUICK, data_file

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
D = Decimal
HOUR = 3_600_000
T0 = 1_704_067_200_000
CONFIG = Config(pairs=[Pair("BTC/USDT", "BTC/USDT:USDT")], strategy=QUICK)
INSTRUMENTS = {BTC_SPOT.symbol: BTC_SPOT, BTC_PERP.symbol: BTC_PERP}


def two_positions() -> PairData:
    """In at the first settlement, out when funding turns negative, in again."""
    hours = 8 * 10
    candles = [Candle(T0 + i * HOUR, *(D(50000),) * 4, D(1)) for i in range(hours)]
    rates = ["0.001", "0.001", "-0.001", "0.001", "0.001", "0.001", "0.001", "0.001", "0.001"]
    funding = [FundingRate(T0 + (i + 1) * 8 * HOUR, D(r)) for i, r in enumerate(rates)]
    return PairData("BTC/USDT", "BTC/USDT:USDT", candles, candles, funding, [])


def new_journal(run_dir: Path) -> Journal:
    return Journal.create(
        run_dir, run_id="r1", mode="paper", run_nonce="replay", config_text="mode: paper\n"
    )


def replay(recorder: JournalRecorder) -> Replay:
    strategy = FundingStrategy(QUICK, CONFIG.fees, CONFIG.paper.slippage)
    return Replay(CONFIG, [two_positions()], INSTRUMENTS, [strategy], recorder=recorder)


async def test_a_replay_journals_positions_transitions_intents_outcomes_and_money(
    tmp_path: Path,
) -> None:
    with new_journal(tmp_path) as journal:
        recorder = JournalRecorder(journal)
        result = await replay(recorder).run()
    assert recorder.problems == []
    view = Journal.read(tmp_path)
    assert len(result.positions) == 2
    assert {p.id: p.state for p in view.positions()} == {p.id: p.state for p in result.positions}
    assert view.positions() == result.positions  # the whole record, to the Decimal
    for position in result.positions:
        path = [(t.source, t.target) for t in view.transitions(position.id)]
        assert path == [
            ("pending", "legs_sent"),
            ("legs_sent", "filled"),
            ("filled", "validated"),
            ("validated", "closing"),
            ("closing", "closed"),
        ]
        orders = view.orders(position.id)
        assert [o.client_order_id for o in orders] == position.client_order_ids
        assert [o.result for o in orders] == position.orders  # every outcome, as it came
        assert {o.status for o in orders} == {"filled"}
    assert view.open_intents() == []
    assert view.ledger_entries("strategy") == result.ledger.entries
    snapshot = view.last_balances("strategy")
    assert snapshot is not None and snapshot.wallet["USDT"] == result.ending_balance


async def test_an_intent_that_cannot_be_recorded_is_never_sent(tmp_path: Path) -> None:
    with Journal.create(
        tmp_path, run_id="r1", mode="paper", run_nonce="replay", config_text="", busy_timeout=0.05
    ) as journal:
        # Another process holds the database (outside the run's lock): nothing can be written.
        other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            recorder = JournalRecorder(journal)
            run = replay(recorder)
            result = await run.run()
        finally:
            other.execute("ROLLBACK")
            other.close()
        # A replay's journal takes nothing after its first failure: these rejections
        # are the journal's, not the strategy's, and journaled they would stop a resume
        # from deriving the run again. The failure is said.
        recorder.flush()
        assert recorder.failed is not None and "locked" in recorder.failed
        assert "the journal could not be written" in recorder.problems[0]
        rejects = [(t.event, t.position_id) for t in journal.transitions()]
    # Every open was refused before anything was sent, and says why.
    assert result.positions and {p.state for p in result.positions} == {"rejected"}
    for position in result.positions:
        assert "could not be recorded in the journal, so nothing was sent" in (
            position.reason or ""
        )
        assert "locked" in (position.reason or "")
        assert position.orders == []
    assert result.ledger.entries == []
    assert result.ending_balance == CONFIG.balances["USDT"]
    assert rejects == []


async def test_a_close_whose_intent_cannot_be_recorded_waits_and_says_why(
    tmp_path: Path,
) -> None:
    """Open normally; the database is held by another process at the first close:
    nothing is sent, the position needs attention saying why; released, the next exit
    decision closes it. A live run's journal (mode live): it tries every write again,
    where a replay's stops at its first failure."""
    with Journal.create(
        tmp_path, run_id="r1", mode="live", run_nonce="replay", config_text="", busy_timeout=0.05
    ) as journal:
        recorder = JournalRecorder(journal)
        run = replay(recorder)
        other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
        original = recorder.record_intents
        calls = {"n": 0}

        def held_at_the_first_close(position: Position, requests: Sequence[OrderRequest]) -> None:
            calls["n"] += 1
            if calls["n"] == 2:  # the first close
                other.execute("BEGIN EXCLUSIVE")
                try:
                    original(position, requests)
                finally:
                    other.execute("ROLLBACK")
                return
            original(position, requests)

        recorder.record_intents = held_at_the_first_close  # type: ignore[method-assign]
        try:
            result = await run.run()
        finally:
            other.close()
    first = result.positions[0]
    transitions = Journal.read(tmp_path).transitions(first.id)
    assert ("closing", "needs_attention") in [(t.source, t.target) for t in transitions]
    assert first.state == "closed"  # the next exit decision closed it
    spot_sells = [o for o in first.orders if o.side.value == "sell" and o.category == "spot"]
    assert len(spot_sells) == 1  # nothing was sent while the intent could not be recorded
    assert [cid for cid in first.client_order_ids if cid.endswith("c1")]  # the blocked ids
    assert all(not o.client_order_id.endswith("c1") for o in first.orders)  # never sent


def test_orchestrator_run_writes_a_journal_and_journal_shows_it(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("end: null", 'end: "2024-03-01"'))
    env = dict(os.environ, ORCHESTRATOR_DATA=str(DATA))
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator", "journal", str(folder), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    held = json.loads(shown.stdout)
    with (folder / "positions.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["run"] == "strategy"]
    assert rows, "the window must hold positions"
    assert {p["id"]: p["state"] for p in held["positions"]} == {r["id"]: r["state"] for r in rows}
    assert held["open_intents"] == []
    with (folder / "ledger.csv").open() as f:
        ledger = [r for r in csv.DictReader(f) if r["run"] == "strategy"]
    view = Journal.read(folder)
    assert [str(e.amount) for e in view.ledger_entries("strategy")] == [r["amount"] for r in ledger]
    assert view.meta()["run_nonce"] == "replay"
