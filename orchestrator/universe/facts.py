"""What is known of one pair at one instant: the raw facts a rank is worked out from."""

from __future__ import annotations

from decimal import Decimal

import msgspec


class PairFacts(msgspec.Struct, frozen=True):
    market: str  # market id: BTCUSDT
    spot: str  # BTC/USDT
    perp: str  # BTC/USDT:USDT
    interval_hours: int  # the perp's own funding interval
    # Settled rates (time ms, rate per interval) within the history span, oldest first.
    rates: list[tuple[int, Decimal]]
    first_settled_ms: int | None  # the earliest settlement known (listing age)
    turnover_24h: Decimal  # the perp's, in the quote currency
    predicted_rate: Decimal | None = None  # the venue's next rate (live only)
    next_funding_ms: int | None = None
    spread: Decimal | None = None  # perp (ask - bid) / mid (live only)
    basis: Decimal | None = None  # perp / spot - 1
    # Recorded: when its newest perp candle closed, by the instant (None: live, or none).
    data_ends_ms: int | None = None

    @property
    def last_rate(self) -> Decimal | None:
        return self.rates[-1][1] if self.rates else None
