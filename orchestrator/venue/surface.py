"""What the HTTP handlers see of the venue: the v5 endpoints (endpoints.py) and the admin
API (admin.py) are written against these, and the Venue (server.py) provides them, so the
handlers never import the server that routes to them."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from orchestrator.venue.audit import Audit
from orchestrator.venue.faults import FaultBook
from orchestrator.venue.market import RecordedMarket, SyntheticHistory
from orchestrator.venue.records import Execution, Order
from orchestrator.venue.state import Book


class MarketSurface(Protocol):
    """What the v5 endpoints read and change."""

    @property
    def book(self) -> Book: ...
    @property
    def recorded(self) -> RecordedMarket | None: ...
    @property
    def synthetic(self) -> SyntheticHistory: ...
    @property
    def funding_rates(self) -> dict[str, Decimal]: ...
    @property
    def clock_offset_ms(self) -> int: ...
    def server_ms(self) -> int: ...
    def market_ms(self) -> int: ...


class AdminSurface(MarketSurface, Protocol):
    """What the admin API reads and changes besides."""

    @property
    def faults(self) -> FaultBook: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def hits(self) -> dict[str, int]: ...
    @property
    def orders(self) -> dict[str, Order]: ...
    @property
    def admin_token(self) -> str | None: ...
    def set_price(self, symbol: str, price: Decimal | str, category: str | None = None) -> None: ...
    def set_balance(self, coin: str, amount: Decimal | str) -> None: ...
    def settle_funding(
        self, symbol: str, rate: Decimal | str, time_ms: int | None = None,
        mark: Decimal | None = None,
    ) -> Execution | None: ...  # fmt: skip
    def advance_to(self, time_ms: int) -> list[Execution]: ...
