"""The replay engine: funding settlement, the ledger identity, no look-ahead, interruption."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from orchestrator.config import Config, Pair, RiskSettings, load
from orchestrator.exceptions import OrderRejected
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import Instrument, OrderRequest, OrderResult, Side
from orchestrator.replay.engine import Replay
from orchestrator.replay.session import prepare
from orchestrator.strategy.funding import FundingStrategy, strategies
from orchestrator.trading.figures import ledger_identity
from orchestrator.trading.run import RunResult
from tests.fake_bybit import INSTRUMENTS as INSTRUMENTS_FILE
from tests.support import BTC_PERP, BTC_SPOT, QUICK, data_file

pytestmark = pytest.mark.anyio
D = Decimal
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
INSTRUMENTS = {BTC_SPOT.symbol: BTC_SPOT, BTC_PERP.symbol: BTC_PERP}
CONFIG = Config(pairs=[Pair("BTC/USDT", "BTC/USDT:USDT")], strategy=QUICK)


def candles(prices: Sequence[Decimal]) -> list[Candle]:
    return [
        Candle(T0 + i * HOUR, p, p, p, p, D(1)) for i, p in enumerate(prices)
    ]  # open = high = low = close: the price of that hour


def pair_data(spot: Sequence[Decimal], perp: Sequence[Decimal], rates: Sequence[str]) -> PairData:
    funding = [FundingRate(T0 + (i + 1) * 8 * HOUR, D(r)) for i, r in enumerate(rates)]
    return PairData("BTC/USDT", "BTC/USDT:USDT", candles(spot), candles(perp), funding, [])


def replay(data: Sequence[PairData], config: Config = CONFIG, **kw: object) -> Replay:
    strats = [FundingStrategy(config.strategy, config.fees, config.paper.slippage)]
    return Replay(config, data, INSTRUMENTS, strats * len(data), **kw)  # type: ignore[arg-type]


# -- funding


async def test_funding_is_received_by_the_short_at_the_settlement_price() -> None:
    hours = 8 * 6
    spot = [D(50000)] * hours
    perp = [D(50010) + i for i in range(hours)]  # the perp's price moves: settlement uses it
    # Settlement 1 opens the position; 2 and 3 pay it; 4 is negative: it pays, and
    # then leaves (below the exit threshold).
    data = pair_data(spot, perp, ["0.001", "0.0005", "0.0002", "-0.0001", "0.001"])
    result = await replay([data]).run()

    position = result.positions[0]
    assert position.opened_at is not None
    assert position.opened_at.timestamp() * 1000 == T0 + 8 * HOUR
    funding = [e for e in result.ledger.entries if e.kind == "funding"]
    # Not the settlement it opened on: it did not hold the short before that instant.
    assert [e.time_ms for e in funding] == [T0 + 16 * HOUR, T0 + 24 * HOUR, T0 + 32 * HOUR]
    qty = position.quantity
    for entry, rate in zip(funding, ["0.0005", "0.0002", "-0.0001"], strict=True):
        price = perp[(entry.time_ms - T0) // HOUR - 1]  # the candle that closed at that instant
        assert entry.price == price
        assert entry.amount == qty * price * D(rate)  # exact, signed
    assert funding[2].amount < 0  # negative funding: the short pays
    assert result.pairs[0].exits[0] == (T0 + 32 * HOUR, "funding -10.95%/y below 2.00%/y")
    assert len(result.positions) == 2  # settlement 5 is high again: back in


async def test_nothing_is_paid_or_received_while_flat() -> None:
    hours = 8 * 4
    data = pair_data([D(50000)] * hours, [D(50010)] * hours, ["0.00001"] * 4)  # never enters
    result = await replay([data]).run()
    assert result.positions == []
    assert [e for e in result.ledger.entries if e.kind == "funding"] == []
    assert result.ending_balance == CONFIG.balances["USDT"]


# -- the ledger identity


def assert_balances(result: RunResult) -> None:
    lhs, rhs = ledger_identity(result)
    assert lhs == rhs  # exactly: Decimal, no tolerance


@pytest.fixture(scope="module")
def recorded() -> tuple[Config, list[PairData], dict[str, Instrument]]:
    root = Path(__file__).resolve().parents[1]
    loaded = load(root / "config.yaml")
    prepared = prepare(loaded.__class__(loaded.config, loaded.path))
    return loaded.config, prepared.datasets, prepared.instruments


async def test_default_run_ledger_balances_to_the_last_digit(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    config, datasets, instruments = recorded
    result = await Replay(config, datasets, instruments, strategies(config)).run()
    assert len(result.positions) > 5
    assert all(p.state == "closed" for p in result.positions)
    assert_balances(result)
    assert result.equity[-1][1] == result.ending_balance  # flat at the end


class EveryOtherPerpRejected(PaperExecutor):
    """A venue that refuses the perp leg of every other open: the spot leg is rolled back."""

    def __init__(
        self, ticker: TickerService, config: Config, instruments: dict[str, Instrument]
    ) -> None:
        super().__init__(ticker, config.fees, instruments.values(), slippage=config.paper.slippage)
        self.perp_opens = 0

    async def place_order(self, request: OrderRequest) -> OrderResult:
        if request.client_order_id.endswith("-po1"):
            self.perp_opens += 1
            if self.perp_opens % 2:
                raise OrderRejected("test venue: perp leg refused")
        return await super().place_order(request)


async def test_ledger_balances_on_a_run_with_rollbacks(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    config, datasets, instruments = recorded
    # Many rollbacks on purpose: the breaker is set not to pause the pairs.
    lenient = RiskSettings(max_failed_opens=100, failed_open_budget=D("0.1"))
    config = msgspec.structs.replace(config, risk=lenient)
    result = await Replay(
        config,
        datasets,
        instruments,
        strategies(config),
        make_executor=lambda ticker: EveryOtherPerpRejected(ticker, config, instruments),
    ).run()
    states = [p.state for p in result.positions]
    assert states.count("rolled_back") >= 3
    assert states.count("closed") >= 3
    rollbacks = [e for e in result.ledger.entries if e.note.endswith("-sr1")]
    assert rollbacks  # the spot legs sold back, each with its fill, fee and slippage
    assert_balances(result)


class PerpAlwaysRefused(EveryOtherPerpRejected):
    """A venue that refuses every perp open with ``refusal``, as a mode or parameter error
    would."""

    refusal = "test venue: perp leg refused"

    async def place_order(self, request: OrderRequest) -> OrderResult:
        if request.client_order_id.endswith("-po1"):
            raise OrderRejected(self.refusal)
        return await PaperExecutor.place_order(self, request)


async def refused_run(
    config: Config,
    datasets: list[PairData],
    instruments: dict[str, Instrument],
    refusal: str = PerpAlwaysRefused.refusal,
) -> RunResult:
    """The replay against a venue that refuses every perp open with ``refusal``."""

    def venue(ticker: TickerService) -> PaperExecutor:
        executor = PerpAlwaysRefused(ticker, config, instruments)
        executor.refusal = refusal
        return executor

    return await Replay(
        config, datasets, instruments, strategies(config), make_executor=venue
    ).run()


async def test_repeated_failed_opens_pause_the_pair(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    """Every open fails: each pair tries max_failed_opens times, then opens nothing more
    and says why; the money lost is only those rollbacks'."""
    config, datasets, instruments = recorded
    result = await refused_run(config, datasets, instruments)
    for pair in config.pairs:
        tried = [p for p in result.positions if p.spot_symbol == pair.spot]
        assert [p.state for p in tried] == ["rolled_back"] * config.risk.max_failed_opens
        assert any(f"{pair.name}: paused, opens nothing more" in n for n in result.notes)
    assert_balances(result)


