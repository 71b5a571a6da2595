"""Bybit v5's execution list (``/v5/execution/list``) read whole through ccxt.

Bybit answers one window of at most 7 days (``startTime`` alone: the 7 days from it),
newest first, in pages of ``limit`` rows (1 to 100, 50 unless asked) linked by
``nextPageCursor``. ccxt 4.5 follows none of it: ``fetch_funding_history`` sends its
``limit`` as ``size``, which Bybit does not know (a page of 50), and neither it nor
``fetch_my_trades`` reads past the first page. So the span is asked for window by
window with Bybit's own parameters in ccxt's ``params`` (sent as they are), each window
page by page along the cursor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.bybit import client

WEEK_MS = 7 * 24 * 3_600_000  # Bybit's widest window of executions
PAGE = 100  # Bybit's largest page of executions

# One page: a ccxt call given Bybit's parameters, e.g. fetch_my_trades(symbol, None,
# None, params), with its retries; it answers ccxt's rows (each raw row in ``info``).
Fetch = Callable[[dict[str, Any]], Awaitable[Any]]


async def every_page(fetch: Fetch, params: dict[str, Any]) -> list[Any]:
    """Every row of the one query ``params``, page after page."""
    rows: list[Any] = []
    seen: set[str] = set()
    cursor = ""
    while True:
        page = await fetch({**params, "limit": PAGE} | ({"cursor": cursor} if cursor else {}))
        if not isinstance(page, list):
            raise client.UnreadableAnswer(f"execution/list gave a {type(page).__name__}")
        rows.extend(page)
        cursor = next_cursor(page)
        if not cursor:
            return rows
        if cursor in seen:  # it would be read again and again
            raise client.UnreadableAnswer(f"execution/list gave the cursor {cursor!r} twice")
        seen.add(cursor)


async def executions_between(fetch: Fetch, since_ms: int, until_ms: int) -> list[Any]:
    """Every row from ``since_ms`` to ``until_ms`` (the present, as the caller knows
    it; later rows are a later call's), oldest window first."""
    rows: list[Any] = []
    start = since_ms
    while start <= until_ms:
        end = min(start + WEEK_MS, until_ms)
        rows.extend(await every_page(fetch, {"startTime": start, "endTime": end}))
        start = end + 1
    return rows


def next_cursor(rows: list[Any]) -> str:
    """Bybit's ``nextPageCursor`` (empty on the last page). ccxt keeps it in the first
    raw row it was given, which its sorting may have moved: looked for in each, as
    ccxt's own pagination looks for it."""
    for row in rows:
        info = row.get("info") if isinstance(row, dict) else None
        if isinstance(info, dict) and info.get("nextPageCursor"):
            return str(info["nextPageCursor"])
    return ""
