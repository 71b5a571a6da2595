"""The replay: recorded market data through the strategy, the position manager and
the paper executor, on the data's own clock.

Events are taken in time order across every series and pair. At each instant
the prices that became known then are applied first (a candle is known once it
has closed), then funding is settled on what was held before that instant, then
the strategy of each pair that saw news decides (trader.py: the same lines a live
run decides with).

How it goes fast without changing a figure: the series are read as columns (times,
values; columns.py), a block of time at a time, streamed from their files when
long; when every series of a block has the same instants (the pairs' candles on
one clock) the block is walked by index, with no merge at all; prices go to the
ticker as one store each; the strategy is asked only when it could act (its
``quiet``), and the position machinery only when it would.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal

import anyio
import anyio.lowlevel
from opentelemetry.trace import Tracer

from orchestrator.config import Config
from orchestrator.execution.paper import PaperExecutor
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.market.columns import ColumnReader, columns_of
from orchestrator.market.recorded import PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, Instrument
from orchestrator.money import exact
from orchestrator.position.manager import PositionManager
from orchestrator.position.tracer import PositionTracer
from orchestrator.replay.window import Window
from orchestrator.risk import RiskManager
from orchestrator.strategy.funding import FundingStrategy, Strategy
from orchestrator.trading.ledger import Ledger
from orchestrator.trading.run import HOUR_MS, PairRun, Progress, RunResult, StopFlag, stopping_whole
from orchestrator.trading.trader import Trader

SPOT, PERP, FUNDING = 0, 1, 2
# A replay's orders never leave the process: one nonce for every replay keeps two
# replays of the same data identical to the last client order id.
REPLAY_NONCE = "replay"
Event = tuple[int, int, int, int, Decimal]  # time ms, phase, pair index, kind, value
BLOCK_EVENTS = 8192  # about this many candle events are read at a time
CHECKPOINT_EVENTS = 4096  # the rest of the app gets a turn (and progress a call) this often


def _interval(series: Sequence[object]) -> int:
    """A candle series' interval: the loaded series says it; a list of candles, its
    first candle."""
    found = getattr(series, "interval_ms", None)
    if isinstance(found, int):
        return found
    return int(getattr(series[0], "interval_ms", HOUR_MS)) if len(series) else HOUR_MS


def pair_window(data: PairData) -> tuple[int, int]:
    """(first event, last instant with both prices) of one pair's data, in ms;
    (-1, -1) when it has no prices at all."""
    if not data.spot or not data.perp:
        return -1, -1
    firsts = [data.spot[0].close_time_ms, data.perp[0].close_time_ms]
    if data.funding:
        firsts.append(data.funding[0].time_ms)
    end = min(data.spot[-1].close_time_ms, data.perp[-1].close_time_ms)
    return min(firsts), end


def merged_events(datasets: Sequence[PairData]) -> Iterator[Event]:
    """Every series of every pair in time order, one event at a time (what the replay
    takes, by blocks). Candles count at their close; at one instant prices come
    before funding (phase 0, then 1), then by pair and series."""

    def tagged(reader: ColumnReader, phase: int, i: int, kind: int) -> Iterator[Event]:
        while reader.peek() is not None:
            times, values = reader.take(2**62)
            for t, value in zip(times, values, strict=True):
                yield t, phase, i, kind, value

    series: list[Iterator[Event]] = []
    for i, data in enumerate(datasets):
        series += [
            tagged(columns_of(data.spot, candles=True).reader(), 0, i, SPOT),
            tagged(columns_of(data.perp, candles=True).reader(), 0, i, PERP),
            tagged(columns_of(data.funding, candles=False).reader(), 1, i, FUNDING),
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
        window: Window | None = None,
    ) -> None:
        """``window``: the data is a window of the recorded data (window.py): the run
        starts at its start, warmed up with the rates settled by then."""
        self.config = config
        self.window = window
        self.datasets = list(datasets)
        ticker = TickerService(
            clock=lambda: self.clock_ms / 1000,
            stale_after_seconds=config.data.stale_after_seconds,
        )
        pairs = [
            PairRun(p, instruments[p.spot], instruments[p.perp], s)
            for p, s in zip(config.pair_list, strategies, strict=True)
        ]
        for run, data in zip(pairs, self.datasets, strict=True):
            run.first_ms, run.end_ms = pair_window(data)
            if isinstance(run.strategy, FundingStrategy):  # its perp's own interval
                run.strategy.adopt(config.fees, run.perp.funding_interval_hours)
        if window is not None:
            for run, data, rates in zip(pairs, self.datasets, window.warm_up, strict=True):
                firsts = [c[0].open_time_ms for c in (data.spot, data.perp) if c]
                run.first_ms = min(firsts, default=run.first_ms)  # the window's start
                for rate in rates:
                    run.strategy.on_funding(rate.rate)
                    run.funding_rates.append((rate.time_ms, rate.rate))
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
            risk=RiskManager(config.trading, config.risk.portfolio_limits()),
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
            Ledger(config.balances, on_money=tracing.money),
            leverage=config.paper.leverage,
            label=label,
            journal=recorder,
            risk=config.risk,
            maintenance_margin_rate=config.paper.maintenance_margin_rate,
        )

    # -- the loop

    async def run(
        self, *, progress: Progress | None = None, stop: StopFlag | None = None
    ) -> RunResult:
        with exact(), stopping_whole():  # every task inside computes money in this context
            return await self._run(progress, stop)

    async def _run(self, progress: Progress | None, stop: StopFlag | None) -> RunResult:
        pairs = self.pairs
        n = len(pairs)
        # Series s: 3 * pair + kind (spot, perp, funding).
        columns = []
        intervals = []
        for data in self.datasets:
            columns += [
                columns_of(data.spot, candles=True),
                columns_of(data.perp, candles=True),
                columns_of(data.funding, candles=False),
            ]
            intervals += [_interval(data.spot), _interval(data.perp)]
        readers = [c.reader() for c in columns]
        total = sum(c.count for c in columns)
        block_ms = max(1, BLOCK_EVENTS // max(2 * n, 1)) * min(intervals, default=HOUR_MS)
        symbols = [s for run in pairs for s in (run.spot.symbol, run.perp.symbol)]
        quotes = self.ticker.quotes
        equity = self.books.equity
        would_act, sample_equity = self.would_act, self.sample_equity
        all_pairs = list(range(n))
        done = 0
        next_checkpoint = 0
        current = -1
        start_ms = -1
        interrupted = False
        # Pairs by the end of their own data: each is closed out once its last
        # instant has been decided.
        endings = sorted(range(n), key=lambda i: pairs[i].end_ms)
        next_end = pairs[endings[0]].end_ms if endings else 2**62
        if self.window is not None:
            # The starting balance at the window's start, as a live run samples it.
            start_ms = self.clock_ms = self.window.start_ms
            sample_equity()
        async with anyio.create_task_group() as tg:
            self.attach(tg)
            while True:
                firsts = [first for r in readers if (first := r.peek()) is not None]
                if not firsts:
                    break
                until = min(firsts) + block_ms
                taken = [r.take(until) for r in readers]
                prices = [taken[3 * i + k] for i in range(n) for k in (0, 1)]
                funding = [taken[3 * i + 2] for i in range(n)]
                settlements: dict[int, list[tuple[int, Decimal]]] = {}
                for i, (times, rates) in enumerate(funding):
                    for t, rate in zip(times, rates, strict=True):
                        settlements.setdefault(t, []).append((i, rate))
                # Lockstep: every price series has the instants of the longest, or its
                # first ones (a pair's data ends in the block). Instant k of the block
                # is row k of every series that long; a settlement at another instant
                # is an instant of its own (k = -1).
                longest = max((p[0] for p in prices), key=len, default=[])
                lockstep = bool(longest) and all(
                    p[0] == (longest if len(p[0]) == len(longest) else longest[: len(p[0])])
                    for p in prices
                )
                steps: Iterable[tuple[int, int]]
                if lockstep:
                    # The series with rows in this block: (symbol, values, pair).
                    live = [(symbols[s], p[1], s >> 1) for s, p in enumerate(prices) if p[0]]
                    values = [(symbol, column) for symbol, column, _ in live]
                    live_pairs = sorted({i for _, _, i in live})
                    if len(live_pairs) == n:
                        live_pairs = all_pairs
                    full = min(len(column) for _, column in values)
                    per_instant = len(values)
                    plan = None
                    extra: list[tuple[int, int]] = []
                    for t in settlements:
                        k = bisect_left(longest, t)
                        if k == len(longest) or longest[k] != t:
                            extra.append((t, -1))
                    steps = zip(longest, range(len(longest)), strict=True)
                    if extra:
                        steps = sorted([*steps, *extra])
                else:
                    plan = _plan(prices, settlements)
                    steps = ((t, 0) for t in sorted(plan))
                    values, live, live_pairs, full, per_instant = [], [], [], 0, 0
                for t, k in steps:
                    # The instant before is over: decided, its pairs ended, sampled.
                    while next_end <= current:
                        await self.end_pair(pairs[endings.pop(0)])
                        next_end = pairs[endings[0]].end_ms if endings else 2**62
                    if stop is not None and stop.is_set():
                        interrupted = True
                        break
                    if current - equity.last_ms >= HOUR_MS:
                        sample_equity()
                    if start_ms < 0:
                        start_ms = t
                    current = self.clock_ms = t
                    if done >= next_checkpoint:
                        next_checkpoint = done + CHECKPOINT_EVENTS
                        if progress is not None:
                            progress(done, total)
                        await anyio.lowlevel.checkpoint()  # let the rest of the app run
                    ts = t / 1000
                    touched: Sequence[int]
                    if plan is None:
                        if 0 <= k < full:
                            for symbol, column in values:
                                quotes[symbol] = (column[k], ts)
                            done += per_instant
                            touched = live_pairs
                        else:  # some series end in the block, or only funding settles
                            active = set()
                            for symbol, column, i in live:
                                if 0 <= k < len(column):
                                    quotes[symbol] = (column[k], ts)
                                    active.add(i)
                                    done += 1
                            touched = sorted(active)
                    else:
                        updates, touched = plan[t]
                        for s, value in updates:
                            quotes[symbols[s]] = (value, ts)
                        done += len(updates)
                    paid = settlements.get(t)
                    if paid is not None:
                        for i, rate in paid:
                            run = pairs[i]
                            self._settle_funding(run, rate)
                            run.strategy.on_funding(rate)
                            run.funding_rates.append((t, rate))
                        done += len(paid)
                        if len(touched) < n:
                            touched = sorted({*touched, *(i for i, _ in paid)})
                    if would_act(touched):
                        await self.decide(touched)
                if interrupted:
                    break
            if not interrupted:
                for i in endings:
                    await self.end_pair(pairs[i])
            else:
                self.stopping()
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
        books = self.books
        books.funding(self.clock_ms, run, position.id, position.perp_qty, price, rate, amount)
        books.journal_money()


Plan = dict[int, tuple[list[tuple[int, Decimal]], list[int]]]


def _plan(
    prices: list[tuple[list[int], list[Decimal]]],
    settlements: dict[int, list[tuple[int, Decimal]]],
) -> Plan:
    """A block whose series do not share their instants: per instant, the price
    updates (series, value) in series order and the pairs they touch; every
    settlement's instant is there too."""
    plan: Plan = {}
    for s, (times, values) in enumerate(prices):
        i = s >> 1
        for t, value in zip(times, values, strict=True):
            entry = plan.get(t)
            if entry is None:
                plan[t] = ([(s, value)], [i])
            else:
                entry[0].append((s, value))
                if entry[1][-1] != i:
                    entry[1].append(i)
    for t in settlements:
        plan.setdefault(t, ([], []))
    return plan