async def test_a_refusal_the_venue_repeats_pauses_the_pair_at_once(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    """A refusal in Bybit's words that the same order meets again (retCode 10001, as
    hedge mode answers an order without positionIdx) pauses the pair after one try."""
    config, datasets, instruments = recorded
    refusal = (
        'rejected by the venue: BadRequest: bybit {"retCode":10001,'
        '"retMsg":"position idx not match position mode","result":{}}'
    )
    result = await refused_run(config, datasets, instruments, refusal)
    for pair in config.pairs:
        tried = [p for p in result.positions if p.spot_symbol == pair.spot]
        assert [p.state for p in tried] == ["rolled_back"]
    assert any("position idx not match position mode" in n for n in result.notes)


async def test_failed_opens_beyond_the_budget_stop_all_opening(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    config, datasets, instruments = recorded
    config = msgspec.structs.replace(
        config, risk=RiskSettings(max_failed_opens=100, failed_open_budget=D("0.0001"))
    )
    result = await refused_run(config, datasets, instruments)
    assert len(result.positions) == 1  # the first failure spent the 10 USDT budget
    assert any("opening stopped for every pair" in n for n in result.notes)


class ClosesRefused(PaperExecutor):
    """A venue that will not take the spot close: the position ends needing attention."""

    async def place_order(self, request: OrderRequest) -> OrderResult:
        if request.side is Side.SELL and request.category == "spot":
            raise OrderRejected("test venue: spot sell refused")
        return await super().place_order(request)


async def test_ledger_balances_with_exposure_left_at_the_end() -> None:
    hours = 8 * 4
    data = pair_data([D(50000)] * hours, [D(50010)] * hours, ["0.001"] * 4)
    result = await replay(
        [data],
        make_executor=lambda ticker: ClosesRefused(ticker, CONFIG.fees, INSTRUMENTS.values()),
    ).run()
    position = result.positions[0]
    assert position.state == "needs_attention"
    assert position.spot_qty > 0
    assert position.perp_qty == 0  # the perp close went through
    marks = [e for e in result.ledger.entries if e.kind == "mark"]
    assert [m.symbol for m in marks] == ["BTC/USDT"]
    assert_balances(result)


# -- no look-ahead


def changed_after(data: PairData, t: int) -> PairData:
    """The same data up to t; everything that becomes known after t is different."""

    def bend(c: Candle, factor: Decimal) -> Candle:
        # A candle is known at its close: one that opens at t closes after t.
        if c.open_time_ms < t:
            return c
        return Candle(
            c.open_time_ms,
            c.open * factor,
            c.high * factor,
            c.low * factor,
            c.close * factor,
            c.volume,
        )

    return msgspec.structs.replace(
        data,
        spot=[bend(c, D("0.7")) for c in data.spot],
        perp=[bend(c, D("0.72")) for c in data.perp],  # and a wide basis
        funding=[
            f if f.time_ms <= t else FundingRate(f.time_ms, -3 * f.rate) for f in data.funding
        ],
    )


def decisions_until(result: RunResult, t: int) -> list[tuple[str, int, str]]:
    out = []
    for run in result.pairs:
        out += [(run.name, when, "enter " + why) for when, why in run.entries if when <= t]
        out += [(run.name, when, "exit " + why) for when, why in run.exits if when <= t]
    return sorted(out)


async def test_changing_data_after_t_changes_nothing_decided_before_t(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    config, datasets, instruments = recorded
    window = T0 + 150 * 24 * HOUR  # five months keep it quick
    short = [
        msgspec.structs.replace(
            d,
            spot=[c for c in d.spot if c.open_time_ms < window],
            perp=[c for c in d.perp if c.open_time_ms < window],
            funding=[f for f in d.funding if f.time_ms < window],
        )
        for d in datasets
    ]
    base = await Replay(config, short, instruments, strategies(config)).run()
    moments = sorted({when for run in base.pairs for when, _ in run.entries + run.exits})
    assert len(moments) >= 4, "the window must hold decisions to compare"
    # Cut exactly at decision instants, and an hour before them.
    for t in moments[:3] + [m - HOUR for m in moments[:3]]:
        other = await Replay(
            config, [changed_after(d, t) for d in short], instruments, strategies(config)
        ).run()
        assert decisions_until(other, t) == decisions_until(base, t)
        ledger_until = [e for e in base.ledger.entries if e.time_ms <= t]
        assert [e for e in other.ledger.entries if e.time_ms <= t] == ledger_until
        assert decisions_until(other, base.end_ms) != decisions_until(base, base.end_ms)


# -- interruption


async def test_a_stop_ends_the_replay_early_and_closes_what_is_open(
    recorded: tuple[Config, list[PairData], dict[str, Instrument]],
) -> None:
    config, datasets, instruments = recorded
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= total // 2:
            stop.set()

    result = await Replay(config, datasets, instruments, strategies(config)).run(
        progress=progress, stop=stop
    )
    total = sum(len(d.spot) + len(d.perp) + len(d.funding) for d in datasets)
    assert result.interrupted
    assert total // 2 <= result.events < total
    assert all(p.state == "closed" for p in result.positions)  # closed on the last prices
    assert result.pairs[0].exits == [] or result.pairs[0].exits[-1][0] <= result.end_ms
    assert_balances(result)


def test_the_data_file_helper_finds_the_recorded_data() -> None:
    assert data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").is_file()


async def test_nothing_trades_on_prices_gone_stale_in_a_gap() -> None:
    hours = 8 * 6
    spot = [D(50000)] * hours
    perp = [D(50010)] * hours
    data = pair_data(spot, perp, ["0.00001", "0.001", "0.001", "0.001", "0.001"])
    # Candles from hour 12 to 19 are missing: at the 16 h settlement (the first high
    # rate) the last prices are 4 h old, beyond the 2 h stale limit.
    gap = msgspec.structs.replace(
        data,
        spot=[c for c in data.spot if not 12 <= (c.open_time_ms - T0) // HOUR < 20],
        perp=[c for c in data.perp if not 12 <= (c.open_time_ms - T0) // HOUR < 20],
    )
    result = await replay([gap]).run()
    opened = result.positions[0].opened_at
    assert opened is not None
    # Not at 16 h on stale prices: at 21 h, when the 20 h candle closed.
    assert opened.timestamp() * 1000 == T0 + 21 * HOUR
    assert result.pairs[0].entries[0][0] == T0 + 21 * HOUR


# -- each perp's own funding interval


@pytest.mark.parametrize(("interval_hours", "opens"), [(1, True), (8, False)])
async def test_the_strategy_annualises_with_the_perps_own_funding_interval(
    interval_hours: int, opens: bool
) -> None:
    """0.002 % settled every hour is 17.5 %/year, above the 10 % entry; read as every 8 h
    it would be 2.2 %. The replay takes the interval from the perp's instrument."""
    hours = 48
    funding = [FundingRate(T0 + (i + 1) * HOUR, D("0.00002")) for i in range(hours - 2)]
    data = PairData(
        "BTC/USDT", "BTC/USDT:USDT", candles([D(50000)] * hours), candles([D(50010)] * hours),
        funding, [],
    )  # fmt: skip
    perp = msgspec.structs.replace(BTC_PERP, funding_interval_hours=interval_hours)
    strategy = FundingStrategy(CONFIG.strategy, CONFIG.fees, CONFIG.paper.slippage)
    result = await Replay(
        CONFIG, [data], {BTC_SPOT.symbol: BTC_SPOT, perp.symbol: perp}, [strategy]
    ).run()
    assert bool(result.positions) is opens


@pytest.mark.parametrize(
    ("minutes", "hours"), [(None, 8), (60, 1), (240, 4), ("480", 8), (90, None), ("x", None)]
)
def test_the_funding_interval_is_read_from_the_instruments_file(
    tmp_path: Path, minutes: object, hours: int | None
) -> None:
    from orchestrator.market.instruments import load_instruments
    from orchestrator.market.recorded import DataError

    source = json.loads(INSTRUMENTS_FILE.read_text())
    entry = source["linear"]["BTCUSDT"]
    entry.pop("fundingInterval", None)
    if minutes is not None:
        entry["fundingInterval"] = minutes
    (tmp_path / "bybit_instruments_info_test.json").write_text(json.dumps(source))
    if hours is None:
        with pytest.raises(DataError, match="fundingInterval"):
            load_instruments(tmp_path, ["BTC/USDT:USDT"])
    else:
        loaded = load_instruments(tmp_path, ["BTC/USDT:USDT"])
        assert loaded["BTC/USDT:USDT"].funding_interval_hours == hours
