"""What a run does with its market, whatever feeds it: per pair, the strategy's
decisions, one position at a time through the PositionManager, and the money.

The replay (replay/engine.py) feeds it recorded data on the data's clock; a live run
(orchestrator/live) feeds it the venue's prices on the wall clock. Both use these
same lines: the strategy, the manager and the accounting are the same objects in
paper and live mode; only the executor and the market source differ.

Each position lives in its own task of the run's task group, from its open to its
close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
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
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, OrderResult, Position
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.position.manager import PositionManager
from orchestrator.trading.curve import Curve
from orchestrator.trading.ledger import Ledger, LedgerEntry
from orchestrator.trading.margin import line as margin_line
from orchestrator.trading.margin import ratio as margin_ratio
from orchestrator.trading.ranking import Ranking
from orchestrator.trading.run import HOUR_MS, Account, MoneyJournal, PairRun, RunResult, quote_of

CLOSES_FAILED = "closes in a row failed"  # how a pause for failed closes begins


def ranked(reason: str, net: Decimal) -> str:
    """An open's reason under pairs: auto."""
    return f"{reason}; ranked at {net:.2%}/y net"


class _Wanting:
    """The entries of an iterator, taken from it only as far as they are asked for."""

    def __init__(self, source: Iterator[tuple[PairRun, str]]) -> None:
        self._source = source
        self._taken: list[tuple[PairRun, str]] = []

    def count(self, most: int | None = None) -> int:
        """How many there are, counting no further than ``most`` (None: all)."""
        taken = self._taken
        while most is None or len(taken) < most:
            found = next(self._source, None)
            if found is None:
                break
            taken.append(found)
        return len(taken) if most is None else min(len(taken), most)

    def entry(self, k: int) -> tuple[PairRun, str]:
        """The k-th (count(k + 1) > k first)."""
        return self._taken[k]


