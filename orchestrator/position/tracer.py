"""One trace per position: a root span for its life, a span per phase, a span per order.

The root span and its transition events come from the machine itself: this
object is a listener on every PositionMachine. The manager opens phase and order
spans around its I/O, through the same object, so all span names and attribute
names live here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from machines import FINAL_STATES
from orchestrator.fills import exit_prices, orders_money
from orchestrator.models import ZERO, OrderResult, Position
from orchestrator.money import exact
from orchestrator.position.legs import Leg

TRACER_NAME = "funding-orchestrator"
_OFF: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)  # reusable, stateless


class PositionTracer:
    """``PositionTracer(None)`` traces nothing, at almost no cost: the manager does not
    attach it to the machines, and its spans are one shared no-op context."""

    def __init__(
        self, tracer: Tracer | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.enabled = tracer is not None
        self._tracer = tracer or trace.NoOpTracer()
        self._clock = clock  # the market's clock: the data's time in a replay
        self._roots: dict[str, Span] = {}
        # Per position: funding received and the value of what was left held at the end,
        # as the ledger wrote them (its on_money): the root span ends with them.
        self._money: dict[str, tuple[Decimal, Decimal]] = {}

    def money(self, position_id: str, kind: str, amount: Decimal) -> None:
        """A ledger entry of a position: "funding" or "mark" (what it still holds)."""
        if not self.enabled:
            return
        funding, marked = self._money.get(position_id, (ZERO, ZERO))
        with exact():
            if kind == "funding":
                funding += amount
            else:
                marked += amount
        self._money[position_id] = (funding, marked)

    # -- the machine's listener

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        root = self._root(model)
        root.add_event(
            "transition",
            {
                "fo.transition.event": str(event),
                "fo.transition.from": source.id,
                "fo.transition.to": target.id,
                "fo.market_time": self._market_time(),
            },
        )
        if target.id in FINAL_STATES:
            self.finish(model)

    def note(self, position: Position, name: str, attributes: dict[str, str]) -> None:
        """An event on the position's trace that explains a decision about it (a
        rotation: which pair, the expected yields, the costs)."""
        if self.enabled:
            self._root(position).add_event(
                name, {**attributes, "fo.market_time": self._market_time()}
            )

    # -- spans the manager opens

    def phase(self, position: Position, name: str) -> AbstractContextManager[Span]:
        """A child of the position's root span, current while the phase runs, so the
        order tasks started inside become its children."""
        # Disabled, not even a no-op span: this is on every position's path.
        return self._phase(position, name) if self.enabled else _OFF

    def order(self, leg: Leg) -> AbstractContextManager[Span]:
        return self._order(leg) if self.enabled else _OFF

    def lookup(self, leg: Leg) -> AbstractContextManager[Span]:
        return self._lookup(leg) if self.enabled else _OFF

    @contextmanager
    def _phase(self, position: Position, name: str) -> Iterator[Span]:
        context = trace.set_span_in_context(self._root(position))
        with self._tracer.start_as_current_span(
            f"position.{name}", context=context, attributes={"fo.position.id": position.id}
        ) as span:
            yield span

    @contextmanager
    def _order(self, leg: Leg) -> Iterator[Span]:
        request = leg.request
        with self._tracer.start_as_current_span(
            "order",
            attributes={
                "fo.order.leg": leg.name,
                "fo.order.action": leg.action,
                "fo.order.symbol": request.symbol,
                "fo.order.category": request.category.value,
                "fo.order.side": request.side.value,
                "fo.order.requested_qty": str(request.quantity),
                "fo.order.client_order_id": request.client_order_id,
                "fo.order.reduce_only": request.reduce_only,
            },
            record_exception=False,  # legs never raise: their errors are recorded below
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            finally:  # also when the deadline cuts the request off
                self._order_outcome(span, leg)

    def _order_outcome(self, span: Span, leg: Leg) -> None:
        if leg.sent_at is not None:
            span.set_attribute("fo.order.latency_ms", (time.perf_counter() - leg.sent_at) * 1000)
        if leg.result is not None:
            self._result_attributes(span, leg.result)
        if leg.result is not None:
            outcome = leg.result.status.value
        elif leg.unknown or leg.error is None:  # no error and no result: cut off in flight
            outcome = "unknown"
        else:
            outcome = "failed"
        span.set_attribute("fo.order.outcome", outcome)
        if leg.error is not None:
            span.record_exception(leg.error)
            span.set_status(Status(StatusCode.ERROR, str(leg.error)))

    @contextmanager
    def _lookup(self, leg: Leg) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            "order.lookup",
            attributes={
                "fo.order.leg": leg.name,
                "fo.order.action": leg.action,
                "fo.order.client_order_id": leg.request.client_order_id,
            },
        ) as span:
            yield span
            span.set_attribute("fo.order.outcome", "unknown" if leg.unknown else "resolved")
            if leg.result is not None:
                self._result_attributes(span, leg.result)

    def legs_sent(self, legs: list[Leg]) -> None:
        """Leg skew on the current (phase) span: the time between the legs leaving."""
        if not self.enabled:
            return
        sent = [leg.sent_at for leg in legs if leg.sent_at is not None]
        span = trace.get_current_span()
        span.set_attribute("fo.legs.count", len(legs))
        if len(sent) >= 2:
            span.set_attribute("fo.legs.skew_ms", (max(sent) - min(sent)) * 1000)

    def finish(self, position: Position) -> None:
        """End the position's root span (at a final state, or when a run stops)."""
        root = self._roots.pop(position.id, None)
        if root is None:
            return
        funding, marked = self._money.pop(position.id, (ZERO, ZERO))
        with exact():
            fees, cash = orders_money(position)
            price_pnl = cash + marked
            net_pnl = funding - fees + price_pnl
            spot_exit, perp_exit = exit_prices(position)
        figures = {
            "fo.position.funding": funding,
            "fo.position.fees_paid": fees,
            "fo.position.price_pnl": price_pnl,
            "fo.position.net_pnl": net_pnl,
            "fo.position.spot_entry_price": position.spot_entry_price,
            "fo.position.perp_entry_price": position.perp_entry_price,
            "fo.position.spot_exit_price": spot_exit,
            "fo.position.perp_exit_price": perp_exit,
        }
        root.set_attributes({k: str(v) for k, v in figures.items() if v is not None})
        for name, when in (("opened_at", position.opened_at), ("closed_at", position.closed_at)):
            if when is not None:  # market time: the data's in a replay
                root.set_attribute(f"fo.position.{name}", when.isoformat())
        root.set_attributes(
            {
                "fo.position.final_state": position.state or "",
                "fo.position.quantity": str(position.quantity),
                "fo.position.entry_fees": str(position.entry_fees),
                "fo.position.exit_fees": str(position.exit_fees),
                "fo.position.spot_qty": str(position.spot_qty),
                "fo.position.perp_qty": str(position.perp_qty),
            }
        )
        if position.reason:
            root.set_attribute("fo.position.reason", position.reason)
        if position.state == "needs_attention":
            root.set_status(Status(StatusCode.ERROR, position.reason or "needs attention"))
        root.end()

    def finish_all(self, positions: list[Position]) -> None:
        for position in positions:
            self.finish(position)

    # -- helpers

    def _root(self, position: Position) -> Span:
        if not self.enabled:
            return trace.INVALID_SPAN
        root = self._roots.get(position.id)
        if root is None:
            # A new trace: positions are not children of whatever runs them.
            root = self._tracer.start_span(
                "position",
                context=Context(),
                attributes={
                    "fo.position.id": position.id,
                    "fo.position.spot_symbol": position.spot_symbol,
                    "fo.position.perp_symbol": position.perp_symbol,
                    "fo.market_time": self._market_time(),
                },
            )
            self._roots[position.id] = root
        return root

    def _market_time(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat()

    @staticmethod
    def _result_attributes(span: Span, result: OrderResult) -> None:
        span.set_attributes(
            {
                "fo.order.filled_qty": str(result.filled_qty),
                "fo.order.avg_price": "" if result.avg_price is None else str(result.avg_price),
                "fo.order.fee": str(result.fee),
                "fo.order.fee_currency": result.fee_currency,
                "fo.order.venue_order_id": result.order_id,
                "fo.order.simulated": result.is_simulated,
                "fo.order.status": result.status.value,
            }
        )
