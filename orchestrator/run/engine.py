"""The replay: recorded market data through the strategy, the position manager and
the paper executor, on the data's own clock.

Events are taken in time order across every series and pair. At each instant
the prices that became known then are applied first (a candle is known once it
has closed), then funding is settled on what was held before that instant, then
the strategy of each pair that saw news decides (trader.py: the same lines a live
run decides with).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

import anyio
import anyio.lowlevel
from opentelemetry.trace import Tracer

from orchestrator.config import Config
from orchestrator.execution.paper import PaperExecutor
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, Instrument
from orchestrator.money import exact
from orchestrator.position.manager import PositionManager
from orchestrator.run.ledger import Ledger
from orchestrator.run.trader import HOUR_MS, PairRun, RunResult, StopFlag, Trader, stopping_whole
from orchestrator.strategy.funding import Strategy
from orchestrator.tracing.position import PositionTracer

__all__ = ["HOUR_MS", "Progress", "Replay", "RunResult", "StopFlag", "merged_events"]

SPOT, PERP, FUNDING = 0, 1, 2
# A replay's orders never leave the process: one nonce for every replay keeps two
# replays of the same data identical to the last client order id.
REPLAY_NONCE = "replay"
Progress = Callable[[int, int], None]  # (events done, events in all)
Event = tuple[int, int, int, int, Decimal]  # time ms, phase, pair index, kind, value


def pair_window(data: PairData) -> tuple[int, int]:
    """(first event, last instant with both prices) of one pair's data, in ms;
    (-1, -1) when it has no prices at all."""
    if not data.spot or not data.perp:
        return -1, -1
    firsts = [data.spot[0].open_time_ms + HOUR_MS, data.perp[0].open_time_ms + HOUR_MS]
    if data.funding:
        firsts.append(data.funding[0].time_ms)
    end = min(data.spot[-1].open_time_ms, data.perp[-1].open_time_ms) + HOUR_MS
    return min(firsts), end


def merged_events(datasets: Sequence[PairData]) -> Iterator[Event]:
    """Every series of every pair in time order. Candles count at their close;
    at one instant prices come before funding (phase 0, then 1)."""

    def candles(i: int, kind: int, rows: Sequence[Candle]) -> Iterator[Event]:
        for c in rows:
            yield (c.open_time_ms + HOUR_MS, 0, i, kind, c.close)

    def funding(i: int, rows: Sequence[FundingRate]) -> Iterator[Event]:
        for f in rows:
            yield (f.time_ms, 1, i, FUNDING, f.rate)

    series: list[Iterator[Event]] = []
    for i, data in enumerate(datasets):
        series += [
            candles(i, SPOT, data.spot),
            candles(i, PERP, data.perp),
            funding(i, data.funding),
        ]
    return heapq.merge(*series)


class Replay(Trader):
    def __init__(
        self,
        config: Config,
        datasets: Sequence[PairData],
        instruments: dict[str, Instrument],
        strategies: Sequence[Strategy],
        *,
        label: str = "strategy",
        make_executor: Callable[[TickerService], PaperExecutor] | None = None,
        tracer: Tracer | None = None,
        recorder: JournalRecorder | None = None,
    ) -> None:
        self.config = config
        self.datasets = list(datasets)
        ticker = TickerService(
            clock=lambda: self.clock_ms / 1000,
            stale_after_seconds=config.data.stale_after_seconds,
        )
        pairs = [
            PairRun(p, instruments[p.spot], instruments[p.perp], s)
            for p, s in zip(config.pairs, strategies, strict=True)
        ]
        for run, data in zip(pairs, self.datasets, strict=True):
            run.first_ms, run.end_ms = pair_window(data)
        self.executor = (
            make_executor(ticker)
            if make_executor
            else PaperExecutor(
                ticker,
                config.fees,
                instruments.values(),
                slippage=config.paper.slippage,
                leverage=config.paper.leverage,
            )
        )
        for currency, amount in config.balances.items():
            self.executor.set_initial_balance(currency, amount)
        tracing = PositionTracer(tracer, clock=ticker.clock)
        if recorder is not None:
            recorder.clock = ticker.clock
        manager = PositionManager(
            self.executor,
            ticker,
            config.trading,
            tracing=tracing,
            run_nonce=REPLAY_NONCE,
            journal=recorder,
            listeners=[] if recorder is None else [recorder],
        )
        super().__init__(
            pairs,
            manager,
            self.executor,
            ticker,
            Ledger(config.balances),
            leverage=config.paper.leverage,
            label=label,
            journal=recorder,
        )

    # -- the loop

    async def run(
        self, *, progress: Progress | None = None, stop: StopFlag | None = None
    ) -> RunResult:
        with exact(), stopping_whole():  # every task inside computes money in this context
            return await self._run(progress, stop)

    async def _run(self, progress: Progress | None, stop: StopFlag | None) -> RunResult:
        total = sum(len(d.spot) + len(d.perp) + len(d.funding) for d in self.datasets)
        done = 0
        current = -1
        touched: set[int] = set()
        start_ms = -1
        interrupted = False
        # Pairs by the end of their own data: each is closed out once its last
        # instant has been decided.
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
                    if done & 0xFFF == 0:
                        if progress is not None:
                            progress(done, total)
                        await anyio.lowlevel.checkpoint()  # let the rest of the app run
                run = self.pairs[i]
                if kind == SPOT:
                    self.ticker.update(run.spot.symbol, value, t / 1000)
                elif kind == PERP:
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
            tg.cancel_scope.cancel()  # positions that could not close stay in their state
        if progress is not None:
            progress(done, total)
        return self.finish(
            start_ms=start_ms,
            starting_balance=self.config.balances.get(self.quote, ZERO),
            ending_balance=self.executor.get_virtual_balance().get(self.quote, ZERO),
            events=done,
            interrupted=interrupted,
        )

    # -- money

    def _settle_funding(self, run: PairRun, rate: Decimal) -> None:
        position = run.position
        if position is None or position.perp_qty == 0:
            return
        quote = self.ticker.get_quote(run.perp.symbol)
        if quote is None:
            return
        price = quote[0]
        amount = self.executor.settle_funding(run.perp.symbol, rate, price)
        run.cash += self.ledger.record_funding(
            self.clock_ms,
            run.name,
            position.id,
            run.perp.symbol,
            position.perp_qty,
            price,
            rate,
            amount,
        )
        self.journal_money()
