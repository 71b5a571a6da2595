"""A live run: the same strategy, manager and accounting as a replay (trader.py),
on the venue's prices and through the LiveExecutor.

Startup, in order, stopping with a clear message before the first order if
anything is off: load the markets; check every pair is listed and trading on
both legs; read balances and positions (a perp position the run did not open is
reported and its pair left alone); set each perp's leverage. Then, every
``live.poll_seconds``: read prices, feed settled funding to the strategies and
record what the venue paid, read the account, decide, sample the equity: the
replay's order (orchestrator/run/window.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import ccxt
from opentelemetry.trace import Tracer

from orchestrator.config import Config, Pair
from orchestrator.exceptions import OrchestratorError
from orchestrator.execution.bybit import describe
from orchestrator.execution.live import LiveExecutor
from orchestrator.execution.retry import read_venue as read
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.account import LiveAccount
from orchestrator.live.market import LiveMarket, MarketClock
from orchestrator.market.ticker import TickerService
from orchestrator.models import Category, Instrument, Position
from orchestrator.money import exact
from orchestrator.position.legs import new_run_nonce
from orchestrator.position.manager import PositionManager
from orchestrator.run.engine import Progress
from orchestrator.run.ledger import Ledger
from orchestrator.run.trader import PairRun, RunResult, StopFlag, Trader, stopping_whole
from orchestrator.strategy.funding import Strategy
from orchestrator.tracing.position import PositionTracer

# Journal meta a live run writes when it starts: what its figures count from.
STARTING_BALANCE = "starting_balance"
START_MS = "start_ms"
LEVERAGE_UNCHANGED = "110043"  # Bybit: "leverage not modified" is success
FOREVER_MS = 2**62  # a live pair's data never ends
HOUR_MS = 3_600_000


class StartupError(OrchestratorError):
    """Something is off before the first order: nothing was sent."""


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def instrument(market: dict[str, Any]) -> Instrument:
    """The venue's limits of one ccxt market, as the sizer needs them."""
    limits, precision = market.get("limits") or {}, market.get("precision") or {}
    return Instrument(
        symbol=market["symbol"],
        category=Category.SPOT if market.get("spot") else Category.LINEAR,
        base=market["base"],
        quote=market["quote"],
        qty_step=_dec(precision["amount"]),
        min_qty=_dec((limits.get("amount") or {}).get("min") or precision["amount"]),
        min_notional=_dec((limits.get("cost") or {}).get("min") or 0),
        price_tick=_dec(precision["price"]),
    )


def check_markets(exchange: Any, pairs: Sequence[Pair]) -> dict[str, Instrument]:
    """Every pair listed, of the right kind and trading, on both legs."""
    problems: list[str] = []
    found: dict[str, Instrument] = {}
    for pair in pairs:
        for symbol, kind in ((pair.spot, "spot"), (pair.perp, "linear perpetual")):
            market = exchange.markets.get(symbol)
            if market is None:
                problems.append(f"{symbol}: not listed on the venue")
                continue
            right = (
                market.get("spot")
                if kind == "spot"
                else market.get("swap") and market.get("linear")
            )
            if not right:
                problems.append(f"{symbol}: not a {kind} market")
            elif market.get("active") is False:
                problems.append(f"{symbol}: not trading (the venue lists it inactive)")
            else:
                try:
                    found[symbol] = instrument(market)
                except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                    problems.append(f"{symbol}: its limits cannot be read ({exc!r})")
    if problems:
        raise StartupError("live run not started, nothing sent: " + "; ".join(problems))
    return found


async def set_leverage(exchange: Any, symbol: str, leverage: Decimal) -> None:
    try:
        await read(lambda: exchange.set_leverage(float(leverage), symbol))
    except ccxt.BaseError as exc:
        if LEVERAGE_UNCHANGED not in str(exc):
            raise StartupError(
                f"live run not started, nothing sent: setting {symbol} leverage to "
                f"{leverage}x failed: {type(exc).__name__}: {exc}"
            ) from None


