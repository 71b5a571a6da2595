"""A live run: the same strategy, manager and accounting as a replay (trader.py),
on the venue's prices and through the LiveExecutor.

Built by startup.py's ``connect`` (read-only checks). When it runs, each perp's
leverage is set (after a resume's reconciliation); then, every ``live.poll_seconds``:
read prices, feed settled funding to the strategies and record what the venue paid,
read the account, take in what changed outside the run, carry out the operator's
requests (steering.py), decide, sample the equity: the replay's order
(orchestrator/replay/window.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import ccxt
from opentelemetry.trace import Tracer

from orchestrator.bybit.client import describe, repeated_refusal
from orchestrator.bybit.retry import read_venue as read
from orchestrator.config import Config
from orchestrator.exceptions import OrderOutcomeUnknown
from orchestrator.execution.live import LiveExecutor
from orchestrator.execution.paper import PaperExecutor
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.journal.status import LAST_CYCLE, PAUSED
from orchestrator.live import words
from orchestrator.live.account import LiveAccount, PaperAccount
from orchestrator.live.contact import VenueContact
from orchestrator.live.market import LiveMarket, MarketClock
from orchestrator.live.preflight import (
    AccountShape,
    StartupError,
    set_leverage,
)
from orchestrator.live.steering import Steered
from orchestrator.market.records import market_id
from orchestrator.market.ticker import TickerService
from orchestrator.models import (
    UNEXPLAINED,
    ZERO,
    Holdings,
    OrderResult,
    OrderStatus,
    Position,
    Side,
)
from orchestrator.money import exact
from orchestrator.position.manager import PositionManager
from orchestrator.position.tracer import PositionTracer
from orchestrator.risk import RiskManager
from orchestrator.trading.holding import CLOSES_FAILED
from orchestrator.trading.ledger import Ledger
from orchestrator.trading.ranking import Ranking
from orchestrator.trading.run import PairRun, Progress, RunResult, StopFlag, stopping_whole

# Journal meta a live run writes when it starts: what its figures count from.
STARTING_BALANCE = "starting_balance"
START_MS = "start_ms"
FOREVER_MS = 2**62  # a live pair's data never ends
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Journal meta: "running" while a live run trades, "stopped" once it has stopped; a resume
# that finds "running" carries on a run that died (killed, crashed, the machine lost).
RUN_STATE = "live_state"


ADOPTABLE = frozenset({"validated", "needs_attention"})


class LiveRun(Steered):
    """Built by ``startup.connect``, which does the startup checks."""

    def __init__(
        self,
        config: Config,
        exchange: Any,
        pairs: list[PairRun],
        account: LiveAccount | None,
        *,
        tracer: Tracer | None,
        label: str,
        speed: float,
        poll_seconds: float,
        run_nonce: str,
        skipped: list[str],
        shape: AccountShape,
        recorder: JournalRecorder | None = None,
    ) -> None:
        """``account`` None: a dry run, paper fills on the venue's live prices."""
        self.config = config
        self.recorder = recorder
        # The operator's requests (steering.py): none until the session gives its box.
        self.control = None
        self.asked_to_stop = None
        # Why the venue refused the run's key mid-run (revoked, a permission withdrawn):
        # the run stops, leaving the positions as they are.
        self.refused: str | None = None
        self.close_on_stop = lambda: False
        # A resumed run: positions taken back from the journal, carried on once the
        # first prices are in; and the client order ids its ledger already has.
        self.restored: list[tuple[PairRun, Position]] = []
        self.ledgered: set[str] = set()
        self.quotes: dict[str, Decimal] = {}  # their fills' quoted prices, by client order id
        self.start_ms: int | None = None
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
        # A dry run's venue is a PaperExecutor in this process, filling at the live prices;
        # its account is that executor's virtual wallet, read as the venue's would be.
        self.paper: PaperExecutor | None = None
        self.executor: LiveExecutor | PaperExecutor
        held: LiveAccount | PaperAccount
        if account is None:
            instruments = [i for run in pairs for i in (run.spot, run.perp)]
            self.paper = PaperExecutor(
                ticker,
                config.fees,
                instruments,
                slippage=config.paper.slippage,
                leverage=config.paper.leverage,
            )
            for currency, amount in config.balances.items():
                self.paper.set_initial_balance(currency, amount)
            self.executor, held = self.paper, PaperAccount(self.paper)
        else:
            self.executor = LiveExecutor(exchange, timing=config.live.timing, hedged=shape.hedged)
            held = account
        manager = PositionManager(
            self.executor,
            ticker,
            config.trading,
            risk=RiskManager(config.trading, config.risk.portfolio_limits()),
            tracing=tracing,
            run_nonce=run_nonce,
            journal=recorder,
            listeners=[] if recorder is None else [recorder],
        )
        quote = pairs[0].spot.quote
        self.starting_balance = held.balance(quote)
        super().__init__(
            pairs,
            manager,
            self.paper or held,  # the paper executor: its wallet is journaled as a replay's
            ticker,
            Ledger(
                dict(config.balances) if self.paper else {quote: self.starting_balance},
                on_money=tracing.money,
            ),
            leverage=config.paper.leverage if self.paper else config.live.leverage,
            label=label,
            journal=recorder,
            risk=config.risk,
            # A dry run models the paper short's margin; a live run reads the venue's.
            maintenance_margin_rate=config.paper.maintenance_margin_rate if self.paper else None,
            concurrent=True,
        )
        self.live_account = held
        if isinstance(held, LiveAccount):  # a reading that predates a fill is not used
            self.books.readings = held
        self.held_where = "in the dry run's paper account" if self.paper else "on the venue"
        self.market = LiveMarket(exchange, pairs, ticker, self.clock)
        self.skipped = skipped
        self.shape = shape
        self.contact = VenueContact(lambda line: self.say(line))
        self._beat_at = time.monotonic()
        self._told_trading = False
        self._margin_warned = False  # the account's margin said to be past margin_warn
        # Pairs whose perp the account holds a position of that is not the run's (said
        # once while it lasts); per held position, the cycles in a row its short has been
        # found smaller on the venue with no execution to explain it.
        self._occupied_said: set[str] = set()
        self._paused_said = "{}"  # the pauses last journaled (PAUSED)
        self._unexplained_seen: dict[str, int] = {}
        # Alerts: a resumed run says why it was resumed ("after a crash"...), the outage
        # alerted (its start), the daily summary's day and what it counts from.
        self.resumed: str | None = None
        # The venue, as alerts name it (never a URL: it could carry a password).
        self.where = "the venue at live.url" if config.live.url else f"Bybit {config.network}"
        self._lost_alerted: float | None = None
        self._summary_day: int | None = None
        self._summary_from: tuple[int, Decimal, Decimal] = (0, ZERO, ZERO)

    def rank_pairs(self, rates: Mapping[str, list[tuple[int, Decimal]]]) -> None:
        """pairs: auto (live/auto.py): opens go to the best-ranked of the pairs chosen at
        the start, rotations as in a replay; ``rates``: each perp's settled rates over the
        universe's history span, read when choosing (the warm-up takes them as known)."""
        c = self.config
        self.market.known = rates
        self.ranking = Ranking(self.pairs, c.universe, c.fees, c.paper.slippage, chosen=True)

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
            try:
                result = await self._run(stop, until_ms, after_cycle, progress)
            except Exception as exc:
                if self.alert is not None:
                    self.alert("stopped", f"the run stopped on an error: {exc}")
                raise
            if self.alert is not None:
                self.alert("stopped", words.stopped(result))
            if self.recorder is not None:
                self.recorder.record_meta(RUN_STATE, "stopped")
            return result

    async def _run(
        self,
        stop: StopFlag,
        until_ms: int | None,
        after_cycle: Callable[[], Awaitable[None]] | None,
        progress: Progress | None,
    ) -> RunResult:
        strategy = self.config.strategy
        for line in self.shape.notes:
            self.say(f"warning: {line}")
        try:
            # The first write: after the startup's checks and, when resuming, after the
            # journal and the venue were found to agree.
            for run in self.pairs:
                if not run.ended and self.paper is None:
                    await set_leverage(self.exchange, run.perp.symbol, self.config.live.leverage)
            self.clock.set(int(await read(self.exchange.fetch_time)))
            # The rates settled by the start, as a replay of a window is warmed up.
            await self.market.warm_up(max(strategy.funding_window, strategy.negative_streak))
        except ccxt.BaseError as exc:
            raise StartupError(
                "live run not started, no order sent: the venue could not be read: "
                f"{describe(self.exchange, exc)}"
            ) from None
        self.contact.reached()
        if self.recorder is not None:
            self.recorder.record_meta(RUN_STATE, "running")
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
            while not stop.is_set() and self.asked_to_stop is None:
                # As in a replay: prices, then funding settled on what was held, then
                # the decisions, then the equity; only on a cycle whose reads all came.
                try:
                    touched = await self._read_cycle(holders)
                except ccxt.AuthenticationError as exc:
                    self._key_refused(exc)
                    break
                except ccxt.BaseError as exc:
                    # Reads were retried (network errors, Bybit's "try again later"):
                    # what is held stays as it is, nothing opens on prices going stale;
                    # said at once, read again with backoff. A refusal other than the
                    # key's is waited out the same way: nothing is decided blind.
                    self.contact.lost(describe(self.exchange, exc))
                    if self.alert is not None:
                        self._alert_unreachable()
                    self._heartbeat()
                    await self._wait(stop, self.contact.wait_seconds(self.poll_seconds))
                    continue
                self.contact.reached()
                if self._lost_alerted is not None:
                    self._alert_back()
                await self.obey()
                if self.asked_to_stop is not None:
                    break  # nothing more is decided: the stop comes first
                if not self._told_trading:
                    self._told_trading = True
                    self.say(words.trading(self.pairs))
                    if self.alert is not None:
                        self._alert_start()
                traded = len(self.books.ledger.entries)
                await self.decide(touched)
                if after_cycle is not None:
                    # A rehearsal's market moves on after the cycle: its decisions are
                    # carried out on this cycle's prices, as a replay's are.
                    await self.settle()
                if until_ms is not None and self.clock_ms >= until_ms:
                    break  # the last hour: sampled once what is held is closed
                if len(self.books.ledger.entries) != traded:
                    try:
                        await self.live_account.refresh()  # the decisions' fills, in the equity
                    except ccxt.AuthenticationError as exc:
                        self._key_refused(exc)
                        break
                    except ccxt.BaseError:
                        pass  # the sample uses the last reading; the next cycle reads again
                self.sample_equity()
                if self.alert is not None:
                    self._daily_summary()
                if progress is not None and until_ms is not None:
                    progress(
                        (self.clock_ms - start_ms) // HOUR_MS, (until_ms - start_ms) // HOUR_MS
                    )
                if after_cycle is not None:
                    await after_cycle()
                self._journal_cycle()
                self._heartbeat()
                await self._wait(stop, self.poll_seconds)
            await self.settle()  # an open or close under way is finished
            self.clock_ms = self.clock.now_ms()
            stopped = stop.is_set() or self.asked_to_stop is not None or self.refused is not None
            if not stopped:
                await self.close_all("end of data")
            else:
                self.stopping()
                closing = self.config.live.on_stop == "close" or self.close_on_stop()
                if closing and self.refused is None:  # a refused key can close nothing
                    await self.close_all("run stopped")
            tg.cancel_scope.cancel()  # positions left open stay in their state
        if progress is not None and until_ms is not None:
            progress((self.clock_ms - start_ms) // HOUR_MS, (until_ms - start_ms) // HOUR_MS)
        await self._read_at_end(holders)
        self._journal_paused()  # as the run leaves them: a resume starts from there
        for run in self.pairs:
            run.end_ms = self.clock_ms  # the window the figures cover ends here
        self.sample_equity(force=True)
        self.notes[:0] = self.skipped + self.shape.notes
        outages = self.contact.note()
        if outages is not None:
            self.notes.append(outages)
        result = self.finish(
            start_ms=start_ms,
            starting_balance=self.starting_balance,
            ending_balance=self.live_account.balance(self.quote),
            events=self.market.polls,
            interrupted=stop.is_set() or self.asked_to_stop is not None or self.refused is not None,
        )
        result.refused = self.refused
        return result

    def _key_refused(self, exc: ccxt.AuthenticationError) -> None:
        """The venue refuses the run's key (revoked, a permission withdrawn, an IP no
        longer allowed, the account frozen): nothing can be read or sent with it, and
        reading again would be refused again. The run stops; what is held stays."""
        said = repeated_refusal(str(exc))
        cause = said[0] if said is not None else describe(self.exchange, exc)
        self.refused = f"the venue refused the API key ({cause})"
        held = [f"{run.position.id} {run.position.state}" for run in self.pairs if run.position]
        self._tell(
            f"{self.refused}: the run stops; positions are left as they are {self.held_where}"
            f" ({', '.join(held) or 'none held'}), nothing more is sent. Check the key (its "
            "permissions, its IP addresses, whether it was revoked), then "
            "`orchestrator run --resume RUN_DIR` carries the run on"
        )

    async def _read_cycle(self, holders: dict[int, tuple[str, int]]) -> set[int]:
        """One cycle's reads: prices, the restored positions carried on, settlements
        and what the venue paid for them, the account. Returns the pairs whose prices
        came; a ccxt error when the venue could not be read."""
        touched = await self.market.poll()
        self.clock_ms = self.clock.now_ms()
        if self.restored:
            await self._carry_on()
        for i, when, rate in await self.market.settlements():
            run = self.pairs[i]
            holder = self._holder_at(run, when)
            if holder is not None and self.paper is not None:
                self._settle_on_paper(run, holder, when, rate)
            elif holder is not None:
                holders.setdefault(i, (holder, when))
            run.strategy.on_funding(rate)
            run.funding_rates.append((when, rate))
            held = run.position
            if rate < 0 and held is not None and held.state == "validated" and self.alert:
                self.alert(
                    "funding_negative",
                    f"{run.name}: funding settled at {rate:.4%} at {words.utc(when)}: the perp "
                    f"short of {held.id} pays it instead of receiving it",
                )
        await self._record_funding(holders)
        await self.live_account.refresh()
        self._guard_account_margin()
        await self._adopt_outside_changes()
        return touched

    async def _adopt_outside_changes(self) -> None:
        """Every held position's legs against what the venue shows. Less than the record
        holds (a close by hand, auto-deleveraging, a liquidation, coins moved out) is
        taken into the record at the venue's prices, said, and the rest closed: the pair
        is flat and trades again. More is the owner's, and left alone."""
        if not isinstance(self.executor, LiveExecutor):
            return  # a dry run's paper account changes by its own orders only
        for run in self.pairs:
            position = run.position
            if position is None or run.busy or position.state not in ADOPTABLE:
                continue
            perp = self.live_account.get_perp_position(run.perp.symbol)
            held = Holdings(
                spot=self.live_account.available_balance(run.spot.base),
                perp_short=-perp.size if perp.size < 0 else ZERO,
            )
            if held.spot >= position.spot_qty and held.perp_short >= position.perp_qty:
                continue
            began = position.created_at or position.opened_at
            since = int(began.timestamp() * 1000) if began else self.start_ms or 0
            known = {r.order_id for r in position.orders}
            try:
                trades = await self.executor.outside_trades((run.spot, run.perp), since, known)
            except OrderOutcomeUnknown as exc:  # read again next cycle
                note = f"{run.name}: the venue's executions could not be read: {exc}"
                if note not in self.notes:
                    self.notes.append(note)
                continue
            adopted = self.manager.adopt(position.id, trades, held)
            vanished = None if adopted else self._unexplained(run, position, held)
            if vanished is not None:
                adopted = self.manager.adopt(position.id, [vanished], held)
            if not adopted:
                continue  # the venue's record of it lags: next cycle
            self._unexplained_seen.pop(position.id, None)
            quotes = {r.client_order_id: r.avg_price or ZERO for r in adopted}
            self.books.record_orders(self.clock_ms, run, position, adopted, quotes)
            what = "; ".join(words.outside(r) for r in adopted)
            self._tell(
                f"{run.name}: {position.id} changed outside the run: {what}. Taken into its "
                "record at the venue's prices; closing what is left"
            )
            if vanished is not None:  # something the run cannot see did this: the operator looks
                self._pause(run, f"its perp short went without an execution: {what}")
            run.close_paused = None  # the owner acted: the close is tried again
            if run.open_paused is not None and run.open_paused.startswith(CLOSES_FAILED):
                run.open_paused = None
            await self._act(run, self._close(run, f"changed outside the run: {what}"))

    # Cycles in a row a short is found smaller than the record with no execution to say
    # why before it is taken in (the venue's lists may lag its positions a little).
    UNEXPLAINED_CYCLES = 3

    def _unexplained(self, run: PairRun, position: Position, held: Holdings) -> OrderResult | None:
        """The perp short the venue shows less of than the record, with no execution
        found for it (a delisting's settlement, a venue's own correction), once found so
        UNEXPLAINED_CYCLES cycles in a row: as a buy-back at the last price, to be taken
        into the record, so that what is left is closed and nothing stays unhedged."""
        gone = position.perp_qty - held.perp_short
        if gone <= 0:
            self._unexplained_seen.pop(position.id, None)
            return None
        seen = self._unexplained_seen[position.id] = self._unexplained_seen.get(position.id, 0) + 1
        if seen < self.UNEXPLAINED_CYCLES:
            return None
        price = self.books.last(run.perp.symbol)
        return OrderResult(
            client_order_id="",
            order_id=f"unexplained-{position.id}-{self.clock_ms}",
            symbol=run.perp.symbol,
            side=Side.BUY,
            category=run.perp.category,
            status=OrderStatus.FILLED,
            requested_qty=gone,
            filled_qty=gone,
            avg_price=price,
            fee=ZERO,
            fee_currency=run.perp.quote,
            is_simulated=False,
            exec_type=UNEXPLAINED,
        )

    async def _listed(self, run: PairRun) -> bool:
        """Both legs' instruments as the venue lists them now (its instruments-info,
        two small reads before each open): a market no longer Trading (being delisted,
        settling, halted) gets no new position, and the pair pauses, said once; what it
        holds stays. A venue that cannot say now: no open this cycle."""
        for category, inst in (("spot", run.spot), ("linear", run.perp)):
            call = partial(
                self.exchange.publicGetV5MarketInstrumentsInfo,
                {"category": category, "symbol": market_id(inst.symbol)},
            )
            try:
                answer = await read(call)
                entries = answer["result"]["list"]
                status = str(entries[0].get("status")) if entries else "not listed"
            except (ccxt.BaseError, KeyError, IndexError, TypeError, AttributeError):
                return False
            if status != "Trading":
                self._pause(
                    run,
                    f"the venue lists {inst.symbol} as {status}, not Trading: no new "
                    "position there (what is held stays; orchestrator close closes it)",
                )
                return False
        return True

    def _occupied(self, run: PairRun) -> bool:
        """The account holds a position on the pair's perp that this run did not open
        (the owner's, bought or sold by hand while the pair was flat): an open would net
        against it, so none is made while it is there; said once."""
        if self.paper is not None:
            return False
        size = self.live_account.get_perp_position(run.perp.symbol).size
        if not size:
            self._occupied_said.discard(run.name)
            return False
        if run.name not in self._occupied_said:
            self._occupied_said.add(run.name)
            self._tell(
                f"{run.name}: the account holds {size} {run.perp.symbol} contracts that this "
                "run did not open: left alone, and the pair opens nothing while they are there"
            )
        return True

    def _guard_account_margin(self) -> None:
        """Live: the margin guard on Bybit's own figure, the account's maintenance margin
        over its margin balance (``accountMMRate``; the venue liquidates at 1). At
        ``risk.margin_act`` the position nearest to liquidation (its short's loss against
        its entry the largest) is closed at this cycle's decisions, both legs together;
        at ``risk.margin_warn`` the run says so, once until the rate falls back below."""
        if not isinstance(self.live_account, LiveAccount):
            return  # a dry run: the paper short's own model (trading/margin.py)
        rate = self.live_account.mm_rate
        held = [
            run
            for run in self.pairs
            if run.position is not None and run.position.state == "validated" and not run.busy
        ]
        if rate is None or not held:
            return
        for run in held:
            run.worst_margin = rate if run.worst_margin is None else max(run.worst_margin, rate)
        act, warn = self.risk.margin_act, self.risk.margin_warn
        if rate < warn:
            self._margin_warned = False
            return
        if rate < act:
            if not self._margin_warned:
                self._margin_warned = True
                self._tell(
                    f"the account's maintenance margin is {rate:.0%} of its margin balance "
                    f"(Bybit's accountMMRate; warns at {warn:.0%}, the guard acts at "
                    f"{act:.0%}, the venue liquidates at 100%)",
                    kind="margin",
                )
            return

        def loss(run: PairRun) -> Decimal:
            assert run.position is not None
            entry = run.position.perp_entry_price or self.books.last(run.perp.symbol)
            return (self.books.last(run.perp.symbol) - entry) / entry if entry else ZERO

        worst = max(held, key=loss)
        if worst.margin_due is None and worst.position is not None:
            worst.margin_due = (
                f"margin guard: the account's maintenance margin is {rate:.0%} of its margin "
                f"balance (Bybit's accountMMRate; acts at {act:.0%}, the venue liquidates "
                "at 100%)"
            )
            self._tell(
                f"{worst.name}: {worst.position.id}, the position nearest to liquidation, "
                f"closed by the {worst.margin_due}",
                kind="margin",
            )

    def _settle_on_paper(self, run: PairRun, holder: str, when_ms: int, rate: Decimal) -> None:
        """A dry run: the venue's settlement paid on the paper short, at the perp's last
        price, as a replay pays it (Bybit's own record of it is the real account's)."""
        assert self.paper is not None
        position = run.position
        if position is None or position.id != holder:
            # Held at the settlement, closed before the run read it: a paper close is
            # instant, so only a settlement read late (the venue lost a while) lands here.
            when = datetime.fromtimestamp(when_ms / 1000, UTC)
            self.notes.append(
                f"{run.name}: the settlement at {when:%Y-%m-%d %H:%M} UTC was read after "
                f"{holder} closed; not paid in the dry run"
            )
            return
        price = self.books.last(run.perp.symbol)
        quantity = abs(self.paper.get_perp_position(run.perp.symbol).size)
        amount = self.paper.settle_funding(run.perp.symbol, rate, price)
        if amount:
            self.books.funding(when_ms, run, holder, quantity, price, rate, amount)
            self.books.journal_money()

    def _holder_at(self, run: PairRun, when_ms: int) -> str | None:
        """The position of ``run``'s pair that held the perp short at ``when_ms``: the
        settlement's own time, not when the run read it (a close may have been under
        way, or finished, since)."""
        for position in reversed(self.books.positions):
            if (position.spot_symbol, position.perp_symbol) != (run.spot.symbol, run.perp.symbol):
                continue
            if position.state in ("rejected", "rolled_back"):
                continue  # never held the short
            began = position.opened_at or position.created_at
            ended = position.closed_at
            if began is None or int(began.timestamp() * 1000) >= when_ms:
                continue
            if ended is None or int(ended.timestamp() * 1000) >= when_ms:
                return position.id
        return None

    async def _read_at_end(self, holders: dict[int, tuple[str, int]]) -> None:
        """The funding still due and the final balances; where the venue cannot be read
        now, the last reading stands and the summary says what is missing."""
        missing = []
        try:
            # Settled since the last cycle (a stop's closes take time): to their holders.
            self.clock_ms = self.clock.now_ms()
            for i, when, rate in await self.market.settlements():
                holder = self._holder_at(self.pairs[i], when)
                if holder is not None and self.paper is not None:
                    self._settle_on_paper(self.pairs[i], holder, when, rate)
                elif holder is not None:
                    holders.setdefault(i, (holder, when))
            await self._record_funding(holders, last=True)
        except ccxt.BaseError as exc:
            missing.append(f"the funding of the last settlements ({describe(self.exchange, exc)})")
        try:
            await self.live_account.refresh()
        except ccxt.BaseError as exc:
            missing.append(f"the final balances ({describe(self.exchange, exc)})")
        if missing:
            self.notes.append(
                "at the end the venue could not be read: "
                + "; ".join(missing)
                + f"; the figures use the last reading, {self.contact.last_contact()}"
                + (
                    ", which predates the last fills: the ending equity is the run's own "
                    "record (the starting balance, the fills, fees and funding, what is held "
                    "at the last prices), not the venue's wallet"
                    if self.books.stale()
                    else ""
                )
            )

    def _journal_cycle(self) -> None:
        """The cycle's reads all came: when (the machine's clock), the prices and the
        account, in the journal's meta, where ``orchestrator status`` reads them. One
        small commit, not fsynced (WAL, synchronous=NORMAL): cheap every cycle."""
        if self.recorder is None or self.contact.last_ok is None:
            return
        cycle = {
            "contact_ms": int(self.contact.last_ok * 1000),
            "market_ms": self.clock_ms,
            # round, not int: a quote's time is float seconds, and 1.2345e12 / 1000 * 1000
            # may come back a millisecond short, older than the fills at that instant.
            "prices": {s: [str(p), round(t * 1000)] for s, (p, t) in self.ticker.quotes.items()},
            "balance": {
                "currency": self.quote,
                "total": str(self.live_account.balance(self.quote)),
                "available": str(self.live_account.available_balance(self.quote)),
            },
            "equity": str(self.books.equity_now()),
        }
        self.recorder.record_meta(LAST_CYCLE, json.dumps(cycle, sort_keys=True))
        self._journal_paused()

    def _journal_paused(self) -> None:
        """The pairs paused now, when that changed (a resume restores them, status shows
        them)."""
        paused = {
            run.name: [run.open_paused, run.close_paused]
            for run in self.pairs
            if run.open_paused or run.close_paused
        }
        text = json.dumps(paused, sort_keys=True)
        if self.recorder is not None and text != self._paused_said:
            self._paused_said = text
            self.recorder.record_meta(PAUSED, text)

    # -- alerts (only when the run has them)

    def _alert_start(self) -> None:
        assert self.alert is not None
        equity = self.books.equity_now()
        line = f"{words.trading(self.pairs)} on {self.where}; equity {equity:,.2f} {self.quote}"
        if self.resumed is not None:
            self.alert("resumed", f"resumed {self.resumed}; {line}")
        else:
            self.alert("started", line)

    def _alert_unreachable(self) -> None:
        """Once an outage has lasted ``alerts.venue_lost_seconds``: said once for it."""
        assert self.alert is not None
        since = self.contact.down_since
        if since is None or self._lost_alerted == since:
            return
        lasted = self.contact.clock() - since
        if lasted < self.config.alerts.venue_lost_seconds:
            return
        self._lost_alerted = since
        self.alert(
            "venue_lost",
            f"the venue has not answered for {lasted:.0f} s (since {words.utc(since * 1000)}): "
            f"{self.contact.cause}. Positions are left as they are; nothing opens",
        )

    def _alert_back(self) -> None:
        since, self._lost_alerted = self._lost_alerted, None
        if self.alert is not None and since is not None:
            self.alert(
                "venue_back",
                f"the venue answers again, after {self.contact.clock() - since:.0f} s "
                f"unreachable (since {words.utc(since * 1000)})",
            )

    def _daily_summary(self) -> None:
        """Once a day, when the venue's clock passes ``alerts.daily_summary_hour`` UTC:
        equity, funding since the last summary (or the start) and in all, positions."""
        assert self.alert is not None
        hour = self.config.alerts.daily_summary_hour
        day = (self.clock_ms - hour * HOUR_MS) // DAY_MS
        funding = self.books.ledger.totals()["funding"]
        equity = self.books.equity_now()
        if self._summary_day is None or day <= self._summary_day:
            if self._summary_day is None:
                self._summary_day = day
                self._summary_from = (self.clock_ms, equity, funding)
            return
        then, self._summary_from = self._summary_from, (self.clock_ms, equity, funding)
        self._summary_day = day
        line = words.daily_summary(
            self.pairs, (equity, funding), then, self.quote, self.opening_stopped
        )
        self.alert("daily_summary", line)

    def _heartbeat(self) -> None:
        every = self.config.live.heartbeat_seconds
        now = time.monotonic()
        if not every or now - self._beat_at < every:
            return
        self._beat_at = now
        funding = self.books.ledger.totals()["funding"]
        equity = self.books.equity_now()
        now_ms = self.clock.now_ms()
        self.say(words.heartbeat(self.pairs, now_ms, equity, funding, self.quote, self.contact))

    async def _carry_on(self) -> None:
        """The positions a resumed run took back: each finished where it stood, and
        what the venue paid them while the run was away recorded."""
        while self.restored:  # each one taken off once carried on: a failed read retries it
            run, position = self.restored[0]
            with anyio.CancelScope(shield=True):
                await self.carry_on(run, position, self.ledgered, self.quotes)
            self.restored.pop(0)
            if run.position is not position or position.perp_qty == 0:
                continue
            recorded = [
                e.time_ms
                for e in self.books.ledger.entries
                if e.kind == "funding" and e.position_id == position.id
            ]
            # From when its open began: a crash mid-open leaves opened_at to be set when
            # the resumed run validates it, after the settlements paid while it was down.
            opened = position.created_at or position.opened_at
            first = int(opened.timestamp() * 1000) if opened else self.start_ms or 0
            since = max(recorded, default=first) + 1
            if self.paper is not None:  # paid on the paper short, as it would have been
                paid = await self.market.paper_funding(run, since, position.perp_qty)
                for payment in paid:
                    self.paper.take_back_funding(run.perp.symbol, payment.received)
            else:
                paid = await self.market.funding_paid(run, since)
            for payment in paid:
                self.books.funding(
                    payment.time_ms,
                    run,
                    position.id,
                    payment.quantity,
                    payment.price,
                    payment.rate,
                    payment.received,
                )
            self.books.journal_money()

    async def _wait(self, stop: StopFlag, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            # The stop flag is set from a signal handler (a threading.Event): looked at
            # every 0.1 s.
            while not stop.is_set():  # noqa: ASYNC110
                await anyio.sleep(min(0.1, seconds))

    async def _record_funding(
        self, holders: dict[int, tuple[str, int]], *, last: bool = False
    ) -> None:
        """What the venue paid or charged the positions held at each settlement
        (``last``: the run ends, what is not found now is said)."""
        for i, (position_id, since) in list(holders.items()):
            run = self.pairs[i]
            found = await self.market.funding_paid(run, since)
            for paid in found:
                self.books.funding(
                    paid.time_ms,
                    run,
                    position_id,
                    paid.quantity,
                    paid.price,
                    paid.rate,
                    paid.received,
                )
            if found:
                self.books.journal_money()
                del holders[i]
            elif last or self.clock_ms - since > 3_600_000:
                self.notes.append(
                    f"{run.name}: no funding execution found for the settlement at "
                    f"{datetime.fromtimestamp(since / 1000, UTC):%Y-%m-%d %H:%M} UTC"
                )
                del holders[i]
