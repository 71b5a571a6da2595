"""The venue's audit record: every order create it received, and checks over it.

Each record is taken where the request arrives (``time.time_ns`` and
``time.perf_counter_ns`` before anything else is done with it), so the leg skew a
benchmark measures is the one the venue sees.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from orchestrator.venue.records import ZERO, Order
from orchestrator.venue.state import Book

_ATTEMPT = re.compile(r"\d+$")
# Creates refused before they were read (no valid key or signature, a body that is not
# a JSON object) are kept up to this many; later ones are only counted, so anyone who
# can reach the port cannot grow the record without bound.
MAX_REFUSED = 1000
_FIELD_CHARS = 200  # of each summary field: an orderLinkId is at most 36


def intent_of(link_id: str) -> str:
    """The project's intent key of a client order id: the id without its attempt number
    (``pos1-so1`` and ``pos1-so2`` are two attempts of one spot open)."""
    return _ATTEMPT.sub("", link_id)


@dataclass
class CreateRecord:
    seq: int
    arrival_ns: int  # time.time_ns() when the request arrived
    arrival_perf_ns: int  # time.perf_counter_ns(), for intervals
    category: str
    symbol: str
    side: str
    qty: str
    order_link_id: str
    reduce_only: bool
    signed_ms: int | None = None  # X-BAPI-TIMESTAMP
    recv_window: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    # What became of it: "placed", "rejected" (a retCode), "auth" (refused before
    # reading it), "dropped" (a fault let it vanish), "pending" (it lands later),
    # "expired" (it would have landed after its recv window).
    outcome: str = "received"
    ret_code: int | None = None
    fault: str | None = None
    order_id: str | None = None

    def view(self) -> dict[str, Any]:
        return asdict(self)


def _field(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _FIELD_CHARS else text[:_FIELD_CHARS] + "..."


@dataclass
class Audit:
    book: Book
    creates: list[CreateRecord] = field(default_factory=list)
    refused_kept: int = 0
    refused_dropped: int = 0  # refused creates beyond MAX_REFUSED, counted only

    def refuse(self, entry: CreateRecord, outcome: str, ret_code: int) -> None:
        """Mark ``entry`` refused before it was read; beyond MAX_REFUSED such entries
        it is taken out of the record again and counted in ``refused_dropped``."""
        entry.outcome, entry.ret_code = outcome, ret_code
        entry.body = {}  # not read, so not kept: it can be as large as a request
        if self.refused_kept < MAX_REFUSED:
            self.refused_kept += 1
            return
        self.refused_dropped += 1
        if self.creates and self.creates[-1] is entry:
            self.creates.pop()
        else:
            self.creates.remove(entry)

    def record(self, body: dict[str, Any], arrival_ns: int, arrival_perf_ns: int) -> CreateRecord:
        entry = CreateRecord(
            seq=len(self.creates) + 1,
            arrival_ns=arrival_ns,
            arrival_perf_ns=arrival_perf_ns,
            category=_field(body.get("category", "")),
            symbol=_field(body.get("symbol", "")),
            side=_field(body.get("side", "")),
            qty=_field(body.get("qty", "")),
            order_link_id=_field(body.get("orderLinkId", "")),
            reduce_only=body.get("reduceOnly") is True,
            body=body,
        )
        self.creates.append(entry)
        return entry

    def view(self) -> list[dict[str, Any]]:
        return [entry.view() for entry in self.creates]

    # -- checks -----------------------------------------------------------------

    def placed_twice(self) -> list[str]:
        """Client order ids the venue holds more than one order for (must be empty)."""
        counts = Counter((o.category, o.link_id) for o in self.book.orders.values() if o.link_id)
        return sorted(link for (_, link), n in counts.items() if n > 1)

    def sent_twice(self) -> list[str]:
        """Client order ids that arrived in more than one create request (resends)."""
        counts = Counter(e.order_link_id for e in self.creates if e.order_link_id)
        return sorted(link for link, n in counts.items() if n > 1)

    def live_overlaps(
        self, now_ms: int, intent: Callable[[str], str] = intent_of
    ) -> list[tuple[str, str, str]]:
        """(intent, order id, order id) of two orders of one intent that were live at
        once (the later created before the earlier was done), or that together filled
        more than the intent asked for (the later redid what the earlier had done). A
        retry that only completes what an earlier attempt left is neither."""
        groups: dict[tuple[str, str], list[Order]] = defaultdict(list)
        for order in self.book.orders.values():
            if order.link_id:
                groups[order.category, intent(order.link_id)].append(order)
        found = []
        for (_, key), unsorted in groups.items():
            orders = sorted(unsorted, key=lambda o: o.created_ms)
            asked = max((o.base_qty for o in orders), default=ZERO)
            filled = ZERO
            for i, a in enumerate(orders):
                filled += a.filled
                for b in orders[i + 1 :]:
                    a_end = a.done_ms if a.done_ms is not None else now_ms
                    b_end = b.done_ms if b.done_ms is not None else now_ms
                    if a.created_ms <= b_end and b.created_ms <= a_end:
                        found.append((key, a.order_id, b.order_id))
            if len(orders) > 1 and filled > asked:
                first, *later = orders
                found += [(key, first.order_id, o.order_id) for o in later if o.filled > 0]
        return sorted(set(found))

    def oversold(self) -> dict[str, Decimal]:
        """Base coins of which the spot fills ever sold more than they had bought
        (net of the base-coin fee), with the largest excess; must be empty."""
        held: dict[str, Decimal] = defaultdict(lambda: ZERO)
        worst: dict[str, Decimal] = {}
        for execution in self.book.executions:
            if execution.exec_type != "Trade" or execution.category != "spot":
                continue
            inst = self.book.instrument("spot", execution.symbol)
            if execution.side == "Buy":
                held[inst.base] += execution.qty - execution.fee  # the fee is in the base coin
            else:
                held[inst.base] -= execution.qty
                if held[inst.base] < 0:
                    worst[inst.base] = max(worst.get(inst.base, ZERO), -held[inst.base])
        return worst

    def arrival_skew_ms(self, first: str, second: str) -> float:
        """Milliseconds between the arrival of two create requests, by client order id."""
        arrivals = {e.order_link_id: e.arrival_perf_ns for e in self.creates}
        return (arrivals[second] - arrivals[first]) / 1e6