class LiveRun(Trader):
    """Built by ``connect``, which does the startup checks."""

    def __init__(
        self,
        config: Config,
        exchange: Any,
        pairs: list[PairRun],
        account: LiveAccount,
        *,
        tracer: Tracer | None,
        label: str,
        speed: float,
        poll_seconds: float,
        run_nonce: str,
        skipped: list[str],
        recorder: JournalRecorder | None = None,
    ) -> None:
        self.config = config
        self.recorder = recorder
        # A resumed run: positions taken back from the journal, carried on once the
        # first prices are in; and the client order ids its ledger already has.
        self.restored: list[tuple[PairRun, Position]] = []
        self.ledgered: set[str] = set()
        self.quotes: dict[str, Decimal] = {}  # their fills' quoted prices, by client order id
        self.start_ms: int | None = None
        # Told once, when the first cycle is done (its positions carried on, if resumed).
        self.say: Callable[[str], None] = lambda line: None
        self.poll_seconds = poll_seconds
        self.exchange = exchange
        self.clock = MarketClock(speed)
        ticker = TickerService(
            clock=lambda: self.clock.now_ms() / 1000,
            stale_after_seconds=max(60.0, 3 * poll_seconds * speed),
        )
        tracing = PositionTracer(tracer, clock=ticker.clock)
        if recorder is not None:
            recorder.clock = ticker.clock
        manager = PositionManager(
            LiveExecutor(exchange, timing=config.live.timing),
            ticker,
            config.trading,
            tracing=tracing,
            run_nonce=run_nonce,
            journal=recorder,
            listeners=[] if recorder is None else [recorder],
        )
        quote = pairs[0].spot.quote
        self.starting_balance = account.balance(quote)
        super().__init__(
            pairs,
            manager,
            account,
            ticker,
            Ledger({quote: self.starting_balance}),
            leverage=config.live.leverage,
            label=label,
            journal=recorder,
        )
        self.live_account = account
        self.held_where = "on the venue"
        self.market = LiveMarket(exchange, pairs, ticker, self.clock)
        self.skipped = skipped

    @classmethod
    async def connect(
        cls,
        config: Config,
        exchange: Any,
        strategies: Sequence[Strategy],
        *,
        tracer: Tracer | None = None,
        label: str = "strategy",
        speed: float = 1.0,
        poll_seconds: float | None = None,
        run_nonce: str | None = None,
        recorder: JournalRecorder | None = None,
        own_perps: Collection[str] = (),
    ) -> LiveRun:
        """Markets, pairs, account and leverage, in that order; StartupError if off.
        ``own_perps``: perp symbols whose positions a resumed run's journal holds (its
        own, not another's)."""
        try:
            return await cls._connect(
                config,
                exchange,
                strategies,
                tracer=tracer,
                label=label,
                speed=speed,
                poll_seconds=poll_seconds,
                run_nonce=run_nonce,
                recorder=recorder,
                own_perps=own_perps,
            )
        except ccxt.BaseError as exc:
            raise StartupError(
                f"live run not started, nothing sent: the venue could not be used: "
                f"{describe(exchange, exc)}"
            ) from None

    @classmethod
    async def _connect(
        cls,
        config: Config,
        exchange: Any,
        strategies: Sequence[Strategy],
        *,
        tracer: Tracer | None,
        label: str,
        speed: float,
        poll_seconds: float | None,
        run_nonce: str | None,
        recorder: JournalRecorder | None,
        own_perps: Collection[str],
    ) -> LiveRun:
        await read(exchange.load_markets)
        instruments = check_markets(exchange, config.pairs)
        pairs = [
            PairRun(p, instruments[p.spot], instruments[p.perp], s)
            for p, s in zip(config.pairs, strategies, strict=True)
        ]
        account = LiveAccount(exchange, [run.perp.symbol for run in pairs])
        await account.refresh()
        skipped = []
        for run in pairs:
            foreign = account.get_perp_position(run.perp.symbol)
            if foreign.size and run.perp.symbol not in own_perps:
                # Not this run's: reported and left alone, and so is its pair.
                run.ended = True
                skipped.append(
                    f"{run.perp.symbol}: the account already holds {foreign.size} contracts "
                    f"at {foreign.entry_price} that this run did not open; left alone, and "
                    f"{run.name} is not traded"
                )
        for run in pairs:
            if not run.ended:
                await set_leverage(exchange, run.perp.symbol, config.live.leverage)
        return cls(
            config,
            exchange,
            pairs,
            account,
            tracer=tracer,
            label=label,
            speed=speed,
            poll_seconds=config.live.poll_seconds if poll_seconds is None else poll_seconds,
            run_nonce=run_nonce or new_run_nonce(),
            skipped=skipped,
            recorder=recorder,
        )

    async def run(
        self,
        stop: StopFlag,
        *,
        until_ms: int | None = None,
        after_cycle: Callable[[], Awaitable[None]] | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Trade until ``stop`` is set (or the market's clock reaches ``until_ms``).
        ``after_cycle`` moves the market on (a rehearsal moves the venue's market clock
        an hour): once after the start, then after each read-decide cycle.
        ``progress``: (market hours done, hours in all) after each cycle, with ``until_ms``."""
        with exact(), stopping_whole():
            return await self._run(stop, until_ms, after_cycle, progress)

    async def _run(
        self,
        stop: StopFlag,
        until_ms: int | None,
        after_cycle: Callable[[], Awaitable[None]] | None,
        progress: Progress | None,
    ) -> RunResult:
        strategy = self.config.strategy
        self.clock.set(int(await read(self.exchange.fetch_time)))
        # The rates settled by the start, as a replay of a window is warmed up (window.py).
        await self.market.warm_up(max(strategy.funding_window, strategy.negative_streak))
        fresh = self.start_ms is None
        if self.start_ms is None:
            self.start_ms = self.clock.now_ms()
            if self.recorder is not None:
                self.recorder.record_meta(START_MS, str(self.start_ms))
                self.recorder.record_meta(STARTING_BALANCE, str(self.starting_balance))
        start_ms = self.start_ms
        for run in self.pairs:
            run.first_ms, run.end_ms = start_ms, FOREVER_MS
        if fresh:  # the starting balance at the start, as a replay samples it
            self.clock_ms = start_ms
            self.sample_equity()
        holders: dict[int, tuple[str, int]] = {}  # pair -> (position id, since ms): funding due
        async with anyio.create_task_group() as tg:
            self.attach(tg)
            if after_cycle is not None:
                await after_cycle()  # a rehearsal: the first hour of its window has closed
            while not stop.is_set():
                # As in a replay: prices, then funding settled on what was held, then
                # the decisions, then the equity.
                try:
                    touched = await self.market.poll()
                except ccxt.NetworkError as exc:
                    # The venue is out of reach for now (reads were retried): what is
                    # held stays hedged; try again next cycle.
                    self._unreachable(exc)
                    await self._wait(stop)
                    continue
                self.clock_ms = self.clock.now_ms()
                if self.restored:
                    await self._carry_on()
                if self.market.polls == 1:
                    self.say(self._trading())
                for i, when, rate in await self.market.settlements():
                    run = self.pairs[i]
                    if run.position is not None and run.position.perp_qty > 0:
                        holders.setdefault(i, (run.position.id, when))
                    run.strategy.on_funding(rate)
                    run.funding_rates.append((when, rate))
                await self._record_funding(holders)
                await self.live_account.refresh()
                traded = len(self.ledger.entries)
                await self.decide(touched)
                if until_ms is not None and self.clock_ms >= until_ms:
                    break  # the last hour: sampled once what is held is closed
                if len(self.ledger.entries) != traded:
                    await self.live_account.refresh()  # the decisions' fills, in the equity
                self.sample_equity()
                if progress is not None and until_ms is not None:
                    progress(
                        (self.clock_ms - start_ms) // HOUR_MS, (until_ms - start_ms) // HOUR_MS
                    )
                if after_cycle is not None:
                    await after_cycle()
                await self._wait(stop)
            self.clock_ms = self.clock.now_ms()
            if not stop.is_set():
                await self.close_all("end of data")
            else:
                self.stopping()
                if self.config.live.on_stop == "close":
                    await self.close_all("run stopped")
            tg.cancel_scope.cancel()  # positions left open stay in their state
        if progress is not None and until_ms is not None:
            progress((self.clock_ms - start_ms) // HOUR_MS, (until_ms - start_ms) // HOUR_MS)
        await self._record_funding(holders, last=True)
        for run in self.pairs:
            run.end_ms = self.clock_ms  # the window the figures cover ends here
        await self.live_account.refresh()
        self.sample_equity(force=True)
        self.notes[:0] = self.skipped
        return self.finish(
            start_ms=start_ms,
            starting_balance=self.starting_balance,
            ending_balance=self.live_account.balance(self.quote),
            events=self.market.polls,
            interrupted=stop.is_set(),
        )

    def _trading(self) -> str:
        pairs = ", ".join(run.name for run in self.pairs if not run.ended) or "no pair"
        held = [f"{run.position.id} {run.position.state}" for run in self.pairs if run.position]
        return f"trading {pairs}" + (f"; holding {', '.join(held)}" if held else "")

    async def _carry_on(self) -> None:
        """The positions a resumed run took back: each finished where it stood, and
        what the venue paid them while the run was away recorded."""
        restored, self.restored = self.restored, []
        for run, position in restored:
            with anyio.CancelScope(shield=True):
                await self.carry_on(run, position, self.ledgered, self.quotes)
            if run.position is not position or position.perp_qty == 0:
                continue
            recorded = [
                e.time_ms
                for e in self.ledger.entries
                if e.kind == "funding" and e.position_id == position.id
            ]
            opened = position.opened_at or position.created_at
            first = int(opened.timestamp() * 1000) if opened else self.start_ms or 0
            since = max(recorded, default=first) + 1
            paid = await self.market.funding_paid(run, since)
            for payment in paid:
                run.cash += self.ledger.record_funding(
                    payment.time_ms,
                    run.name,
                    position.id,
                    run.perp.symbol,
                    payment.quantity,
                    payment.price,
                    payment.rate,
                    payment.received,
                )
            self.journal_money()

    async def _wait(self, stop: StopFlag) -> None:
        with anyio.move_on_after(self.poll_seconds):
            # The stop flag is set from a signal handler (a threading.Event): looked at
            # every 0.1 s.
            while not stop.is_set():  # noqa: ASYNC110
                await anyio.sleep(min(0.1, self.poll_seconds))

    def _unreachable(self, exc: BaseException) -> None:
        note = f"the venue was out of reach at times: {describe(self.exchange, exc)}"
        if note not in self.notes:
            self.notes.append(note)

    async def _record_funding(
        self, holders: dict[int, tuple[str, int]], *, last: bool = False
    ) -> None:
        """What the venue paid or charged the positions held at each settlement
        (``last``: the run ends, what is not found now is said)."""
        for i, (position_id, since) in list(holders.items()):
            run = self.pairs[i]
            found = await self.market.funding_paid(run, since)
            for paid in found:
                run.cash += self.ledger.record_funding(
                    paid.time_ms,
                    run.name,
                    position_id,
                    run.perp.symbol,
                    paid.quantity,
                    paid.price,
                    paid.rate,
                    paid.received,
                )
            if found:
                self.journal_money()
                del holders[i]
            elif last or self.clock_ms - since > 3_600_000:
                self.notes.append(
                    f"{run.name}: no funding execution found for the settlement at "
                    f"{datetime.fromtimestamp(since / 1000, UTC):%Y-%m-%d %H:%M} UTC"
                )
                del holders[i]