class Trader:
    """The pairs' decisions, positions and money; a driver feeds it prices and time
    (``clock_ms``) and calls ``decide``."""

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
        self._journaled = 0  # ledger entries already in the journal
        self.pairs = pairs
        self.quote = quote_of(pairs)
        self.manager = manager
        self.account = account
        self.ticker = ticker
        self.ledger = ledger
        self.leverage = leverage
        self.clock_ms = 0
        self.positions: list[Position] = []
        # Hourly samples, compact: at most about 2**16 values of all curves together
        # are held as Decimal objects before they are stored as text (curve.py).
        compact_after = max(1024, 2**16 // (len(pairs) + 1))
        self.equity = Curve(compact_after)
        for run in pairs:
            run.pnl = self.equity.follow()
        # Per pair, looked up once (a replay asks at every instant): its strategy's
        # quiet(holding) when it has one (strategy/funding.py), entry and exit rules, and
        # its symbols.
        self._names = [run.name for run in self.pairs]
        self._deciders = [
            (
                run,
                getattr(run.strategy, "quiet", None),
                run.strategy.entry_reason,
                run.strategy.exit_reason,
                run.spot.symbol,
                run.perp.symbol,
            )
            for run in pairs
        ]
        self._valued = [(run, run.spot.symbol, run.perp.symbol) for run in pairs]
        self.notes: list[str] = []
        self._tg: TaskGroup | None = None
        # The positions open when a stop came (the driver says when), and where what is
        # left open is held: said when the run ends.
        self.at_stop: list[Position] | None = None
        self.held_where = "in the paper account"
        # pairs: auto (ranking.py): opens go to the best-ranked pairs the universe
        # considers, the balance shared among the opens of one instant.
        self.ranking: Ranking | None = None
        # Hears of each hourly equity sample as it is taken (a live run's equity.csv).
        self.on_equity: Callable[[int, Decimal], None] | None = None
        self._share: int | None = None
        self.rotations: list[str] = []
        # A replay's open exposure, worked out once per instant and action (_open_exposure).
        self._acts = 0
        self._exposure_at: tuple[int, int] | None = None
        self._exposure_now: tuple[int, Decimal] = (0, ZERO)

    def attach(self, tg: TaskGroup) -> None:
        """The task group the positions' tasks run in (the driver's)."""
        self._tg = tg

    # -- decisions

    def would_act(self, touched: Sequence[int]) -> bool:
        """Whether ``decide(touched)`` could do anything: some pair not ended whose
        strategy, asked about its usable prices, gives a reason. Changes nothing; a
        replay asks it at every instant and calls decide only then."""
        deciders, prices = self._deciders, self.ticker.get_prices
        for i in touched:
            run, quiet, enter, leave, spot, perp = deciders[i]
            if run.ended:
                continue
            holding = run.position is not None
            if quiet is not None and quiet(holding):
                continue
            if not holding and self._limited(run):
                continue  # decide would find no room for it
            found = prices(spot, perp)
            if found is None:
                continue
            margin = run.margin_line
            if holding and margin is not None and margin.due(found[1], run.margin_warned):
                return True  # the margin guard acts, or warns
            if (leave if holding else enter)(*found) is not None:
                return True
        return False

    async def decide(self, touched: Collection[int]) -> None:
        if self.ranking is not None:
            await self._decide_ranked(touched, self.ranking)
            return
        for i in sorted(touched):
            run = self.pairs[i]
            if run.ended or run.busy:
                continue
            if run.position is None and self._limited(run):
                continue  # (as _no_room below would say, without a price looked up)
            spot = self.ticker.get_price(run.spot.symbol)
            perp = self.ticker.get_price(run.perp.symbol)
            if spot is None or perp is None:
                continue  # missing or stale: no decision on prices that are not there
            if run.position is None:
                if run.open_paused or self.opening_stopped:
                    continue
                reason = run.strategy.entry_reason(spot, perp)
                if reason is not None and not self._starved(run) and not self._no_room(run):
                    await self._act(run, self._open(run, reason))
            elif not run.close_paused:
                reason = self._margin_guard(run, perp) or run.strategy.exit_reason(spot, perp)
                if reason is not None:
                    await self._act(run, self._close(run, reason))

    async def _decide_ranked(self, touched: Collection[int], ranking: Ranking) -> None:
        """pairs: auto: the exits first (they free capital), then the opens the universe
        considers now, best expected net yield first."""
        candidates: list[tuple[Decimal, str, int]] = []  # (-net, name, index): unique names
        now = self.clock_ms
        deciders, names = self._deciders, self._names
        for i in sorted(touched):
            run, quiet = deciders[i][0], deciders[i][1]
            if run.ended or run.busy:
                continue
            if run.position is None:
                if quiet is not None and quiet(False):
                    continue  # no price could make it open: not even looked up
                if run.open_paused or self.opening_stopped or i not in ranking.considered(now):
                    continue
                net = ranking.net_of(i, now)
                if net is not None and net > 0:
                    candidates.append((-net, names[i], i))
                continue
            spot = self.ticker.get_price(run.spot.symbol)
            perp = self.ticker.get_price(run.perp.symbol)
            if spot is None or perp is None or run.close_paused:
                continue
            reason = self._margin_guard(run, perp) or run.strategy.exit_reason(spot, perp)
            if reason is not None:
                await self._act(run, self._close(run, reason))
        candidates.sort()
        # The candidates whose strategy would open at the prices now, in rank order, asked
        # only as far as the opens and the rotation need: at a universe's cap, the best
        # one or two, not every pair (in a replay the prices cannot move meanwhile).
        wanting = _Wanting(self._would_open(candidates))
        cap = self.risk.max_open_positions
        if self.concurrent:
            # The opens go out together (live): each takes an equal share of the balance
            # as it is now, none spent yet; only as many as risk.max_open_positions has room for.
            if cap is None:
                slots = wanting.count()
            else:
                room = cap - self._open_exposure()[0]
                slots = min(wanting.count(max(room, 0)), room)
            for k in range(max(slots, 0)):
                if self.opening_stopped:
                    break
                run, reason = wanting.entry(k)
                await self._open_ranked(run, reason, slots)
        else:
            k = 0
            while wanting.count(k + 1) > k:
                # One after another: what is left, shared.
                if cap is None:
                    share = wanting.count() - k
                else:
                    room = cap - self._open_exposure()[0]
                    share = min(wanting.count(k + max(room, 0)) - k, room)
                if share < 1 or self.opening_stopped:
                    break
                run, reason = wanting.entry(k)
                await self._open_ranked(run, reason, share)
                k += 1
        k = 0
        while wanting.count(k + 1) > k:
            run, reason = wanting.entry(k)
            if run.position is None and not run.busy:
                # One change at a time: no rotation while an open or close is under way.
                if not self.acting() and not self.opening_stopped:
                    await self._rotate(run, reason, ranking)
                break
            k += 1

    def _would_open(
        self, candidates: Sequence[tuple[Decimal, str, int]]
    ) -> Iterator[tuple[PairRun, str]]:
        """Each candidate whose strategy gives a reason to open at the prices now, with
        the reason (its rank written in)."""
        price = self.ticker.get_price
        for net, _, i in candidates:
            run = self.pairs[i]
            spot, perp = price(run.spot.symbol), price(run.perp.symbol)
            if spot is None or perp is None:
                continue
            reason = run.strategy.entry_reason(spot, perp)
            if reason is not None:
                yield run, ranked(reason, -net)

    async def _open_ranked(self, run: PairRun, reason: str, share: int) -> None:
        self._share = share
        try:
            if self._starved(run) or self._no_room(run):
                return
            budget = self._budget()
            if not self.manager.can_size(run.spot, run.perp, budget):
                # Said once; no rejected open now, nor on every balance change after.
                available = self.account.available_balance(self.quote)
                run.starved_at = available
                when = datetime.fromtimestamp(self.clock_ms / 1000, UTC)
                self.notes.append(
                    f"{run.name}: stopped opening at {when:%Y-%m-%d %H:%M} UTC with "
                    f"{available:.2f} {self.quote} available: no quantity within {budget:.2f} "
                    f"{self.quote} meets both instruments' minimums; no new position until "
                    "one does"
                )
                return
            # An open the limits would refuse is not sent: the next best may fit.
            if self.manager.can_size(run.spot, run.perp, budget, limits=True):
                await self._act(run, self._open(run, reason))
        finally:
            self._share = None

    async def _rotate(self, better: PairRun, reason: str, ranking: Ranking) -> None:
        """Close the held position expected to earn least for ``better``, when the
        funding ``better`` is expected to earn beats it by both round trips and
        universe.rotate_margin (annualised), and it has been held the cool-down."""
        now, u = self.clock_ms, ranking.u
        expected = ranking.gross(better, now)
        if expected is None:
            return
        held_since = now - u.rotate_cooldown_hours * HOUR_MS
        worst: tuple[Decimal, PairRun] | None = None
        for run in self.pairs:
            position = run.position
            if (
                position is None
                or run.busy
                or run.close_paused
                or position.state != "validated"
                or position.opened_at is None
                or position.opened_at.timestamp() * 1000 > held_since
            ):
                continue
            gross = ranking.gross(run, now)
            if gross is not None and (worst is None or gross < worst[0]):
                worst = (gross, run)
        if worst is None:
            return
        gross, victim = worst
        costs = 2 * ranking.cost
        gain = expected - gross
        if gain <= costs + u.rotate_margin:
            return
        assert victim.position is not None
        line = (
            f"rotation: {victim.name} closed for {better.name}: funding expected "
            f"{expected:.2%}/y against {gross:.2%}/y, a gain of {gain:.2%}/y beyond both round "
            f"trips' {costs:.2%}/y and universe.rotate_margin {u.rotate_margin:.2%}/y"
        )
        when = datetime.fromtimestamp(now / 1000, UTC)
        self.rotations.append(f"{when:%Y-%m-%d %H:%M} UTC: {line}")
        if self.journal is not None:
            self.journal.record_meta(f"rotation {self.label} {len(self.rotations)}", line)
        facts = {
            "fo.rotation.closed": victim.name,
            "fo.rotation.opened": better.name,
            "fo.rotation.closed_expected": str(gross),
            "fo.rotation.opened_expected": str(expected),
            "fo.rotation.costs": str(costs),
            "fo.rotation.margin": str(u.rotate_margin),
        }
        self.manager.explain(victim.position, "rotation", facts)
        self.say(line)
        await self._act(victim, self._close(victim, f"rotation: for {better.name}"))
        if victim.position is None:  # closed: its capital goes to the better pair
            await self._open_ranked(better, f"{reason}; rotated in for {victim.name}", 1)
            if better.position is not None:
                self.manager.explain(better.position, "rotation", facts)

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
        await self.settle()  # an open under way is finished first, then closed
        for run in self.pairs:
            # A pair whose data has ended was closed out then; its prices are stale now.
            if run.position is not None and not run.ended and not run.close_paused:
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
            self._record(run, exc.position)
            # What the attempt lost: the cash it cost less what it still holds, at price.
            held = exc.position.spot_qty * self._last(run.spot.symbol)
            held -= exc.position.perp_qty * self._last(run.perp.symbol)
            cost = cash - run.cash - held
            if self.alert is not None:
                self._alert_failed_open(run, exc.position, cost)
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
                self.positions.append(rejected)
            if isinstance(exc, InsufficientSizeError):
                self._starve(run, exc)
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
        self._record(run, position)
        if self.alert is not None:
            self.alert("opened", self._opened_words(run, position, reason))
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
            self._record(run, position, since=recorded)
            if self.alert is not None:
                self._alert_close(run, position)
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
        """A resumed run: the positions and ledger its journal holds, as if made here.
        Marks are left out: they valued what was held when a run stopped, and this run
        values what it holds when it stops."""
        entries = [e for e in entries if e.kind != "mark"]
        self.positions[:0] = positions
        self.ledger.entries[:0] = entries
        self._journaled += len(entries)
        by_name = {run.name: run for run in self.pairs}
        for entry in entries:
            pair = by_name.get(entry.pair)
            if pair is not None and entry.kind in ("fill", "fee", "funding"):
                pair.cash += entry.amount
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
        self._record_orders(run, position, missing, quotes)
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
        if repeated is not None and repeated[1]:
            # Refused for want of balance: nothing is tried until the balance changes.
            run.starved_at = self.account.available_balance(self.quote)
            run.failed_opens = 0
            line = (
                f"{run.name}: opens nothing until the balance changes: the venue refused "
                f"the open: {repeated[0]}"
            )
            self._tell(line)
            if self.alert is not None:
                self.alert("paused", line)
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

    # -- what alerts say (only when the run has alerts: the ledger is read)

    def _opened_words(self, run: PairRun, position: Position, reason: str) -> str:
        qty, quote = position.quantity, self.quote
        spot, perp = position.spot_entry_price or ZERO, position.perp_entry_price or ZERO
        return (
            f"{run.name}: {position.id} opened: long {position.spot_qty} {run.spot.symbol} at "
            f"{spot}, short {position.perp_qty} {run.perp.symbol} at {perp} (about "
            f"{qty * spot:,.2f} {quote} a leg)" + (f"; why: {reason}" if reason else "")
        )

    def _alert_failed_open(self, run: PairRun, position: Position, cost: Decimal) -> None:
        assert self.alert is not None
        if position.state == "rolled_back":
            self.alert(
                "rolled_back",
                f"{run.name}: {position.id} did not open and was unwound to flat, at a cost "
                f"of {cost:,.2f} {self.quote}: {position.reason}",
            )
        elif position.state == "needs_attention":
            self.alert(
                "needs_attention",
                f"{run.name}: {position.id} did not open and could not be unwound: "
                f"{self._exposure(position)} left: {position.reason}; the exit rules will "
                "try to close it",
            )

    def _alert_close(self, run: PairRun, position: Position) -> None:
        assert self.alert is not None
        why = run.exits[-1][1] if run.exits else "asked"
        if position.state == "closed":
            pnl = sum(
                (
                    e.amount
                    for e in self.ledger.entries
                    if e.position_id == position.id and e.kind in ("fill", "fee", "funding")
                ),
                ZERO,
            )
            self.alert(
                "closed",
                f"{run.name}: {position.id} closed ({why}); its PnL {pnl:+,.2f} {self.quote} "
                "(fills, fees and funding)",
            )
        elif position.state == "needs_attention":
            self.alert(
                "needs_attention",
                f"{run.name}: {position.id}'s close ({why}) failed: {self._exposure(position)} "
                f"left: {position.reason}",
            )

    @staticmethod
    def _exposure(position: Position) -> str:
        return f"spot {position.spot_qty} {position.spot_symbol}, perp short {position.perp_qty}"

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

    def _starve(self, run: PairRun, exc: InsufficientSizeError) -> None:
        available = self.account.available_balance(self.quote)
        run.starved_at = available
        when = datetime.fromtimestamp(self.clock_ms / 1000, UTC)
        self.notes.append(
            f"{run.name}: stopped opening at {when:%Y-%m-%d %H:%M} UTC with {available:.2f} "
            f"{self.quote} available: {exc}; no new position until the balance changes"
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
        ending_equity = self.equity_now()
        if self.ranking is not None:
            found = self.ranking.none_considered(self.clock_ms)
            if found is not None:
                self.notes.append(found)
        self.mark_what_is_left()
        self.journal_money()
        self.manager.finish_traces([run.position for run in self.pairs if run.position])
        return RunResult(
            label=self.label,
            quote=self.quote,
            start_ms=max(start_ms, 0),
            end_ms=max(self.clock_ms, 0),
            starting_balance=starting_balance,
            ending_balance=ending_balance,
            ending_equity=ending_equity,
            ledger=self.ledger,
            positions=self.positions,
            pairs=self.pairs,
            equity=self.equity,
            events=events,
            interrupted=interrupted,
            notes=self.notes,
            stopped=self.stop_outcome() if interrupted else None,
            rotations=self.rotations,
        )

    def journal_money(self) -> None:
        """The ledger entries not yet in the journal, and the paper wallet."""
        if self.journal is None or self._journaled == len(self.ledger.entries):
            return
        self.journal.record_ledger(self.label, self.ledger.entries[self._journaled :])
        self._journaled = len(self.ledger.entries)
        if isinstance(self.account, PaperExecutor):  # its balances are the venue's truth
            account = self.account
            self.journal.record_balances(
                self.label, account.get_virtual_balance(), account.held_perps()
            )

    def _record(self, run: PairRun, position: Position, since: int = 0) -> None:
        if since == 0:
            self.positions.append(position)
        self._record_orders(run, position, position.orders[since:])

    def _record_orders(
        self,
        run: PairRun,
        position: Position,
        results: Sequence[OrderResult],
        quotes: Mapping[str, Decimal] | None = None,
    ) -> None:
        for result in results:
            quote = self.ticker.get_quote(result.symbol)
            reference = quote[0] if quote else result.avg_price or ZERO
            if quotes is not None:
                reference = quotes.get(result.client_order_id, reference)
            run.cash += self.ledger.record_order(
                self.clock_ms, run.name, position.id, result, reference
            )
        self.journal_money()

    def sample_equity(self, *, force: bool = False) -> None:
        """An hourly sample of the equity (equity_now) and of each pair's PnL (pair_pnl),
        computed as those compute them, in one pass over the pairs."""
        t = self.clock_ms
        if t <= 0 or (not force and (t - self.equity.last_ms < HOUR_MS or self._acting)):
            return  # (while an open or close is under way, the next cycle samples)
        quotes, perp_position = self.ticker.quotes, self.account.get_perp_position
        equity = self.account.balance(self.quote)
        for run, spot_symbol, perp_symbol in self._valued:
            position = run.position
            if position is None:  # flat: nothing held beyond the wallet
                run.pnl.add(run.cash)
                continue
            spot = quotes.get(spot_symbol)
            perp = quotes.get(perp_symbol)
            spot_last = spot[0] if spot else ZERO
            perp_last = perp[0] if perp else ZERO
            held = position.spot_qty
            spot_value = held * spot_last  # once, for the PnL and the equity alike
            run.pnl.add(run.cash + spot_value - position.perp_qty * perp_last)
            if held:
                equity += spot_value
            short = perp_position(perp_symbol)
            if short.size:
                equity += short.size * (perp_last - short.entry_price)
            if run.margin_line is not None and perp_last:
                self._note_margin(run, position, perp_last)
        self.equity.append(t, equity)
        if self.on_equity is not None:
            self.on_equity(t, equity)

    def _note_margin(self, run: PairRun, position: Position, perp: Decimal) -> None:
        """The highest margin ratio the pair's short has reached (summary: headroom)."""
        entry = position.perp_entry_price
        if self.mmr is None or entry is None or position.perp_qty <= 0:
            return  # no short left to guard
        now = margin_ratio(entry, perp, self.leverage, self.mmr)
        if run.worst_margin is None or now > run.worst_margin:
            run.worst_margin = now

    def pair_pnl(self, run: PairRun) -> Decimal:
        """The pair's PnL so far: its cash plus its open legs at their last prices."""
        value = run.cash
        if run.position is not None:
            value += run.position.spot_qty * self._last(run.spot.symbol)
            value -= run.position.perp_qty * self._last(run.perp.symbol)
        return value

    def equity_now(self) -> Decimal:
        """The wallet plus what the positions hold at its last price (and open perp
        PnL). Coins the account holds beyond the positions (dust below the minimum
        order size) are not the strategy's and are not counted."""
        equity = self.account.balance(self.quote)
        for run in self.pairs:
            if run.position is None:
                continue  # flat: nothing held beyond the wallet
            held = run.position.spot_qty
            if held:
                equity += held * self._last(run.spot.symbol)
            perp = self.account.get_perp_position(run.perp.symbol)
            if perp.size:
                equity += perp.size * (self._last(run.perp.symbol) - perp.entry_price)
        return equity

    def _last(self, symbol: str) -> Decimal:
        quote = self.ticker.quotes.get(symbol)
        return quote[0] if quote else ZERO

    def mark_what_is_left(self) -> None:
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
