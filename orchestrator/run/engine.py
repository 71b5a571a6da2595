"""The replay: recorded market data through the strategy, the position manager and
the paper executor, on the data's own clock.

Events are taken in time order across every series and pair. At each instant
the prices that became known then are applied first (a candle is known once it
has closed), then funding is settled on what was held before that instant, then
the strategy of each pair that saw news decides. Each position lives in its own
task of the run's task group, from its open to its close.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from opentelemetry.trace import Tracer

from orchestrator.config import Config, Pair
from orchestrator.exceptions import DeltaHedgeError, OrchestratorError
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, Instrument, Position
from orchestrator.position.manager import PositionManager
from orchestrator.run.ledger import Ledger
from orchestrator.strategy.funding import Strategy
from orchestrator.tracing.position import PositionTracer

SPOT, PERP, FUNDING = 0, 1, 2
HOUR_MS = 3_600_000
Progress = Callable[[int, int], None]  # (events done, events in all)


class StopFlag(Protocol):
    """Set from outside (a signal handler) to end the replay at the next instant."""

    def is_set(self) -> bool: ...


Event = tuple[int, int, int, int, Decimal]  # time ms, phase, pair index, kind, value


# repr=False: asyncio puts the task's result in a message at shutdown; a default repr
# of a long run's records took seconds and hundreds of MiB.
@dataclass(eq=False, repr=False)
class PairRun:
    """One pair's part of a run: its strategy, its position, and what happened."""

    pair: Pair
    spot: Instrument
    perp: Instrument
    strategy: Strategy
    position: Position | None = None
    close_requested: anyio.Event = field(default_factory=anyio.Event)
    released: anyio.Event = field(default_factory=anyio.Event)
    opened: int = 0  # positions started, for ids
    entries: list[tuple[int, str]] = field(default_factory=list)  # (time ms, reason)
    exits: list[tuple[int, str]] = field(default_factory=list)
    funding_rates: list[tuple[int, Decimal]] = field(default_factory=list)
    cash: Decimal = ZERO  # fills, fees and funding so far: the pair's PnL when flat
    pnl: list[tuple[int, Decimal]] = field(default_factory=list)  # hourly, held legs at price

    @property
    def name(self) -> str:
        return self.pair.name


@dataclass(eq=False, repr=False)
class RunResult:
    label: str
    quote: str
    start_ms: int
    end_ms: int
    starting_balance: Decimal
    ending_balance: Decimal  # the wallet, in the quote currency
    ledger: Ledger
    positions: list[Position]
    pairs: list[PairRun]
    equity: list[tuple[int, Decimal]]  # hourly: wallet plus what is held, at its price
    events: int
    interrupted: bool


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


