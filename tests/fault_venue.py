"""The real PaperExecutor behind a venue with a real venue's faults and timing.

Faults are set per order, keyed by the client order id without the run nonce
(``pos1-po1``: position pos1, perp open, attempt 1). Time is the event loop's
(``anyio.current_time()``), so under trio's MockClock a schedule of seconds runs
in microseconds. Like Bybit, a request whose answer was lost may still land until
``late_arrival_seconds`` after it left, never after.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import anyio
import msgspec

from orchestrator.exceptions import OrchestratorError, OrderOutcomeUnknown, OrderRejected
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import (
    ZERO,
    Category,
    Holdings,
    Instrument,
    OrderRequest,
    OrderResult,
    OrderStatus,
)
from orchestrator.settings import FeeSettings
from tests.support import INSTRUMENTS

D = Decimal
ONE = D(1)
Send = Literal["ok", "reject", "lost", "lost_filled", "lands", "working", "partial"]


@dataclass(frozen=True)
class Fault:
    """What happens to one order.

    send: ok; reject (the venue refuses, saying why); lost (dropped before it reached
    the venue); lost_filled (filled, the answer lost); lands (the answer lost, the
    order lands ``delay`` s later: if that is past the acceptance window the venue
    refuses it); working (acknowledged as working, fills ``fraction`` after ``delay``
    s, the rest cancelled, unless cancelled first); partial (fills ``fraction`` at
    once, the rest cancelled).
    unseen: lookups answer nothing for this long after it reached the venue.
    lookup_fails: the first n lookups fail. lookup_hangs: lookups never answer
    until the venue is healed.
    """

    send: Send = "ok"
    delay: float = 0.0
    fraction: Decimal = ONE
    unseen: float = 0.0
    lookup_fails: int = 0
    lookup_hangs: bool = False


class FaultVenue(PaperExecutor):
    late_arrival_seconds = 0.4

    def __init__(self, ticker: TickerService, *, balance: Decimal = D(100_000)) -> None:
        super().__init__(ticker, FeeSettings(), INSTRUMENTS)
        self.set_initial_balance("USDT", balance)
        self.faults: dict[str, Fault] = {}
        self.holdings_fails = 0
        self.sent: list[OrderRequest] = []  # every place_order call
        self.placed: Counter[str] = Counter()  # orders that reached the venue, by client id
        self._lookups_failed: Counter[str] = Counter()
        self._due: list[tuple[float, OrderRequest, Decimal]] = []  # (when, order, share)
        self._working: dict[str, OrderResult] = {}
        self._seen_at: dict[str, float] = {}
        self._healed = anyio.Event()

    # -- the test's handles

    def heal(self) -> None:
        """Every fault ends: lookups and reads answer, nothing more goes wrong."""
        self.faults.clear()
        self.holdings_fails = 0
        self._healed.set()

    def pending(self, client_order_ids: list[str]) -> list[str]:
        """Those of the ids that are still working or may still land."""
        due = {r.client_order_id for _, r, _ in self._due}
        return [c for c in client_order_ids if c in due or c in self._working]

    async def settle(self, seconds: float = 10.0) -> None:
        """Let time pass until everything delayed has landed (or was refused)."""
        await anyio.sleep(seconds)
        await self._land_due()

    # -- the venue

    def _fault(self, client_order_id: str) -> Fault:
        return self.faults.get(client_order_id.split("-", 1)[-1], Fault())

    async def _land_due(self) -> None:
        now = anyio.current_time()
        for item in sorted(self._due, key=lambda i: i[0]):
            when, request, share = item
            if when > now:
                continue
            self._due.remove(item)
            self._working.pop(request.client_order_id, None)
            await self._fill(request, share)

    async def _fill(self, request: OrderRequest, share: Decimal) -> OrderResult:
        """Fill ``share`` of the order on paper, the rest cancelled; a fill the
        balances do not allow is refused then, as the venue would."""
        cid = request.client_order_id
        qty = request.quantity * share
        try:
            result = await super().place_order(msgspec.structs.replace(request, quantity=qty))
        except OrchestratorError:
            result = self._nothing(request, OrderStatus.CANCELLED)
        else:
            if share < 1:
                result = msgspec.structs.replace(
                    result, requested_qty=request.quantity, status=OrderStatus.PARTIALLY_FILLED
                )
        self._orders[cid] = result
        return result

    def _nothing(self, request: OrderRequest, status: OrderStatus) -> OrderResult:
        return OrderResult(
            client_order_id=request.client_order_id,
            order_id=f"v_{request.client_order_id}",
            symbol=request.symbol,
            side=request.side,
            category=request.category,
            status=status,
            requested_qty=request.quantity,
            filled_qty=ZERO,
            avg_price=None,
            fee=ZERO,
            fee_currency="USDT",
            is_simulated=True,
        )

    async def place_order(self, request: OrderRequest) -> OrderResult:
        self.sent.append(request)
        await anyio.lowlevel.checkpoint()  # a real venue answers later: the other leg starts
        await self._land_due()
        fault, cid = self._fault(request.client_order_id), request.client_order_id
        if fault.send == "reject":
            raise OrderRejected('bybit {"retCode":170131,"retMsg":"Insufficient balance."}')
        if fault.send == "lost":
            raise OrderOutcomeUnknown("ExchangeNotAvailable: connection reset before sending")
        self.placed[cid] += 1
        self._seen_at[cid] = anyio.current_time()
        if cid in self._orders:  # as Bybit: a reused orderLinkId is refused
            raise OrderOutcomeUnknown('bybit {"retCode":170141,"retMsg":"Duplicate clientOrderId"}')
        if fault.send == "lands":
            if fault.delay < self.late_arrival_seconds:  # later, the venue refuses it
                self._due.append((anyio.current_time() + fault.delay, request, D(1)))
            raise OrderOutcomeUnknown("RequestTimeout: bybit POST /v5/order/create timed out")
        if fault.send == "working":
            result = self._nothing(request, OrderStatus.OPEN)
            self._working[cid] = result
            self._due.append((anyio.current_time() + fault.delay, request, fault.fraction))
            return result
        share = fault.fraction if fault.send == "partial" else D(1)
        result = await self._fill(request, share)
        if fault.send == "lost_filled":
            raise OrderOutcomeUnknown("RequestTimeout: the answer was lost")
        return result

    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        await self._land_due()
        for cid, result in list(self._working.items()):
            if result.order_id == order_id:
                del self._working[cid]
                self._due = [d for d in self._due if d[1].client_order_id != cid]
                self._orders[cid] = msgspec.structs.replace(result, status=OrderStatus.CANCELLED)
                return True
        return False

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        fault = self._fault(client_order_id)
        if fault.lookup_hangs:
            await self._healed.wait()
        if self._lookups_failed[client_order_id] < fault.lookup_fails:
            self._lookups_failed[client_order_id] += 1
            raise OrderOutcomeUnknown("bybit GET /v5/order/realtime 503 Service Unavailable")
        await self._land_due()
        seen = self._seen_at.get(client_order_id)
        if seen is None or anyio.current_time() < seen + fault.unseen:
            return None
        if client_order_id in self._working:
            return self._working[client_order_id]
        return await super().fetch_order_by_client_id(client_order_id, symbol)

    async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
        await self._land_due()
        if self.holdings_fails:
            self.holdings_fails -= 1
            raise OrderOutcomeUnknown("bybit GET /v5/account/wallet-balance 502 Bad Gateway")
        return await super().fetch_holdings(spot, perp)
