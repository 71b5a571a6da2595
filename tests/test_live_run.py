"""Live mode end to end: the same strategy, manager and accounting as a replay, through
real ccxt and the LiveExecutor, against the loopback venue (in-process, and in its
own process as a user would point ``mode: live`` at a Bybit-compatible URL)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
import pytest

from orchestrator.bybit.client import make_exchange
from orchestrator.config import Config, Pair, load
from orchestrator.live.preflight import StartupError
from orchestrator.live.run import LiveRun
from orchestrator.live.startup import connect
from orchestrator.rehearsal import Rehearsal, rehearse
from orchestrator.replay.session import Prepared, prepare
from orchestrator.strategy.funding import AlwaysHedged, Strategy
from orchestrator.trading.figures import ledger_identity
from orchestrator.trading.run import RunResult
from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, Venue
from orchestrator.venue.faults import FaultRule
from tests.support import data_file

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
HOUR = 3_600_000
JAN_2 = 1_704_153_600_000  # 2024-01-02T00:00:00Z
SENTINEL = "sEnTiNeL-SeCrEt-4f9c1b"


def always_hedged(config: Config) -> list[Strategy]:
    return [AlwaysHedged() for _ in config.pairs]


@pytest.fixture(scope="module")
def recorded() -> tuple[Config, Prepared]:
    loaded = load(ROOT / "config.yaml")
    return loaded.config, prepare(msgspec.structs.replace(loaded, warnings=[]))


async def test_live_open_funding_close_matches_paper_on_the_same_prices(
    recorded: tuple[Config, Prepared], keep_decimal_context: None
) -> None:
    config, prepared = recorded
    result, paper = await rehearse(
        config,
        DATA,
        prepared.datasets,
        prepared.instruments,
        always_hedged,
        Rehearsal(JAN_2, 72),
        threading.Event(),
        None,
    )
    assert [p.state for p in result.positions] == ["closed", "closed"]
    assert all(not o.is_simulated for p in result.positions for o in p.orders)
    lhs, rhs = ledger_identity(result)
    assert lhs == rhs  # exactly, on the venue's own numbers
    live_totals, paper_totals = result.ledger.totals(), paper.ledger.totals()
    # Funding came from the venue's funding executions (execFee's sign flipped).
    funding = [e for e in result.ledger.entries if e.kind == "funding"]
    # Both pairs, the eight settlements after the first prices and before the end
    # (2024-01-05 00:00 is the next window's: orchestrator/replay/window.py).
    assert len(funding) == 2 * 8
    assert live_totals["funding"] > 0
    # The same prices, fees and slippage: live equals its paper baseline exactly.
    for live, on_paper in zip(result.positions, paper.positions, strict=True):
        assert live.quantity == on_paper.quantity
        assert live.spot_entry_price == on_paper.spot_entry_price
        assert live.perp_entry_price == on_paper.perp_entry_price
    assert live_totals == paper_totals
    assert list(result.equity) == list(paper.equity)


async def test_startup_stops_before_the_first_order_when_a_pair_is_not_listed(
    keep_decimal_context: None,
) -> None:
    config = Config(pairs=[Pair("BTC/USDT", "BTC/USDT:USDT"), Pair("SOL/USDT", "SOL/USDT:USDT")])
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as venue:
        exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, config.live.timing, url=venue.url)
        try:
            with pytest.raises(StartupError, match="SOL/USDT: not listed on the venue"):
                await connect(config, exchange, always_hedged(config))
        finally:
            await exchange.close()
        assert venue.audit.creates == []  # nothing was sent


async def test_a_position_the_run_did_not_open_is_reported_and_left_alone(
    keep_decimal_context: None,
) -> None:
    config = Config(pairs=[Pair("BTC/USDT", "BTC/USDT:USDT")])
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as venue:
        exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, config.live.timing, url=venue.url)
        try:
            await exchange.load_markets()
            await exchange.create_order("BTC/USDT:USDT", "market", "sell", 0.01)  # by hand
            run = await connect(config, exchange, always_hedged(config))
            assert run.pairs[0].ended  # not traded
            assert "BTC/USDT:USDT: the account already holds -0.01" in run.skipped[0]
        finally:
            await exchange.close()
        assert len(venue.audit.creates) == 1  # only the trader's own order


# -- as a user runs it: commands in their own processes


def run_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    return {**env, "ORCHESTRATOR_DATA": str(DATA), "PYTHONUNBUFFERED": "1", **extra}


def command(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def live_config(workdir: Path, url: str) -> Path:
    path = workdir / "config.yaml"
    text = path.read_text().replace("mode: paper", "mode: live")
    text += f"\nlive:\n  url: {url}\n  poll_seconds: 0.5\n  on_stop: close\n"
    path.write_text(text)
    return path


@pytest.fixture
def venue_process() -> Iterator[str]:
    """``orchestrator venue`` on the recorded data, its market clock standing at
    2024-01-05 (funding high: the default strategy enters), keys of the sentinel."""
    process = command(
        "venue", "--recorded", "--start", "2024-01-05", "--speed", "0",
        "--key", "sentinel-key", "--secret", SENTINEL, "--data-dir", str(DATA),
        cwd=ROOT, env=run_env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_live_mode_without_keys_stops_before_anything(workdir: Path) -> None:
    live_config(workdir, "http://127.0.0.1:9")
    for verb in ("run", "check"):
        proc = command(verb, "config.yaml", cwd=workdir, env=run_env())
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert "BYBIT_API_KEY and BYBIT_API_SECRET in the environment" in err
        assert "Traceback" not in err
    assert not (workdir / "runs").exists()


def test_live_mode_trades_and_stops_on_ctrl_c_without_showing_the_secret(
    workdir: Path, venue_process: str
) -> None:
    live_config(workdir, venue_process)
    env = run_env(BYBIT_API_KEY="sentinel-key", BYBIT_API_SECRET=SENTINEL)
    proc = command("run", "config.yaml", cwd=workdir, env=env)
    assert proc.stderr is not None
    try:
        # Wait for a position to open (its trace line), then Ctrl-C.
        folder = None
        for _ in range(600):
            runs = list((workdir / "runs").glob("*/traces.jsonl"))
            if runs and "position.open" in runs[0].read_text():
                folder = runs[0].parent
                break
            threading.Event().wait(0.1)
        assert folder is not None, "no position opened"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["label"] == "strategy" and summary["baseline"] is None
    assert summary["ledger_balances"] is True
    assert set(summary["positions"]) == {"closed"}  # on_stop: close
    with (folder / "positions.csv").open() as f:
        ids = [cid for row in csv.DictReader(f) for cid in row["client_order_ids"].split()]
    assert ids and all(len(cid) <= 36 for cid in ids)
    # The secret is nowhere: not in what was printed, not in any file of the run.
    assert SENTINEL not in out + err
    for path in folder.iterdir():
        assert SENTINEL not in path.read_text(errors="replace"), path.name


def test_rehearse_runs_the_live_path_on_the_recorded_data(workdir: Path) -> None:
    proc = command(
        "rehearse", "config.yaml", "--hours", "240", "--start", "2024-01-02",
        cwd=workdir, env=run_env(),
    )  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    (folder,) = (workdir / "runs").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["label"] == "rehearsal"
    assert summary["ledger_balances"] is True and summary["baseline_ledger_balances"] is True
    assert summary["start"].startswith("2024-01-02") and summary["end"].startswith("2024-01-12")
    assert summary["total"]["positions"] >= 1
    assert Decimal(summary["total"]["funding"]) > 0
    assert set(summary["positions"]) == {"closed"}
    assert "rehearsal" in out and "always hedged" in out
    assert (folder / "traces.jsonl").stat().st_size > 0


def test_rehearse_refuses_candles_that_are_not_hourly_before_making_a_run_folder(
    workdir: Path,
) -> None:
    from tests.test_replay_streaming import minute_files

    data = workdir / "data"
    data.mkdir()
    minute_files(data, 3000)
    instruments = "bybit_instruments_info_BTC_ETH_ccxt_static_subset.json"
    shutil.copyfile(DATA / instruments, data / instruments)
    config = workdir / "config.yaml"
    config.write_text(
        config.read_text().replace("  - spot: ETH/USDT\n    perp: ETH/USDT:USDT\n", "")
    )
    proc = command("rehearse", "config.yaml", cwd=workdir, env=run_env(ORCHESTRATOR_DATA=str(data)))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert out == ""
    assert err.splitlines()[-1] == (
        f"error: {data}: BTCUSDT: the venue replays hourly candles; "
        "its spot candles are 1-minute ones"
    )
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_a_venue_out_of_reach_stops_the_start_with_a_clear_message(workdir: Path) -> None:
    live_config(workdir, "http://127.0.0.1:9")  # nothing listens there
    env = run_env(BYBIT_API_KEY="key-of-the-test", BYBIT_API_SECRET=SENTINEL)
    proc = command("run", "config.yaml", cwd=workdir, env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "live run not started, nothing sent: the venue could not be used" in err
    assert "Traceback" not in err and SENTINEL not in err
    # Nothing ran: no folder is left to be the latest run (status would show it).
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


BTC_ONLY = Config(pairs=[Pair("BTC/USDT", "BTC/USDT:USDT")])


async def until(done: Callable[[], bool], seconds: float = 30) -> None:
    """Until ``done()`` (the run's state is polled: it signals nothing)."""
    with anyio.fail_after(seconds):
        while not done():  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def held_run(
    venue: Venue, watch: Callable[[LiveRun], Awaitable[None]]
) -> tuple[LiveRun, RunResult]:
    """The always-hedged BTC pair run live against ``venue`` (in-process, a cycle every
    0.05 s) while ``watch(run)`` acts on it; stopped when ``watch`` returns."""
    stop = threading.Event()
    exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, BTC_ONLY.live.timing, url=venue.url)
    try:
        run = await connect(BTC_ONLY, exchange, always_hedged(BTC_ONLY), poll_seconds=0.05)

        async def watched() -> None:
            await watch(run)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watched)
            result = await run.run(stop)
    finally:
        await exchange.close()
    return run, result


