"""Opens and closes delta-neutral positions, one position machine each (EXEC-01): the
PositionMachine's transitions, run from the table derived from it (machines/lifecycle.py).

The manager does the I/O; the machine holds the truth of where a position is.
Both legs leave together (sending.py: one task group, each leg settling its own
outcome, so one failing never cancels the other in flight). Once orders have
left, the rest of the open or close (looking up legs whose outcome is unknown,
unwinding) runs shielded from outside cancellation and bounded by deadlines, so a
Ctrl-C never strands a one-legged position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import anyio
import anyio.lowlevel
import msgspec

from machines import FINAL_STATES, PositionLifecycle
from machines.lifecycle import Listener
from orchestrator.exceptions import (
    InsufficientSizeError,
    IntentNotRecorded,
    InvalidOrderError,
    PortfolioLimitReached,
    PositionStateError,
    PriceUnavailableError,
    RiskCheckFailed,
    RunMustStop,
    UnknownPositionError,
)
from orchestrator.execution.base import Executor
from orchestrator.market.ticker import TickerService
from orchestrator.models import (
    CLIENT_ORDER_ID,
    ZERO,
    Category,
    Holdings,
    Instrument,
    OrderRequest,
    OrderResult,
    OrderStatus,
    Position,
    Side,
)
from orchestrator.position.delta import DeltaValidator
from orchestrator.position.errors import DeltaDriftExceeded, DeltaHedgeError, DeltaHedgeTimeout
from orchestrator.position.legs import (
    MAX_POSITION_ID,
    NONCE_LENGTH,
    Action,
    Leg,
    LegName,
    OrderJournal,
    client_order_id,
    describe,
    new_run_nonce,
    parse_client_order_id,
)
from orchestrator.position.outside import outside_change
from orchestrator.position.sending import LegSender
from orchestrator.position.sizing import PositionSizer, round_down
from orchestrator.position.tracer import PositionTracer
from orchestrator.risk import RiskManager, exposure_usd
from orchestrator.settings import TradingSettings


@dataclass(eq=False)
class _Entry:
    position: Position
    machine: PositionLifecycle | None  # None once final: a finished position takes no events
    spot: Instrument
    perp: Instrument
    attempts: dict[Action, int] = field(default_factory=dict)
    unresolved: list[Leg] = field(default_factory=list)  # outcome still unknown
    opening: list[Leg] = field(default_factory=list)  # the open's legs, once restored
    blocked: str | None = None  # why the last unwind could send nothing
    # Both legs' notional at the prices its open was checked at: what it holds of the
    # portfolio's exposure limit until it is finished (None: restored, see _held).
    exposure: Decimal | None = None

    def send(self, event: str) -> None:
        if self.machine is None:
            raise PositionStateError(f"position {self.position.id} is {self.position.state}")
        self.machine.send(event)
        if self.position.state in FINAL_STATES:
            # A finished position takes no events; the record keeps the final state.
            self.machine = None


class PositionManager:
    def __init__(
        self,
        executor: Executor,
        ticker: TickerService,
        settings: TradingSettings,
        *,
        sizer: PositionSizer | None = None,
        risk: RiskManager | None = None,
        delta: DeltaValidator | None = None,
        listeners: Sequence[Listener] = (),
        tracing: PositionTracer | None = None,
        run_nonce: str | None = None,
        journal: OrderJournal | None = None,
    ) -> None:
        self._executor = executor
        self._journal = journal
        self.run_nonce = run_nonce or new_run_nonce()
        if len(self.run_nonce) != NONCE_LENGTH or not CLIENT_ORDER_ID.match(self.run_nonce):
            raise InvalidOrderError(
                f"run nonce {self.run_nonce!r}: {NONCE_LENGTH} characters of A-Z a-z 0-9 _ -"
            )
        self._ticker = ticker
        self._settings = settings
        self._sizer = sizer or PositionSizer(settings)
        self._risk = risk or RiskManager(settings)
        self._delta = delta or DeltaValidator(settings)
        self._tracing = tracing or PositionTracer(None)
        # The tracer hangs on the machines as a listener: transitions become events.
        self._listeners: list[Listener] = [*listeners]
        if self._tracing.enabled:
            self._listeners.append(self._tracing)
        self._sender = LegSender(executor, settings, self._tracing)
        # The registry: changed only between awaits (one event loop), so no lock.
        self._positions: dict[str, _Entry] = {}
        # The entries not known to be final yet, in the same order: what the portfolio
        # limits and get_open_positions look at, without walking every position ever made.
        self._unfinished: dict[str, _Entry] = {}

    # -- queries

    def get_position(self, position_id: str) -> Position | None:
        entry = self._positions.get(position_id)
        return entry.position if entry else None

    def get_open_positions(self) -> list[Position]:
        """Positions not yet finished: open, on their way in or out, or needing attention."""
        return [e.position for e in self._unfinished_entries()]

    def _unfinished_entries(self) -> list[_Entry]:
        """The entries whose position is not final, oldest first (the finished dropped)."""
        unfinished = self._unfinished
        done = [pid for pid, e in unfinished.items() if e.position.state in FINAL_STATES]
        for pid in done:
            del unfinished[pid]
        return list(unfinished.values())

    def can_size(
        self,
        spot: Instrument,
        perp: Instrument,
        available_balance: Decimal,
        *,
        limits: bool = False,
    ) -> bool:
        """Whether an open of this pair with this balance would find a quantity meeting
        both instruments' minimums at the prices now (what ``open_position`` refuses with
        InsufficientSizeError) and, with ``limits``, within the portfolio limits; False
        too when a price is missing. Records nothing."""
        spot_price = self._ticker.get_price(spot.symbol)
        perp_price = self._ticker.get_price(perp.symbol)
        if spot_price is None or perp_price is None:
            return False
        qty = self._sizer.calculate_matching_quantity(
            spot_price, available_balance, spot, perp, perp_price
        )
        if qty is None:
            return False
        if limits and self._risk.limits.any:
            exposure = exposure_usd(qty, spot_price, perp_price)
            return self._risk.check_portfolio(exposure, self._held_exposures()) is None
        return True

    def explain(self, position: Position, name: str, attributes: dict[str, str]) -> None:
        """A decision about the position, on its trace."""
        self._tracing.note(position, name, attributes)

    def open_exposure(self) -> tuple[int, Decimal]:
        """(how many, their exposure in USD): the positions counted against the portfolio
        limits now, those open or opening (risk.py)."""
        held = self._held_exposures()
        return len(held), sum(held, ZERO)

    def _held_exposures(self, besides: _Entry | None = None) -> list[Decimal]:
        return [self._held(e) for e in self._unfinished_entries() if e is not besides]

    def _held(self, entry: _Entry) -> Decimal:
        """What the position counts against risk.max_total_exposure_usd."""
        if entry.exposure is None:
            # Restored after a restart: its quantity at its legs' entry prices, or the
            # last prices where a leg never filled (one leg's price for both while only
            # one is known).
            position = entry.position
            spot = position.spot_entry_price or self._last(position.spot_symbol)
            perp = position.perp_entry_price or self._last(position.perp_symbol)
            if spot is None or perp is None:
                return exposure_usd(position.quantity, spot or perp or ZERO, perp or spot or ZERO)
            entry.exposure = exposure_usd(position.quantity, spot, perp)
        return entry.exposure

    def _last(self, symbol: str) -> Decimal | None:
        quote = self._ticker.get_quote(symbol)
        return quote[0] if quote else None

    def finish_traces(self, positions: Sequence[Position]) -> None:
        """End the traces of positions left open when the run ends."""
        self._tracing.finish_all(list(positions))

    # -- open

    async def open_position(
        self,
        spot: Instrument,
        perp: Instrument,
        available_balance: Decimal,
        *,
        position_id: str | None = None,
    ) -> Position:
        """Buy ``spot`` and short ``perp`` for the same quantity, both at once.

        Returns the position in state ``validated``. Raises, with nothing sent,
        PriceUnavailableError, InsufficientSizeError or RiskCheckFailed (state
        ``rejected``); after orders were sent, DeltaHedgeError, DeltaHedgeTimeout
        or DeltaDriftExceeded once the open has been unwound (``rolled_back``) or
        could not be (``needs_attention``, exposure on the position).
        """
        wrong = [
            f"{name} is {instrument.symbol}, a {instrument.category} instrument"
            for name, instrument, wanted in (
                ("spot", spot, Category.SPOT),
                ("perp", perp, Category.LINEAR),
            )
            if instrument.category is not wanted
        ]
        if wrong:
            raise InvalidOrderError(
                "open_position needs a spot instrument then a linear perp instrument: "
                + "; ".join(wrong)
            )
        if not available_balance.is_finite() or available_balance <= 0:
            raise InvalidOrderError(
                f"available balance must be a positive amount, got {available_balance}"
            )
        pid = position_id or uuid4().hex[:16]
        if len(pid) > MAX_POSITION_ID or not CLIENT_ORDER_ID.match(pid):
            raise InvalidOrderError(
                f"position id {pid!r}: 1-{MAX_POSITION_ID} characters of A-Z a-z 0-9 _ -"
            )
        position = Position(
            id=pid, spot_symbol=spot.symbol, perp_symbol=perp.symbol, created_at=self._now()
        )
        entry = _Entry(position, PositionLifecycle(position, self._listeners), spot, perp)
        # A caller already cancelled sends nothing (this is the open's one checkpoint
        # before its orders leave).
        await anyio.lowlevel.checkpoint_if_cancelled()
        if pid in self._positions:
            raise InvalidOrderError(f"position id {pid!r} is already in use")
        self._positions[pid] = entry
        self._unfinished[pid] = entry

        with self._tracing.phase(position, "open"):
            qty = self._size(entry, available_balance)  # rejects and raises if there is none
            position.quantity = qty
            legs = [
                self._leg(entry, "spot", "open", 1, Side.BUY, qty),
                self._leg(entry, "perp", "open", 1, Side.SELL, qty),
            ]
            try:
                self._record_intents(entry, legs)
            except IntentNotRecorded as exc:
                self._reject(entry, str(exc))
                raise
            entry.send("send_legs")
            # From here on orders are out: _execute finishes what it starts, whatever
            # the caller does (it is shielded).
            timed_out = await self._execute(entry, legs)
        failure = self._judge_open(entry, legs, timed_out)
        if failure is None:
            return position
        await self._roll_back(entry, failure)
        raise AssertionError("unreachable")  # _roll_back raises

    async def _roll_back(self, entry: _Entry, failure: tuple[type[DeltaHedgeError], str]) -> None:
        """Unwind a failed open (the machine is ``rolling_back``); raise the failure."""
        error_type, why = failure
        position = entry.position
        with anyio.CancelScope(shield=True), self._tracing.phase(position, "rollback"):
            flat, _, unwound = await self._unwind(entry, "rollback")
            if flat:
                position.reason = f"{why}; unwound to flat"
                entry.send("rollback_done")
            else:
                exposure = self._exposure(entry, unwound)
                position.reason = f"{why}; rollback left exposure: {exposure}"
                entry.send("rollback_failed")
        raise error_type(f"position {position.id}: {position.reason}", position)

    def _size(self, entry: _Entry, available_balance: Decimal) -> Decimal:
        """The hedge quantity, or the position is rejected and the reason raised."""
        spot, perp = entry.spot, entry.perp
        try:
            spot_price = self._ticker.require_price(spot.symbol)
            perp_price = self._ticker.require_price(perp.symbol)
        except PriceUnavailableError as exc:
            self._reject(entry, str(exc))
            raise
        qty = self._sizer.calculate_matching_quantity(
            spot_price, available_balance, spot, perp, perp_price
        )
        if qty is None:
            reason = (
                f"no quantity of {spot.symbol}/{perp.symbol} at {spot_price} within "
                f"{min(available_balance, self._settings.max_position_size_usd)} USD meets both "
                f"instruments' minimums (qty {spot.min_qty}/{perp.min_qty}, "
                f"notional {spot.min_notional}/{perp.min_notional})"
            )
            self._reject(entry, reason)
            raise InsufficientSizeError(reason)
        ok, why = self._risk.check_can_open(qty * spot_price)
        if not ok:
            self._reject(entry, why)
            raise RiskCheckFailed(why)
        exposure = exposure_usd(qty, spot_price, perp_price)
        if self._risk.limits.any:
            # No await from here to the orders' leaving, and this entry is registered:
            # an open checked after this one counts it, so two at once cannot together
            # pass a limit.
            refused = self._risk.check_portfolio(exposure, self._held_exposures(entry))
            if refused is not None:
                self._reject(entry, refused)
                raise PortfolioLimitReached(refused)
        entry.exposure = exposure
        return qty

    def _judge_open(
        self, entry: _Entry, legs: list[Leg], timed_out: bool
    ) -> tuple[type[DeltaHedgeError], str] | None:
        """Tell the machine how the legs went; None if the position is now validated,
        else the error to raise once the open is unwound."""
        if timed_out:
            entry.send("timed_out")
            return DeltaHedgeTimeout, (
                f"legs not done within {self._settings.order_timeout_seconds} s ({describe(legs)})"
            )
        if any(leg.failed or leg.unknown for leg in legs):
            entry.send("leg_failed")
            return DeltaHedgeError, describe(legs)
        entry.send("legs_filled")
        return self._validate(entry)

    def _validate(self, entry: _Entry) -> tuple[type[DeltaHedgeError], str] | None:
        """Check the filled legs' delta (the machine is ``filled``)."""
        position = entry.position
        with self._tracing.phase(position, "validate") as span:
            status = self._delta.validate_position(position, position.spot_qty, position.perp_qty)
            span.set_attribute("fo.delta.drift", str(status.drift_pct))
            span.set_attribute("fo.delta.tolerance", str(status.tolerance))
            if status.is_within_tolerance:
                position.opened_at = self._now()
                entry.send("delta_ok")
                return None
            entry.send("delta_breached")
        return DeltaDriftExceeded, (
            f"spot {status.spot_qty} vs perp {status.perp_qty} drifts "
            f"{status.drift_pct:.4%}, tolerance {status.tolerance:.4%}"
        )

    # -- close

    async def close_position(self, position_id: str) -> Position:
        """Sell the spot and buy back the perp (reduce-only), both at once.

        Works on a ``validated`` position and retries one in ``needs_attention``.
        Returns it ``closed``; raises DeltaHedgeError / DeltaHedgeTimeout with the
        position in ``needs_attention`` and the exposure left recorded on it.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()  # a caller already cancelled: nothing
        entry = self._positions.get(position_id)
        if entry is None:
            raise UnknownPositionError(position_id)
        if entry.position.state not in ("validated", "needs_attention"):
            raise PositionStateError(
                f"position {position_id} is {entry.position.state}; only a validated "
                "position or one that needs attention can be closed"
            )
        entry.send("close")  # with no await since the check: a second close is refused
        return await self._close(entry)

    async def _close(self, entry: _Entry) -> Position:
        """Take a ``closing`` position to flat; raise if it could not be."""
        position, position_id = entry.position, entry.position.id
        with anyio.CancelScope(shield=True), self._tracing.phase(position, "close"):
            flat, timed_out, legs = await self._unwind(entry, "close")
            if flat:
                position.closed_at = self._now()
                position.reason = None
                entry.send("close_filled")
                return position
            position.reason = f"close left exposure: {self._exposure(entry, legs)}"
            entry.send("timed_out" if timed_out else "close_failed")
        error_type = DeltaHedgeTimeout if timed_out else DeltaHedgeError
        raise error_type(f"position {position_id}: {position.reason}", position)

    # -- the two legs

    def _leg(
        self, entry: _Entry, name: LegName, action: Action, attempt: int, side: Side, qty: Decimal
    ) -> Leg:
        instrument = entry.spot if name == "spot" else entry.perp
        cid = client_order_id(self.run_nonce, entry.position.id, name, action, attempt)
        request = OrderRequest(
            symbol=instrument.symbol,
            side=side,
            quantity=qty,
            category=instrument.category,
            client_order_id=cid,
            reduce_only=name == "perp" and action != "open",
        )
        # Recorded before the request leaves: a crash after sending can still find it.
        entry.position.client_order_ids.append(cid)
        return Leg(name, action, instrument, request)

    async def _execute(self, entry: _Entry, legs: list[Leg]) -> bool:
        """Send the legs at once and settle every outcome, whatever the caller does (the
        sending is shielded); move what filled into the position. True if the deadline
        passed."""
        timed_out = await self._sender.send(legs)
        for leg in legs:
            if not leg.unknown:
                self._apply(entry, leg)
        self._record_outcomes(legs)
        entry.unresolved += [leg for leg in legs if leg.unknown]
        return timed_out

    def _apply(self, entry: _Entry, leg: Leg) -> None:
        """Move the leg's fill into what the position holds, and its fee into its costs."""
        result, position = leg.result, entry.position
        if result is None:
            return
        position.orders.append(result)
        if result.filled_qty == 0:
            return
        inst, qty, price = leg.instrument, result.filled_qty, result.avg_price or ZERO
        if result.fee_currency == inst.base:
            fee_quote = result.fee * price
            # Bybit charges a spot buy's fee in the coin bought: less is held.
            net = qty - result.fee if result.side is Side.BUY else qty
        else:
            fee_quote, net = result.fee, qty
        sign = 1 if result.side is Side.BUY else -1
        if leg.name == "spot":
            position.spot_qty += sign * net
        else:
            position.perp_qty -= sign * qty  # perp_qty counts contracts short
        if leg.action == "open":
            position.entry_fees += fee_quote
            if leg.name == "spot":
                position.spot_entry_price = price
            else:
                position.perp_entry_price = price
        else:
            position.exit_fees += fee_quote

    # -- unwinding

    async def _unwind(self, entry: _Entry, action: Action) -> tuple[bool, bool, list[Leg]]:
        """Send the orders that take the position back to flat.

        Returns (flat, timed out, the legs sent). Each call is a new attempt with new client
        order ids. It first asks again about every order whose fate is still
        open, then reads what the venue holds, and sends only what both the
        position's record and the venue show: never more of a coin than the
        position bought less its fees, never on a leg whose earlier order may
        still fill.
        """
        if entry.unresolved:  # an earlier leg's fate is still open: ask again first
            pending, entry.unresolved = entry.unresolved, []
            await self._sender.resolve(pending)
            for leg in pending:
                if leg.unknown:
                    entry.unresolved.append(leg)
                else:
                    self._apply(entry, leg)
            self._record_outcomes(pending)
        position = entry.position
        attempt = entry.attempts[action] = entry.attempts.get(action, 0) + 1
        busy = {leg.name for leg in entry.unresolved}
        if not busy and self._is_flat(entry):
            return True, False, []  # every outcome known and nothing held: nothing to unwind
        try:
            held = await self._executor.fetch_holdings(entry.spot, entry.perp)
        except Exception as exc:
            entry.blocked = f"could not read the venue's holdings: {exc}"
            return False, False, []
        entry.blocked = None
        legs: list[Leg] = []
        sellable = min(position.spot_qty, held.spot)
        if "perp" in busy:
            # A perp order whose fate is open may have filled: a short the venue shows
            # beyond the record is hedged by the spot; selling it would leave it naked.
            sellable -= max(held.perp_short - position.perp_qty, ZERO)
        spot_qty = round_down(max(sellable, ZERO), entry.spot.qty_step)
        if "spot" not in busy and spot_qty >= entry.spot.min_qty:
            legs.append(self._leg(entry, "spot", action, attempt, Side.SELL, spot_qty))
        perp_qty = min(position.perp_qty, held.perp_short)
        if "perp" not in busy and perp_qty > 0:
            legs.append(self._leg(entry, "perp", action, attempt, Side.BUY, perp_qty))
        if legs:
            try:
                self._record_intents(entry, legs)
            except IntentNotRecorded as exc:
                entry.blocked = str(exc)
                return False, False, []
        timed_out = await self._execute(entry, legs) if legs else False
        return self._is_flat(entry), timed_out, legs

    @staticmethod
    def _is_flat(entry: _Entry) -> bool:
        # A spot remainder below the minimum order size cannot be sold: dust, not
        # exposure. A negative holding (more sold than bought) is never flat.
        spot, perp = entry.position.spot_qty, entry.position.perp_qty
        return (
            not entry.unresolved
            and perp == 0
            and spot >= 0
            and round_down(spot, entry.spot.qty_step) < entry.spot.min_qty
        )

    # -- what changed outside the run

    def adopt(
        self, position_id: str, trades: Sequence[OrderResult], held: Holdings
    ) -> list[OrderResult]:
        """Take into the position's record what the venue shows changed without the run:
        ``trades`` it did not send (the owner's, auto-deleveraging, a liquidation: at the
        venue's prices and fees, reducing the record no further than the venue shows),
        then coins gone from the wallet without a trade (moved out: no cash for them).
        Journaled as the position's orders (never sent), so a resume takes them back.
        Returns what was taken in; the caller brings the position back to hedged or flat."""
        entry = self._positions.get(position_id)
        if entry is None:
            raise UnknownPositionError(position_id)
        position = entry.position
        if position.state not in ("validated", "needs_attention") or entry.unresolved:
            return []  # an order of its own may still land: nothing is judged now
        change = outside_change(position, trades, held)
        legs: list[Leg] = [
            self._outside_leg(entry, "spot" if t.category is Category.SPOT else "perp", t)
            for t in change.trades
        ]
        if change.moved_out > 0:
            # Gone without a trade (moved out of the account): taken out at no price.
            legs.append(
                self._outside_leg(
                    entry,
                    "spot",
                    OrderResult(
                        client_order_id="",
                        order_id="moved-out",
                        symbol=entry.spot.symbol,
                        side=Side.SELL,
                        category=Category.SPOT,
                        status=OrderStatus.FILLED,
                        requested_qty=change.moved_out,
                        filled_qty=change.moved_out,
                        avg_price=ZERO,
                        fee=ZERO,
                        fee_currency=entry.spot.quote,
                        is_simulated=False,
                    ),
                )
            )
        if not legs:
            return []
        self._record_intents(entry, legs)
        for leg in legs:
            self._apply(entry, leg)
        self._record_outcomes(legs)
        return [leg.result for leg in legs if leg.result is not None]

    def _outside_leg(self, entry: _Entry, name: LegName, trade: OrderResult) -> Leg:
        attempt = entry.attempts["outside"] = entry.attempts.get("outside", 0) + 1
        instrument = entry.spot if name == "spot" else entry.perp
        cid = client_order_id(self.run_nonce, entry.position.id, name, "outside", attempt)
        request = OrderRequest(
            symbol=instrument.symbol,
            side=trade.side,
            quantity=trade.filled_qty,
            category=instrument.category,
            client_order_id=cid,
        )
        entry.position.client_order_ids.append(cid)
        result = msgspec.structs.replace(trade, client_order_id=cid)
        return Leg(name, "outside", instrument, request, result=result, acknowledged=True)

    # -- after a restart

    def restore(
        self,
        position: Position,
        spot: Instrument,
        perp: Instrument,
        orders: Sequence[tuple[OrderRequest, OrderResult | None, bool]],
    ) -> None:
        """Take back a position its journal left unfinished: its machine at the recorded
        state (a value that names no state is refused), its holdings worked out again
        from its orders' recorded fills. ``orders`` are (request, result, settled) in the
        order they were sent; those not settled are asked about by ``settle_restored``.
        Nothing is sent here."""
        if position.id in self._positions:
            raise InvalidOrderError(f"position id {position.id!r} is already in use")
        if position.state is None or position.state in FINAL_STATES:
            raise PositionStateError(f"position {position.id} is {position.state}: not unfinished")
        try:
            machine = PositionLifecycle(position, self._listeners)
        except ValueError as exc:
            raise PositionStateError(f"position {position.id}: {exc}") from None
        entry = _Entry(position, machine, spot, perp)
        position.spot_qty = position.perp_qty = position.entry_fees = position.exit_fees = ZERO
        position.orders = []
        for request, result, settled in orders:
            parsed = parse_client_order_id(request.client_order_id)
            if parsed is None:
                raise PositionStateError(
                    f"position {position.id}: {request.client_order_id} is not an id of its legs"
                )
            name, action, attempt = parsed
            entry.attempts[action] = max(entry.attempts.get(action, 0), attempt)
            instrument = spot if name == "spot" else perp
            leg = Leg(name, action, instrument, request, result=result)
            leg.acknowledged = result is not None
            if settled:
                self._apply(entry, leg)
            else:
                leg.unknown = True
                entry.unresolved.append(leg)
            if action == "open":
                entry.opening.append(leg)
            if request.client_order_id not in position.client_order_ids:
                position.client_order_ids.append(request.client_order_id)
        self._positions[position.id] = entry
        self._unfinished[position.id] = entry

    async def settle_restored(self) -> list[OrderRequest]:
        """Ask the venue about every restored order whose outcome the journal lacks (an
        order not found is absent only once the venue can no longer accept it, counted
        from now: the journal cannot tell when the run stopped). Returns those the venue
        could not tell about."""
        pending = [(e, leg) for e in self._positions.values() for leg in e.unresolved]
        with anyio.CancelScope(shield=True):
            await self._sender.resolve([leg for _, leg in pending])
        for entry in {e for e, _ in pending}:
            found = [leg for leg in entry.unresolved if not leg.unknown]
            entry.unresolved = [leg for leg in entry.unresolved if leg.unknown]
            for leg in found:
                self._apply(entry, leg)
            self._record_outcomes(found)
        return [leg.request for _, leg in pending if leg.unknown]

    async def resume(self, position_id: str) -> Position:
        """Carry a restored position on from its state: an open, a rollback or a close
        caught midway is finished as it would have been; an open position (validated)
        or one needing attention is returned as it is. Raises as open and close do."""
        entry = self._positions.get(position_id)
        if entry is None:
            raise UnknownPositionError(position_id)
        position = entry.position
        if position.state == "pending":
            if not any(leg.result is not None or leg.unknown for leg in entry.opening):
                self._reject(entry, "the run stopped before its orders left")
                return position
            entry.send("send_legs")  # they left (the venue has them) before the record said
        failure: tuple[type[DeltaHedgeError], str] | None = None
        if position.state == "legs_sent":
            failure = self._judge_open(entry, entry.opening, timed_out=False)
        elif position.state == "filled":
            failure = self._validate(entry)
        elif position.state == "rolling_back":
            failure = DeltaHedgeError, position.reason or "an open that failed before a restart"
        elif position.state == "closing":
            return await self._close(entry)
        if failure is not None:
            await self._roll_back(entry, failure)
        return position

    # -- the journal

    def _record_intents(self, entry: _Entry, legs: list[Leg]) -> None:
        """The legs about to leave, durable in the journal first; if they cannot be,
        IntentNotRecorded and nothing is sent."""
        if self._journal is None:
            return
        try:
            self._journal.record_intents(entry.position, [leg.request for leg in legs])
        except RunMustStop:
            raise
        except Exception as exc:
            ids = ", ".join(leg.request.client_order_id for leg in legs)
            raise IntentNotRecorded(
                f"the intent of {ids} could not be recorded in the journal, so nothing was "
                f"sent: {exc}"
            ) from None

    def _record_outcomes(self, legs: Sequence[Leg]) -> None:
        if self._journal is None:
            return
        for leg in legs:
            error = None if leg.error is None else str(leg.error)
            quote = self._ticker.get_quote(leg.request.symbol)
            self._journal.record_outcome(
                leg.request, leg.result, leg.status, error, None if quote is None else quote[0]
            )

    # -- helpers

    def _reject(self, entry: _Entry, reason: str) -> None:
        entry.position.reason = reason
        entry.send("reject")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._ticker.clock(), UTC)

    @staticmethod
    def _exposure(entry: _Entry, legs: Sequence[Leg] = ()) -> str:
        p = entry.position
        text = f"spot {p.spot_qty} {entry.spot.base} long, perp {p.perp_qty} short"
        if p.spot_qty < 0 or p.perp_qty < 0:
            text += " (more sold than bought: check the account)"
        if entry.unresolved:
            ids = ", ".join(leg.request.client_order_id for leg in entry.unresolved)
            text += f", outcome unknown for {ids}"
        if entry.blocked:
            text += f"; {entry.blocked}"
        failed = [leg for leg in legs if leg.error is not None]
        if failed:
            text += f" ({describe(failed)})"
        return text
