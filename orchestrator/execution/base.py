"""The one interface both legs go through, on paper and live alike (PAPR-02)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from orchestrator.models import Category, Holdings, Instrument, OrderRequest, OrderResult


class Executor(ABC):
    """Places, cancels and finds orders on one venue.

    ``place_order`` returns the order's result once the venue has reported it
    (filled, partly filled or cancelled), or raises:

    - ``InvalidOrderError`` / ``PriceUnavailableError``: refused before sending;
    - ``OrderRejected`` (``InsufficientFundsError``): the venue refused it, nothing filled;
    - ``OrderOutcomeUnknown``: it may be live; find it with ``fetch_order_by_client_id``.

    ``late_arrival_seconds``: how long after a request was signed the venue may
    still accept it (Bybit: its ``recvWindow`` plus the clock skew allowed). An
    order whose answer was lost is concluded absent only once a lookup after that
    finds nothing.
    """

    late_arrival_seconds: float = 0.0

    async def prepare(self, requests: Sequence[OrderRequest]) -> None:
        """Called just before ``requests`` are placed together: whatever sending them
        together needs (the live venue's request budgets) is taken here, for all of
        them at once, so that none waits behind another once they leave. Nothing on
        paper."""
        return None

    @abstractmethod
    async def place_order(self, request: OrderRequest) -> OrderResult: ...

    @abstractmethod
    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        """Cancel a working order; False if it was no longer open."""

    @abstractmethod
    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        """The venue's view of the order sent as ``client_order_id``; None if it never arrived."""

    @abstractmethod
    async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
        """What the venue holds now of ``spot``'s coin and of ``perp``'s short position."""