def validated(run: LiveRun) -> Callable[[], bool]:
    return lambda: (p := run.pairs[0].position) is not None and p.state == "validated"


async def test_a_short_gone_from_the_venue_with_no_execution_is_not_called_hedged(
    keep_decimal_context: None,
) -> None:
    """The venue's perp position goes to nothing with no execution listed (as a
    delisting's settlement or a venue's correction might): after a few cycles that find
    no execution to say why, the run takes the short in as bought back at the last
    price, sells the spot it hedged, says so, and pauses the pair for the operator;
    it does not go on calling the position hedged with its spot naked."""
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as venue:

        async def vanish(run: LiveRun) -> None:
            await until(validated(run))
            held = run.pairs[0].position
            assert held is not None
            venue.book.positions["BTCUSDT"].size = Decimal(0)
            await until(lambda: held.state == "closed")
            await anyio.sleep(0.3)  # cycles in which it could open again

        run, result = await held_run(venue, vanish)
        spot_left = venue.book.available("BTC")
    pair = run.pairs[0]
    (position,) = result.positions
    assert position.state == "closed"
    assert [o.exec_type for o in position.orders if o.exec_type] == ["Unexplained"]
    assert pair.open_paused is not None and "went without an execution" in pair.open_paused
    assert any("perp short gone from the venue with no execution found" in n for n in result.notes)
    assert spot_left < Decimal("0.000001")  # the spot was sold, not left naked


