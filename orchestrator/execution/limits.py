"""Bybit's request limits, kept by the project instead of ccxt's throttle.

ccxt's throttle (``enableRateLimit``) spaces every request of a client 20 ms
apart, so the second leg of a pair waits behind the first and the two arrive at
the venue tens of milliseconds apart. Bybit counts per endpoint and, for orders,
per category (spot and linear are separate budgets), in a rolling second: the two
legs of a pair never compete for one budget, so they leave together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import anyio

Key = tuple[str, str]  # (endpoint, category or "")

# Bybit v5, unified account, default (non-VIP) limits per UID and second.
BYBIT_LIMITS: Mapping[Key, int] = {
    ("order/create", "spot"): 20,
    ("order/create", "linear"): 10,
    ("order/cancel", "spot"): 20,
    ("order/cancel", "linear"): 10,
}
DEFAULT_LIMIT = 50  # reads (orders, positions, balances, tickers): Bybit allows 50/s or more


class RateLimiter:
    """A rolling one-second window per key; ``wait`` returns when a request may leave."""

    def __init__(
        self, limits: Mapping[Key, int] = BYBIT_LIMITS, default: int = DEFAULT_LIMIT
    ) -> None:
        self._limits = dict(limits)
        self._default = default
        self._sent: dict[Key, deque[float]] = {}

    async def wait(self, endpoint: str, category: str = "") -> None:
        await self.wait_all([(endpoint, category)])

    async def wait_all(self, keys: Sequence[Key]) -> None:
        """Until every key has room, then take a slot of each at once: the two legs of
        a pair wait together and leave together (never one now, the other a second
        later because its budget ran out first)."""
        while True:
            now = anyio.current_time()
            ready_at = now
            for key in keys:
                sent = self._sent.setdefault(key, deque())
                while sent and now - sent[0] >= 1.0:
                    sent.popleft()
                if sent and len(sent) + keys.count(key) > self._limits.get(key, self._default):
                    ready_at = max(ready_at, sent[0] + 1.0)
            if ready_at <= now:
                for key in keys:  # no await since the check: one loop, no race
                    self._sent[key].append(now)
                return
            await anyio.sleep(ready_at - now)