class Replay:
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
    ) -> None:
        self.config = config
        self.label = label
        self.datasets = list(datasets)
        self.clock_ms = 0
        self.ticker = TickerService(
            clock=lambda: self.clock_ms / 1000,
            stale_after_seconds=config.data.stale_after_seconds,
        )
        self.pairs = [
            PairRun(p, instruments[p.spot], instruments[p.perp], s)
            for p, s in zip(config.pairs, strategies, strict=True)
        ]
        quotes = {run.spot.quote for run in self.pairs} | {run.perp.quote for run in self.pairs}
        if len(quotes) != 1:
            raise OrchestratorError(
                f"all pairs must share one quote currency, got {sorted(quotes)}"
            )
        self.quote = quotes.pop()
        self.executor = (
            make_executor(self.ticker)
            if make_executor
            else PaperExecutor(
                self.ticker,
                config.fees,
                instruments.values(),
                slippage=config.paper.slippage,
                leverage=config.paper.leverage,
            )
        )
        for currency, amount in config.balances.items():
            self.executor.set_initial_balance(currency, amount)
        self.tracing = PositionTracer(tracer, clock=self.ticker.clock)
        self.manager = PositionManager(
            self.executor, self.ticker, config.trading, tracing=self.tracing
        )
        self.ledger = Ledger(config.balances)
        self.positions: list[Position] = []
        self.equity: list[tuple[int, Decimal]] = []
        self._tg: TaskGroup | None = None

    # -- the loop

    async def run(
        self, *, progress: Progress | None = None, stop: StopFlag | None = None
    ) -> RunResult:
        total = sum(len(d.spot) + len(d.perp) + len(d.funding) for d in self.datasets)
        done = 0
        current = -1
        touched: set[int] = set()
        start_ms = -1
        interrupted = False
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for t, _, i, kind, value in merged_events(self.datasets):
                if t != current:
                    if touched:
                        await self._decide(touched)
                        touched.clear()
                    if stop is not None and stop.is_set():
                        interrupted = True
                        break
                    self._sample_equity()
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
                    await self._decide(touched)
            await self._close_all("end of data" if not interrupted else "run interrupted")
            self._sample_equity(force=True)
            tg.cancel_scope.cancel()  # positions that could not close stay in their state
        if progress is not None:
            progress(done, total)
        self._mark_what_is_left()
        self.tracing.finish_all([run.position for run in self.pairs if run.position])
        return RunResult(
            label=self.label,
            quote=self.quote,
            start_ms=max(start_ms, 0),
            end_ms=max(self.clock_ms, 0),
            starting_balance=self.config.balances.get(self.quote, ZERO),
            ending_balance=self.executor.get_virtual_balance().get(self.quote, ZERO),
            ledger=self.ledger,
            positions=self.positions,
            pairs=self.pairs,
            equity=self.equity,
            events=done,
            interrupted=interrupted,
        )

    async def _decide(self, touched: set[int]) -> None:
        for i in sorted(touched):
            run = self.pairs[i]
            spot = self.ticker.get_price(run.spot.symbol)
            perp = self.ticker.get_price(run.perp.symbol)
            if spot is None or perp is None:
                continue  # missing or stale: no decision on prices that are not there
            if run.position is None:
                reason = run.strategy.entry_reason(spot, perp)
                if reason is not None:
                    await self._open(run, reason)
            else:
                reason = run.strategy.exit_reason(spot, perp)
                if reason is not None:
                    await self._close(run, reason)

    # -- positions, each in its own task

    async def _open(self, run: PairRun, reason: str) -> None:
        assert self._tg is not None
        run.entries.append((self.clock_ms, reason))
        await self._tg.start(self._hold, run)

    async def _close(self, run: PairRun, reason: str) -> None:
        run.exits.append((self.clock_ms, reason))
        run.released = anyio.Event()
        run.close_requested.set()
        await run.released.wait()

    async def _hold(self, run: PairRun, *, task_status: TaskStatus[None]) -> None:
        """Open a position, then close it whenever asked, until it is closed."""
        run.opened += 1
        pid = f"{run.name}-{run.opened:04d}"
        try:
            position = await self.manager.open_position(
                run.spot, run.perp, self._budget(), position_id=pid
            )
        except DeltaHedgeError as exc:
            self._record(run, exc.position)
            if exc.position.state == "needs_attention":
                run.position = exc.position  # exposure left: the exit rules will retry
                run.close_requested = anyio.Event()
                task_status.started()
                await self._closing_loop(run, exc.position)
                return
            task_status.started()
            return
        except OrchestratorError:
            rejected = self.manager.get_position(pid)
            if rejected is not None:
                self.positions.append(rejected)
            task_status.started()
            return
        self._record(run, position)
        run.position = position
        run.close_requested = anyio.Event()
        task_status.started()
        await self._closing_loop(run, position)

    async def _closing_loop(self, run: PairRun, position: Position) -> None:
        while True:
            await run.close_requested.wait()
            recorded = len(position.orders)
            # A failed close leaves the position needing attention with its exposure
            # recorded; the next exit decision retries.
            with contextlib.suppress(DeltaHedgeError):
                await self.manager.close_position(position.id)
            self._record(run, position, since=recorded)
            if position.state == "closed":
                run.position = None
                run.released.set()
                return
            run.close_requested = anyio.Event()
            run.released.set()

    async def _close_all(self, reason: str) -> None:
        for run in self.pairs:
            if run.position is not None:
                await self._close(run, reason)

    def _budget(self) -> Decimal:
        """What one new position may use: the free balance shared among the pairs not
        yet holding one, less what the perp leg's margin will take."""
        free = sum(1 for run in self.pairs if run.position is None) or 1
        available = self.executor.available_balance(self.quote)
        per_leg = available / (1 + 1 / self.config.paper.leverage) / free
        return per_leg * Decimal("0.99")  # room for fees and slippage

    # -- money

    def _record(self, run: PairRun, position: Position, since: int = 0) -> None:
        if since == 0:
            self.positions.append(position)
        for result in position.orders[since:]:
            quote = self.ticker.get_quote(result.symbol)
            reference = quote[0] if quote else result.avg_price or ZERO
            run.cash += self.ledger.record_order(
                self.clock_ms, run.name, position.id, result, reference
            )

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

    def _sample_equity(self, *, force: bool = False) -> None:
        if not force and self.equity and self.clock_ms - self.equity[-1][0] < HOUR_MS:
            return
        if self.clock_ms <= 0:
            return
        t = self.clock_ms
        self.equity.append((t, self.equity_now()))
        for run in self.pairs:
            run.pnl.append((t, self.pair_pnl(run)))

    def pair_pnl(self, run: PairRun) -> Decimal:
        """The pair's PnL so far: its cash plus its open legs at their last prices."""
        value = run.cash
        if run.position is not None:
            value += run.position.spot_qty * self._last(run.spot.symbol)
            value -= run.position.perp_qty * self._last(run.perp.symbol)
        return value

    def equity_now(self) -> Decimal:
        """The wallet plus what is held at its last price (and open perp PnL)."""
        equity = self.executor.balance(self.quote)
        for run in self.pairs:
            if run.position is None:
                continue  # flat: nothing held beyond the wallet
            held = self.executor.balance(run.spot.base)
            if held:
                equity += held * self._last(run.spot.symbol)
            perp = self.executor.get_perp_position(run.perp.symbol)
            if perp.size:
                equity += perp.size * (self._last(run.perp.symbol) - perp.entry_price)
        return equity

    def _last(self, symbol: str) -> Decimal:
        quote = self.ticker.get_quote(symbol)
        return quote[0] if quote else ZERO

    def _mark_what_is_left(self) -> None:
        """Value whatever could not be closed at the last price, so the ledger balances
        against the equity; the position's state says it needs the operator."""
        for run in self.pairs:
            position = run.position
            if position is None:
                continue
            if position.spot_qty:
                self.ledger.record_mark(
                    self.clock_ms,
                    run.name,
                    position.id,
                    run.spot.symbol,
                    position.spot_qty,
                    self._last(run.spot.symbol),
                )
            if position.perp_qty:
                self.ledger.record_mark(
                    self.clock_ms,
                    run.name,
                    position.id,
                    run.perp.symbol,
                    -position.perp_qty,
                    self._last(run.perp.symbol),
                )