async def test_a_wallet_read_before_the_fills_is_not_added_to_them(
    keep_decimal_context: None,
) -> None:
    """The account can be read at the start and at the first cycle, never after: the
    wallet the run last saw predates the open's fills. The equity is then the run's own
    record (starting balance, fills, fees, funding, holdings at the last prices), not that
    old wallet plus the positions bought with it (which counted about 40 % too much),
    and the ledger balances; the summary says why."""
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as venue:
        wallet = "account/wallet-balance"
        venue.faults.add(FaultRule(kind="http", endpoint=wallet, status=503, after=2, times=None))

        async def hold(run: LiveRun) -> None:
            await until(validated(run), seconds=60)
            await anyio.sleep(0.5)  # cycles whose wallet reads fail

        _, result = await held_run(venue, hold)
    assert result.positions[0].state == "validated"  # on_stop: leave
    lhs, rhs = ledger_identity(result)
    assert lhs == rhs
    start = result.starting_balance
    assert abs(result.ending_equity - start) < start / 100, (result.ending_equity, start)
    assert any("predates the last fills" in n for n in result.notes), result.notes


async def test_a_market_no_longer_trading_gets_no_new_position(
    keep_decimal_context: None,
) -> None:
    """The perp is Trading when the run starts, Settling (being delisted) by the time
    it would open: the venue's instruments are asked before each open, no order is
    sent, and the pair pauses saying why."""
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as venue:

        async def delist(run: LiveRun) -> None:
            key = ("linear", "BTCUSDT")
            listed = venue.book.instruments[key]
            venue.book.instruments[key] = dataclasses.replace(
                listed, raw={**listed.raw, "status": "Settling"}
            )
            await until(lambda: run.pairs[0].open_paused is not None)
            await anyio.sleep(0.3)  # cycles in which it could try again

        run, result = await held_run(venue, delist)
        creates = list(venue.audit.creates)
    pair = run.pairs[0]
    assert creates == []  # nothing sent
    assert result.positions == []
    assert pair.open_paused is not None
    assert "the venue lists BTC/USDT:USDT as Settling, not Trading" in pair.open_paused
