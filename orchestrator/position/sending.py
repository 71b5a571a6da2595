"""Sending a position's legs together, and finding out what became of each.

Both legs leave from one anyio task group at the same moment. Each leg catches its
own errors and records an outcome, so one leg failing never cancels the other in
flight. A leg the venue still works on is waited for until the deadline
(``order_timeout_seconds``): one still working then has timed out. A leg with no
answer, or one still working, is then looked up by its client order id (and cancelled
if it still works) until the venue answers or can no longer accept it; until then it
stays unknown, never failed. What the legs' fills mean for the position is the
manager's business (manager.py).
"""

from __future__ import annotations

import time

import anyio

from orchestrator.exceptions import OrchestratorError, OrderOutcomeUnknown
from orchestrator.execution.base import Executor
from orchestrator.models import OrderStatus
from orchestrator.position.legs import LOOKUP_INTERVAL, Leg
from orchestrator.position.tracer import PositionTracer
from orchestrator.settings import TradingSettings


class LegSender:
    def __init__(
        self, executor: Executor, settings: TradingSettings, tracing: PositionTracer
    ) -> None:
        self._executor = executor
        self._timeout = settings.order_timeout_seconds
        # Looking up legs whose outcome is unknown may take until the venue can no
        # longer accept them: the order deadline plus the venue's late-arrival window.
        self._resolve_deadline = self._timeout + executor.late_arrival_seconds
        self._tracing = tracing

    async def send(self, legs: list[Leg]) -> bool:
        """Send ``legs`` (one at least) at once and settle every outcome the venue can
        tell, whatever the caller does (the caller's cancellation waits until this
        returns). True if the deadline passed."""
        async with anyio.create_task_group() as tg:
            # The group's own scope is the shield and, once the legs' budgets are
            # taken, their deadline: no cancel scope around it on every open and close.
            tg.cancel_scope.shield = True
            await self._executor.prepare([leg.request for leg in legs])
            tg.cancel_scope.deadline = anyio.current_time() + self._timeout
            # The first leg is placed by this task, the others by tasks of their own:
            # all leave together (each runs until its request is out), one task fewer.
            for leg in legs[1:]:
                tg.start_soon(self._place, leg)
            await self._place(legs[0])
        timed_out = tg.cancel_scope.cancelled_caught
        self._tracing.legs_sent(legs)
        for leg in legs:
            if leg.result is None and leg.error is None:
                leg.unknown = True  # cut off by the deadline while in flight
                leg.error = OrderOutcomeUnknown(f"no answer within {self._timeout} s")
        pending = [leg for leg in legs if _needs_lookup(leg)]
        if pending:
            await self.resolve(pending)
        return timed_out

    async def resolve(self, legs: list[Leg]) -> None:
        """Ask the venue, by client order id, what became of each leg; cancel what still
        works. A leg stays unknown unless the venue answers: a lookup cut off by the
        deadline (or failing) leaves it unknown, never failed. Shielded."""
        if not legs:
            return
        for leg in legs:
            leg.unknown = True
        with anyio.move_on_after(self._resolve_deadline, shield=True):
            async with anyio.create_task_group() as tg:
                for leg in legs:
                    tg.start_soon(self._lookup, leg)

    async def _place(self, leg: Leg) -> None:
        with self._tracing.order(leg):
            leg.sent_at = time.perf_counter()
            try:
                leg.result = await self._executor.place_order(leg.request)
                leg.acknowledged = True
                await self._until_done(leg)
            except OrderOutcomeUnknown as exc:
                leg.error, leg.unknown = exc, True
                leg.acknowledged = exc.order_id is not None
            except OrchestratorError as exc:  # refused before or by the venue: nothing filled
                leg.error = exc
            except Exception as exc:  # a surprise: the order may be out, so ask the venue
                leg.error, leg.unknown = exc, True
            finally:
                # Whatever happened, the request was signed by now: the venue's window
                # to accept it runs from here at the latest (on the loop's clock).
                leg.left_by = anyio.current_time()

    async def _until_done(self, leg: Leg) -> None:
        """While the venue still works on the order, read it again: until it is done, or
        until the deadline cuts the wait off (the legs time out, and ``resolve`` cancels
        it and reads what it filled)."""
        symbol, cid = leg.request.symbol, leg.request.client_order_id
        while leg.result is not None and leg.result.status is OrderStatus.OPEN:
            await anyio.sleep(LOOKUP_INTERVAL)
            try:
                found = await self._executor.fetch_order_by_client_id(cid, symbol)
            except Exception:  # the venue could not be asked: ask again, until the deadline
                continue
            if found is not None:  # order search is eventually consistent: keep the last
                leg.result = found

    async def _lookup(self, leg: Leg) -> None:
        with self._tracing.lookup(leg):
            await self._ask_venue(leg)

    async def _ask_venue(self, leg: Leg) -> None:
        symbol, cid = leg.request.symbol, leg.request.client_order_id
        # An order the venue acknowledged exists even when a lookup misses it (order
        # search is eventually consistent); one never acknowledged may still land
        # until the venue's acceptance window has passed.
        acknowledged = leg.acknowledged
        absent_after = (leg.left_by or anyio.current_time()) + self._executor.late_arrival_seconds
        cancelled = False
        while True:
            try:
                found = await self._executor.fetch_order_by_client_id(cid, symbol)
            except Exception as exc:  # the venue could not be asked: ask again, until the deadline
                leg.lookup_error = exc
                await anyio.sleep(LOOKUP_INTERVAL)
                continue
            if found is None:
                if not acknowledged and anyio.current_time() >= absent_after:
                    leg.unknown, leg.absent, leg.result = False, True, None
                    return
                await anyio.sleep(LOOKUP_INTERVAL)
            elif found.status is OrderStatus.OPEN:
                leg.result = found
                acknowledged = leg.acknowledged = True
                if cancelled:  # the venue has not caught up with the cancel yet
                    await anyio.sleep(LOOKUP_INTERVAL)
                try:
                    await self._executor.cancel_order(found.order_id, symbol, leg.request.category)
                except Exception as exc:  # read it again, and cancel again if it still works
                    leg.lookup_error = exc
                cancelled = True  # then read what the cancel left
            else:
                leg.result, leg.unknown = found, False
                return


def _needs_lookup(leg: Leg) -> bool:
    return leg.unknown or (leg.result is not None and leg.result.status is OrderStatus.OPEN)
