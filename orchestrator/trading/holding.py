"""Each pair's position in a task of its own, from its open to its close: the opens
and closes the trader's decisions ask for (trader.py), the breaker (failed opens and
closes pause a pair; a spent budget stops all opening), the limits on opening and the
share of the balance each open may use, the margin guard on the paper short, and the
money (books.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from machines import FINAL_STATES
from orchestrator.bybit.client import repeated_refusal
from orchestrator.config import RiskSettings
from orchestrator.exceptions import (
    InsufficientSizeError,
    OrchestratorError,
    PortfolioLimitReached,
    RunMustStop,
)
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, Position
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.position.manager import PositionManager
from orchestrator.trading import words
from orchestrator.trading.books import Books
from orchestrator.trading.ledger import Ledger, LedgerEntry
from orchestrator.trading.margin import line as margin_line
from orchestrator.trading.margin import ratio as margin_ratio
from orchestrator.trading.ranking import Ranking
from orchestrator.trading.run import Account, MoneyJournal, PairRun, RunResult, quote_of

CLOSES_FAILED = "closes in a row failed"  # how a pause for failed closes begins


class Holder:
    """The pairs' positions, each held in a task of its own, and the money; the trader
    (trader.py) decides, a driver feeds it prices and time (``clock_ms``)."""

    def __init__(
        self,
        pairs: list[PairRun],
        manager: PositionManager,
        account: Account,
        ticker: TickerService,
        ledger: Ledger,
        *,
        leverage: Decimal,
        label: str = "strategy",
        journal: MoneyJournal | None = None,
        risk: RiskSettings | None = None,
        concurrent: bool = False,
        maintenance_margin_rate: Decimal | None = None,
    ) -> None:
        """``maintenance_margin_rate``: the margin guard's paper model of the short
        (margin.py); None where the venue reports the margin (a live run)."""
        self.label = label
        self.mmr = maintenance_margin_rate
        # Live: each pair's open or close runs in a task of its own, so that a slow leg of
        # one pair never holds up another's; a replay acts on each decision before its
        # next instant (its fills are immediate, and its figures must not depend on timing).
        self.concurrent = concurrent
        self._acting = 0
        self._idle = anyio.Event()
        self._idle.set()
        self.risk = risk or RiskSettings()
        # What a failed open may cost in all before opening stops (fees and slippage
        # paid to roll them back), and what they have cost so far.
        self.failed_open_budget = self.risk.failed_open_budget * account.balance(quote_of(pairs))
        self.failed_open_cost = ZERO
        self.opening_stopped: str | None = None
        self.say: Callable[[str], None] = lambda line: None
        # Alerts (orchestrator/alerts): (event, text), queued for the trader's phone. A
        # replay has none: its events are history, replayed in seconds.
        self.alert: Callable[[str, str], None] | None = None
        self.journal = journal
        self.pairs = pairs
        self.quote = quote_of(pairs)
        self.manager = manager
        self.account = account
        self.ticker = ticker
        self.leverage = leverage
        self.clock_ms = 0
        self.books = Books(
            pairs,
            account,
            ticker,
            ledger,
            label=label,
            journal=journal,
            leverage=leverage,
            maintenance_margin_rate=maintenance_margin_rate,
        )
        self.notes: list[str] = []
        self._tg: TaskGroup | None = None
        # The positions open when a stop came (the driver says when), and where what is
        # left open is held: said when the run ends.
        self.at_stop: list[Position] | None = None
        self.held_where = "in the paper account"
        # pairs: auto (ranking.py): opens go to the best-ranked pairs the universe
        # considers, the balance shared among the opens of one instant.
        self.ranking: Ranking | None = None
        self._share: int | None = None
        self.rotations: list[str] = []
        # A replay's open exposure, worked out once per instant and action (_open_exposure).
        self._acts = 0
        self._exposure_at: tuple[int, int] | None = None
        self._exposure_now: tuple[int, Decimal] = (0, ZERO)

    def attach(self, tg: TaskGroup) -> None:
        """The task group the positions' tasks run in (the driver's)."""
        self._tg = tg

    # -- the margin guard

    def _margin_guard(self, run: PairRun, perp: Decimal) -> str | None:
        """Why the guard closes the pair's position now (None: it does not): its short's
        margin at ``risk.margin_act`` (paper: margin.py at the perp price; live: the
        venue's own figure, ``margin_due``). At ``risk.margin_warn`` it says so once."""
        if run.margin_due is not None:
            return run.margin_due
        margin, position = run.margin_line, run.position
        if margin is None or position is None or perp < margin.warn or self.mmr is None:
            return None
        entry = position.perp_entry_price
        if entry is None or position.perp_qty <= 0:
            return None  # no short left to guard
        now = margin_ratio(entry, perp, self.leverage, self.mmr)
        if run.worst_margin is None or now > run.worst_margin:
            run.worst_margin = now
        if perp >= margin.liquidation:
            # One price step jumped past both: the venue would have liquidated it first.
            reason = (
                f"margin guard: the perp at {perp} is past the short's liquidation near "
                f"{margin.liquidation:.2f}; the venue would have liquidated it (closed here "
                "at this price, which a liquidation would not have given)"
            )
            self._tell(f"{run.name}: {position.id} closed by the {reason}", kind="margin")
            return reason
        if perp >= margin.act:
            reason = (
                f"margin guard: the short's maintenance margin is {now:.0%} of its margin at "
                f"{perp} (acts at {self.risk.margin_act:.0%}; liquidation near "
                f"{margin.liquidation:.2f})"
            )
            self._tell(f"{run.name}: {position.id} closed by the {reason}", kind="margin")
            return reason
        if not run.margin_warned:
            run.margin_warned = True
            self._tell(
                f"{run.name}: {position.id}'s maintenance margin is {now:.0%} of its margin "
                f"at {perp} (warns at {self.risk.margin_warn:.0%}); the guard closes it at "
                f"{margin.act:.2f}, before liquidation near {margin.liquidation:.2f}",
                kind="margin",
            )
        return None

    @staticmethod
    def _stranded(run: PairRun) -> str | None:
        """Why a position left needing attention (an open or close that left exposure)
        is closed now, whatever the exit rules say: what it holds is not hedged. Its
        closes are tried at each decision until they succeed or fail
        risk.max_failed_closes times in a row (then the operator must act)."""
        position = run.position
        if position is None or position.state != "needs_attention":
            return None
        return f"closing what is left unhedged: {position.reason}"

    def _watch_margin(self, run: PairRun, position: Position) -> None:
        """The held short's margin line, from its entry (paper model only)."""
        run.margin_warned, run.margin_due = False, None
        entry = position.perp_entry_price
        if self.mmr is None or entry is None or position.perp_qty <= 0:
            run.margin_line = None
            return
        risk = self.risk
        run.margin_line = margin_line(
            entry, self.leverage, self.mmr, risk.margin_warn, risk.margin_act
        )

    # -- opens and closes, as decided

    async def _act(self, run: PairRun, action: Coroutine[Any, Any, None]) -> None:
        """Carry out an open or close: now, or (concurrent) in a task of the run's group
        while the other pairs go on deciding."""
        if not self.concurrent:
            try:
                await action
            finally:
                self._acts += 1  # what is open may have changed
            return
        assert self._tg is not None
        run.busy = True
        self._acting += 1
        self._idle = anyio.Event()
        self._tg.start_soon(self._acting_on, run, action)

    async def _acting_on(self, run: PairRun, action: Coroutine[Any, Any, None]) -> None:
        try:
            await action
        finally:
            run.busy = False
            self._acting -= 1
            if not self._acting:
                self._idle.set()

    def acting(self) -> bool:
        """Whether an open or close is under way (alerts wait for it: alerts/sender.py)."""
        return self._acting > 0

    async def settle(self) -> None:
        """Until no open or close decided concurrently is under way."""
        await self._idle.wait()

    async def end_pair(self, run: PairRun) -> None:
        """The pair's data has ended: close what it holds while its prices are still
        fresh, and open nothing more."""
        run.ended = True
        if run.position is not None:
            await self._close(run, "end of data")

    def stopping(self) -> None:
        """A stop came: the positions open now are the ones the stop's message is about."""
        self.at_stop = [run.position for run in self.pairs if run.position is not None]

    def stop_outcome(self) -> str | None:
        """What became of the positions open when the stop came: closed, left open and
        hedged, left needing attention, or some of each (None: no stop)."""
        if self.at_stop is None:
            return None
        if not self.at_stop:
            return "no position was open"
        groups: dict[str, list[str]] = {}
        for p in self.at_stop:
            if p.state == "closed":
                what = "closed at the last prices"
            elif p.state == "validated":
                what = f"left open and hedged {self.held_where}"
            elif p.state == "needs_attention":
                what = "left needing attention (its exposure is recorded)"
            else:
                what = f"left in state {p.state or 'pending'}"
            groups.setdefault(what, []).append(p.id)
        return "; ".join(f"{', '.join(ids)} {what}" for what, ids in groups.items())

    async def close_all(self, reason: str) -> None:
        """Close every position (a stop, the end): a close that leaves exposure is tried
        again, up to risk.max_failed_closes in a row (live: a second, then two, ... apart,
        as a refusal the venue would not repeat passes), not left naked at the first."""
        await self.settle()  # an open under way is finished first, then closed
        for attempt in range(self.risk.max_failed_closes):
            # A pair whose data has ended was closed out then; its prices are stale now.
            left = [
                run
                for run in self.pairs
                if run.position is not None and not run.ended and not run.close_paused
            ]
            if not left:
                return
            if attempt and self.concurrent:
                await anyio.sleep(2 ** (attempt - 1))
            for run in left:
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
        reason = run.entries[-1][1] if run.entries else ""
        run.opened += 1
        pid = f"{run.name}-{run.opened:04d}"
        cash = run.cash
        try:
            position = await self.manager.open_position(
                run.spot, run.perp, self._budget(), position_id=pid
            )
        except DeltaHedgeError as exc:
            self.books.record(self.clock_ms, run, exc.position)
            # What the attempt lost: the cash it cost less what it still holds, at price.
            held = exc.position.spot_qty * self.books.last(run.spot.symbol)
            held -= exc.position.perp_qty * self.books.last(run.perp.symbol)
            cost = cash - run.cash - held
            if self.alert is not None:
                self._alert(words.failed_open(run, exc.position, cost, self.quote))
            self._open_failed(run, exc.position, cost)
            if exc.position.state == "needs_attention":
                run.position = exc.position  # exposure left: the exit rules will retry
                self._watch_margin(run, exc.position)
                run.close_requested = anyio.Event()
                task_status.started()
                await self._closing_loop(run, exc.position)
                return
            task_status.started()
            return
        except RunMustStop:
            raise
        except OrchestratorError as exc:
            rejected = self.manager.get_position(pid)
            if rejected is not None:
                self.books.positions.append(rejected)
            if isinstance(exc, InsufficientSizeError):
                self._starve(run, str(exc))
            elif isinstance(exc, PortfolioLimitReached):
                run.limited_at = self.manager.open_exposure()
                # (the baseline beside a replay keeps the same limits, and says whose)
                who = "" if self.label == "strategy" else f"{self.label}: "
                self._tell(
                    f"{who}{run.name}: open {pid} refused, opens nothing until a position "
                    f"closes: {exc}",
                    kind="limit",
                )
            task_status.started()
            return
        self.books.record(self.clock_ms, run, position)
        if self.alert is not None:
            self.alert(*words.opened(run, position, reason, self.quote))
        run.failed_opens = 0
        run.position = position
        self._watch_margin(run, position)
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
            self.books.record(self.clock_ms, run, position, since=recorded)
            if self.alert is not None:
                self._alert(words.closed(run, position, self.books.ledger.entries, self.quote))
            if position.state == "closed":
                run.failed_closes = 0
                run.position = None
                run.margin_line, run.margin_due = None, None
                run.released.set()
                return
            run.failed_closes += 1
            if run.failed_closes >= self.risk.max_failed_closes:
                self._pause(
                    run,
                    f"{CLOSES_FAILED} ({run.failed_closes}); not tried again, the operator "
                    f"must act: {position.reason}",
                    closes=True,
                )
            run.close_requested = anyio.Event()
            run.released.set()

    # -- after a restart

    def take_back(self, positions: Sequence[Position], entries: Sequence[LedgerEntry]) -> None:
        """A resumed run: the positions and ledger its journal holds, as if made here
        (Books.take_back); the pairs' next positions numbered on from theirs."""
        self.books.take_back(positions, entries)
        for position in positions:
            for run in self.pairs:
                if (position.spot_symbol, position.perp_symbol) == (
                    run.spot.symbol,
                    run.perp.symbol,
                ):
                    number = position.id.rpartition("-")[2]
                    run.opened = max(run.opened, int(number) if number.isdigit() else 0)

    async def carry_on(
        self,
        run: PairRun,
        position: Position,
        ledgered: Collection[str],
        quotes: Mapping[str, Decimal],
    ) -> None:
        """A position taken back after a restart (the manager has restored it, unless it
        is finished): finish what it was doing, put the fills the ledger lacks (orders
        not in ``ledgered``; their slippage against ``quotes``, the prices quoted when
        they came) in it, and hold it as if it had been opened here."""
        assert self._tg is not None
        if position.state not in FINAL_STATES:
            with contextlib.suppress(DeltaHedgeError):
                await self.manager.resume(position.id)
        missing = [r for r in position.orders if r.client_order_id not in ledgered]
        self.books.record_orders(self.clock_ms, run, position, missing, quotes)
        if position.state in ("validated", "needs_attention"):
            run.position = position
            self._watch_margin(run, position)
            run.close_requested = anyio.Event()
            self._tg.start_soon(self._closing_loop, run, position)
        elif run.position is position:  # finished now: the pair is flat
            run.position = None

    # -- the breaker

    def _open_failed(self, run: PairRun, position: Position, cost: Decimal) -> None:
        """An open rolled back or left exposure: counted, its cost added up; a refusal
        the venue will repeat, or too many failures in a row, pause the pair, and a
        spent budget stops all opening."""
        run.failed_opens += 1
        self.failed_open_cost += max(cost, ZERO)
        repeated = repeated_refusal(position.reason or "")
        if repeated is not None and repeated[1] and run.failed_opens < self.risk.max_failed_opens:
            # Refused for want of balance: nothing is tried until the balance changes. Still
            # a failure in a row: the balance a rollback's fees change is no new balance,
            # and a refusal that comes again pauses the pair like any other.
            run.starved_at = self.account.available_balance(self.quote)
            line = (
                f"{run.name}: opens nothing until the balance changes: the venue refused "
                f"the open: {repeated[0]}"
            )
            self._tell(line)
            if self.alert is not None:
                self.alert("paused", line)
        elif repeated is not None and repeated[1]:
            self._pause(
                run,
                f"{run.failed_opens} opens in a row refused for want of balance, the balance "
                f"changed between them: {repeated[0]}; the operator must act "
                "(orchestrator resume-trading after)",
            )
        elif repeated is not None:
            self._pause(run, f"the venue refused the open and will refuse it again: {repeated[0]}")
        elif run.failed_opens >= self.risk.max_failed_opens:
            self._pause(
                run, f"{run.failed_opens} opens in a row failed; the last: {position.reason}"
            )
        if self.opening_stopped is None and self.failed_open_cost > self.failed_open_budget:
            self.opening_stopped = (
                f"failed opens have cost {self.failed_open_cost:.2f} {self.quote}, beyond the "
                f"budget of {self.failed_open_budget:.2f} (risk.failed_open_budget)"
            )
            self._tell(f"{self.label}: opening stopped for every pair: {self.opening_stopped}")
            if self.alert is not None:
                self.alert("paused", f"opening stopped for every pair: {self.opening_stopped}")

    def _pause(self, run: PairRun, cause: str, *, closes: bool = False) -> None:
        if closes:
            run.close_paused = cause
        if run.open_paused is None:
            run.open_paused = cause
        elif not closes:
            return
        what = "closes and opens nothing more" if closes else "opens nothing more"
        self._tell(f"{run.name}: paused, {what} this run: {cause}")
        if self.alert is not None:
            self.alert("paused", f"{run.name}: paused, {what} this run: {cause}")

    # -- saying what happened

    def _alert(self, said: words.Alert | None) -> None:
        if said is not None and self.alert is not None:
            self.alert(*said)

    def _tell(self, line: str, *, kind: str = "pause") -> None:
        """One line, said now, kept in the summary and the journal (``kind`` begins
        its journal key)."""
        when = datetime.fromtimestamp(self.clock_ms / 1000, UTC)
        self.say(line)
        self.notes.append(f"{when:%Y-%m-%d %H:%M} UTC: {line}")
        if self.journal is not None:
            self.journal.record_meta(f"{kind} {self.label} {len(self.notes)}", line)
        if kind == "margin" and self.alert is not None:
            self.alert("margin", line)

    # -- room to open

    def _starved(self, run: PairRun) -> bool:
        """True while no position of the pair can be sized: the balance that could size
        none is unchanged, or, changed, still sizes none at the prices now (checked
        without an open: a starved pair sends no rejected open on every change)."""
        if run.starved_at is None:
            return False
        available = self.account.available_balance(self.quote)
        if available == run.starved_at:
            return True
        if not self.manager.can_size(run.spot, run.perp, self._budget()):
            run.starved_at = available
            return True
        run.starved_at = None
        return False

    def _limited(self, run: PairRun) -> bool:
        """_no_room's answer when it is True, changing nothing: a limit that refused the
        pair's open still holds (no position has closed since)."""
        if run.limited_at is None:
            return False
        count, exposure = self._open_exposure()
        return count >= run.limited_at[0] and exposure >= run.limited_at[1]

    async def _listed(self, run: PairRun) -> bool:
        """Whether both legs still trade on the venue, asked before an open (live only:
        live/run.py; recorded instruments do not change)."""
        return True

    def _occupied(self, run: PairRun) -> bool:
        """Whether the venue holds a position on the pair's perp that is not the run's,
        so that an open would net against it (live only: live/run.py)."""
        return False

    def _no_room(self, run: PairRun) -> bool:
        """True while a portfolio limit that refused the pair's open has had no position
        close (no fewer open, none holding less) since."""
        if run.limited_at is None:
            return False
        count, exposure = self._open_exposure()
        if count >= run.limited_at[0] and exposure >= run.limited_at[1]:
            return True
        run.limited_at = None
        return False

    def _open_exposure(self) -> tuple[int, Decimal]:
        """The manager's open_exposure; in a replay (nothing happens between its
        decisions) worked out once per instant and per open or close, not per pair."""
        if self.concurrent:
            return self.manager.open_exposure()
        key = (self.clock_ms, self._acts)
        if self._exposure_at != key:
            self._exposure_now, self._exposure_at = self.manager.open_exposure(), key
        return self._exposure_now

    def _starve(self, run: PairRun, why: str, until: str = "the balance changes") -> None:
        """No position of the pair can be sized now: said once, and nothing tried until
        the available balance changes (_starved)."""
        available = self.account.available_balance(self.quote)
        run.starved_at = available
        when = datetime.fromtimestamp(self.clock_ms / 1000, UTC)
        self.notes.append(
            f"{run.name}: stopped opening at {when:%Y-%m-%d %H:%M} UTC with {available:.2f} "
            f"{self.quote} available: {why}; no new position until {until}"
        )

    def _budget(self) -> Decimal:
        """What one new position may use: the free balance shared among the pairs not
        yet holding one (no more than risk.max_open_positions leaves room for), less what
        the perp leg's margin will take."""
        free = sum(1 for run in self.pairs if run.position is None)
        if self._share is not None:  # pairs: auto: among this instant's opens
            free = self._share
        cap = self.risk.max_open_positions
        if cap is not None:  # only this many more may open: the balance is theirs
            free = min(free, cap - self._open_exposure()[0])
        free = max(free, 1)
        available = self.account.available_balance(self.quote)
        per_leg = available / (1 + 1 / self.leverage) / free
        return per_leg * Decimal("0.99")  # room for fees and slippage

    # -- money

    def finish(
        self,
        *,
        start_ms: int,
        starting_balance: Decimal,
        ending_balance: Decimal,
        events: int,
        interrupted: bool,
    ) -> RunResult:
        """The run is over: what is still held is valued and marked, the journal is
        brought up to date, every position's trace is finished."""
        ending_equity = self.books.equity_now()
        if self.ranking is not None:
            found = self.ranking.none_considered(self.clock_ms)
            if found is not None:
                self.notes.append(found)
        dust = [(run, run.dust_held) for run in self.pairs if run.dust]
        if dust:
            worth = sum((qty * self.books.last(run.spot.symbol) for run, qty in dust), ZERO)
            some = ", ".join(f"{qty} {run.spot.base}" for run, qty in dust[:3])
            self.notes.append(
                f"closes left coins they could not sell, below the coin's order step (a spot "
                f"buy's fee is charged in the coin): {some}"
                + (f" and {len(dust) - 3} more pairs'" if len(dust) > 3 else "")
                + f", worth {worth:,.2f} {self.quote} at the last prices; they stay in the "
                "account and the ending equity counts them"
            )
        self.books.mark_what_is_left(self.clock_ms)
        self.books.journal_money()
        self.manager.finish_traces([run.position for run in self.pairs if run.position])
        return RunResult(
            label=self.label,
            quote=self.quote,
            start_ms=max(start_ms, 0),
            end_ms=max(self.clock_ms, 0),
            starting_balance=starting_balance,
            ending_balance=ending_balance,
            ending_equity=ending_equity,
            ledger=self.books.ledger,
            positions=self.books.positions,
            pairs=self.pairs,
            equity=self.books.equity,
            events=events,
            interrupted=interrupted,
            notes=self.notes,
            stopped=self.stop_outcome() if interrupted else None,
            rotations=self.rotations,
        )

    def sample_equity(self, *, force: bool = False) -> None:
        """An hourly sample of the money at the run's clock (Books.sample)."""
        self.books.sample(self.clock_ms, force=force, acting=self._acting > 0)
