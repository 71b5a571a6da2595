"""The replay's block walk (lockstep by index, pairs ending inside a block, settlements
between candles, misaligned series) gives exactly what the plain event-by-event loop
gives: the loop the replay ran before issue 11, kept here as the reference."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal

import anyio.lowlevel
import pytest

from orchestrator.config import Config, Pair
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.models import ZERO
from orchestrator.money import exact
from orchestrator.replay import engine
from orchestrator.replay.engine import Replay, merged_events
from orchestrator.strategy.funding import AlwaysHedged, FundingStrategy, Strategy
from orchestrator.trading.run import HOUR_MS, RunResult, StopFlag, stopping_whole
from tests.support import BTC_PERP, BTC_SPOT, ETH_PERP, ETH_SPOT, QUICK

pytestmark = pytest.mark.anyio
D = Decimal
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
INSTRUMENTS = {i.symbol: i for i in (BTC_SPOT, BTC_PERP, ETH_SPOT, ETH_PERP)}
BOTH = [Pair("BTC/USDT", "BTC/USDT:USDT"), Pair("ETH/USDT", "ETH/USDT:USDT")]


class Reference(Replay):
    """The event-by-event loop: heapq.merge of every series, decide at each new instant."""

    async def run(self, *, progress: object = None, stop: StopFlag | None = None) -> RunResult:
        with exact(), stopping_whole():
            return await self._reference(stop)

    async def _reference(self, stop: StopFlag | None) -> RunResult:
        done, current, start_ms, interrupted = 0, -1, -1, False
        touched: set[int] = set()
        endings = sorted(range(len(self.pairs)), key=lambda i: self.pairs[i].end_ms)
        async with anyio.create_task_group() as tg:
            self.attach(tg)
            for t, _, i, kind, value in merged_events(self.datasets):
                if t != current:
                    if touched:
                        await self.decide(touched)
                        touched.clear()
                    while endings and self.pairs[endings[0]].end_ms <= current:
                        await self.end_pair(self.pairs[endings.pop(0)])
                    if stop is not None and stop.is_set():
                        interrupted = True
                        break
                    self.sample_equity()
                    current = self.clock_ms = t
                    if start_ms < 0:
                        start_ms = t
                    await anyio.lowlevel.checkpoint()
                run = self.pairs[i]
                if kind == 0:
                    self.ticker.update(run.spot.symbol, value, t / 1000)
                elif kind == 1:
                    self.ticker.update(run.perp.symbol, value, t / 1000)
                else:
                    self._settle_funding(run, value)
                    run.strategy.on_funding(value)
                    run.funding_rates.append((t, value))
                touched.add(i)
                done += 1
            else:
                if touched:
                    await self.decide(touched)
                for i in endings:
                    await self.end_pair(self.pairs[i])
            await self.close_all("run interrupted" if interrupted else "end of data")
            self.sample_equity(force=True)
            tg.cancel_scope.cancel()
        return self.finish(
            start_ms=start_ms,
            starting_balance=self.config.balances.get(self.quote, ZERO),
            ending_balance=self.executor.get_virtual_balance().get(self.quote, ZERO),
            events=done,
            interrupted=interrupted,
        )


def messy(seed: int) -> list[PairData]:
    """Two pairs with gaps, late starts, early ends, a perp shorter than its spot and
    settlements that fall between candles; funding that makes the strategy trade."""
    rng = random.Random(seed)
    out = []
    for spot, perp, level in (
        ("BTC/USDT", "BTC/USDT:USDT", 50_000),
        ("ETH/USDT", "ETH/USDT:USDT", 3000),
    ):
        start = T0 + rng.randint(0, 30) * HOUR_MS
        hours = rng.randint(600, 900)
        kept = [h for h in range(hours) if rng.random() > 0.01]
        price = D(level)
        spot_rows, perp_rows = [], []
        for h in kept:
            price = (price * D(1 + rng.uniform(-0.004, 0.004))).quantize(D("0.01"))
            basis = D(1 + rng.uniform(-0.006, 0.006)).quantize(D("0.0001"))
            spot_rows.append(Candle(start + h * HOUR_MS, price, price, price, price, D(1)))
            perp_price = (price * basis).quantize(D("0.01"))
            perp_rows.append(
                Candle(start + h * HOUR_MS, perp_price, perp_price, perp_price, perp_price, D(1))
            )
        perp_rows = perp_rows[: len(perp_rows) - rng.randint(0, 40)]
        offset = rng.choice([0, 30 * 60_000])  # settlements on or between candle closes
        rates = []
        for i in range(hours // 8):
            regime = (i // 15) % 3
            rate = rng.choice([D("0.0004"), D("0.0001"), D("-0.0002")][regime : regime + 1])
            rates.append(FundingRate(start + i * 8 * HOUR_MS + offset, rate))
        out.append(PairData(spot, perp, spot_rows, perp_rows, rates, []))
    return out


async def both(datasets: Sequence[PairData], plays: str) -> tuple[RunResult, RunResult]:
    config = Config(pairs=list(BOTH), strategy=QUICK)

    def strategies() -> list[Strategy]:
        if plays == "baseline":
            return [AlwaysHedged(), AlwaysHedged()]
        return [FundingStrategy(QUICK, config.fees, config.paper.slippage) for _ in BOTH]

    new = await Replay(config, datasets, INSTRUMENTS, strategies()).run()
    old = await Reference(config, datasets, INSTRUMENTS, strategies()).run()
    return new, old


@pytest.mark.parametrize("block", [16, 8192])  # candle events per block: 4 h, or all
@pytest.mark.parametrize("plays", ["strategy", "baseline"])
@pytest.mark.parametrize("seed", range(6))
async def test_the_block_walk_is_the_event_loop(
    seed: int, plays: str, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BLOCK_EVENTS", block)
    new, old = await both(messy(seed), plays)
    assert new.events == old.events
    assert [(e.time_ms, e.kind, e.symbol, e.amount) for e in new.ledger.entries] == [
        (e.time_ms, e.kind, e.symbol, e.amount) for e in old.ledger.entries
    ]
    assert [(p.id, p.state, p.opened_at, p.closed_at) for p in new.positions] == [
        (p.id, p.state, p.opened_at, p.closed_at) for p in old.positions
    ]
    assert list(new.equity) == list(old.equity)
    for a, b in zip(new.pairs, old.pairs, strict=True):
        assert list(a.pnl) == list(b.pnl)
        assert (a.entries, a.exits, a.funding_rates) == (b.entries, b.exits, b.funding_rates)
    assert (new.start_ms, new.end_ms, new.ending_equity) == (
        old.start_ms,
        old.end_ms,
        old.ending_equity,
    )
    if plays == "strategy":
        assert len(new.positions) > 2  # it traded
