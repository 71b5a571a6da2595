"""The venue's admin endpoints (plain JSON, no signature: the venue listens on loopback only).

- ``GET /admin/requests``: the audit record, every order create received
- ``GET /admin/faults``, ``POST /admin/faults`` (a FaultSpec; ``?append=1`` adds to
  the rules in force instead of replacing them), ``DELETE /admin/faults``
- ``POST /admin/prices``: ``{"BTCUSDT": "60000"}`` (both categories), or
  ``{"spot:BTCUSDT": "...", "linear:BTCUSDT": "..."}``
- ``POST /admin/balances``: ``{"USDT": "100000"}``
- ``POST /admin/funding``: ``{"symbol": "BTCUSDT", "rate": "0.0001"}`` (optional
  ``time_ms``, ``mark``): settle one funding payment now
- ``POST /admin/clock``: ``{"time_ms": ...}`` or ``{"advance_ms": ...}`` (recorded mode)
- ``GET /admin/state``: wallet, positions, orders, executions, requests received per
  endpoint and the audit checks
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from orchestrator.venue.endpoints import positions_view, wallet_view
from orchestrator.venue.faults import FaultSpecError, parse_faults

if TYPE_CHECKING:
    from orchestrator.venue.server import Venue

AdminHandler = Callable[[web.Request], Awaitable[web.Response]]


class _BadRequest(Exception):
    pass


def _ok(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body, default=str), content_type="application/json")


def _bad(message: str) -> web.Response:
    return web.Response(
        status=400, text=json.dumps({"error": message}), content_type="application/json"
    )


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _dec(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _BadRequest(f"{what}: {value!r} is not a number") from None


def add_admin_routes(app: web.Application, venue: Venue) -> None:
    def guarded(handler: AdminHandler) -> AdminHandler:
        async def run(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except (_BadRequest, FaultSpecError, KeyError, ValueError) as exc:
                return _bad(str(exc))

        return run

    async def requests(request: web.Request) -> web.Response:
        return _ok({"creates": venue.audit.view()})

    async def faults(request: web.Request) -> web.Response:
        return _ok({"rules": [active.view() for active in venue.faults.rules]})

    async def set_faults(request: web.Request) -> web.Response:
        spec = parse_faults(await request.read())
        if request.query.get("append") in ("1", "true"):
            for rule in spec.rules:
                venue.faults.add(rule)
        else:
            venue.faults.set(spec)
        return await faults(request)

    async def clear_faults(request: web.Request) -> web.Response:
        venue.faults.clear()
        return await faults(request)

    async def prices(request: web.Request) -> web.Response:
        for key, value in (await _object(request)).items():
            category, _, symbol = key.rpartition(":")
            venue.set_price(symbol, _dec(value, key), category or None)
        return _ok({f"{c}:{s}": str(p) for (c, s), p in sorted(venue.book.prices.items())})

    async def balances(request: web.Request) -> web.Response:
        for coin, value in (await _object(request)).items():
            venue.set_balance(coin, _dec(value, coin))
        return _ok({coin: str(v) for coin, v in sorted(venue.book.wallet.items())})

    async def funding(request: web.Request) -> web.Response:
        body = await _object(request)
        mark = body.get("mark")
        execution = venue.settle_funding(
            str(body["symbol"]),
            _dec(body["rate"], "rate"),
            int(body["time_ms"]) if "time_ms" in body else None,
            _dec(mark, "mark") if mark is not None else None,
        )
        return _ok({"execution": execution.view() if execution else None})

    async def clock(request: web.Request) -> web.Response:
        body = await _object(request)
        market = venue.recorded
        if market is None:
            raise _BadRequest("the venue does not replay recorded data")
        target = (
            int(body["time_ms"]) if "time_ms" in body else market.clock_ms + int(body["advance_ms"])
        )
        settled = venue.advance_to(target)
        return _ok({"clock_ms": market.clock_ms, "settled": [e.view() for e in settled]})

    async def state(request: web.Request) -> web.Response:
        now = venue.server_ms()
        orders = venue.orders
        return _ok(
            {
                "server_ms": now,
                "clock_ms": venue.recorded.clock_ms if venue.recorded else None,
                "wallet": wallet_view(venue.book),
                "positions": positions_view(venue.book, None),
                "orders": [o.view() for o in orders.values()],
                "executions": [e.view() for e in venue.book.executions],
                "hits": dict(venue.hits),  # requests received, by endpoint
                "checks": {
                    "placed_twice": venue.audit.placed_twice(),
                    "live_overlaps": venue.audit.live_overlaps(now),
                    "oversold": {k: str(v) for k, v in venue.audit.oversold().items()},
                },
            }
        )

    app.router.add_get("/admin/requests", guarded(requests))
    app.router.add_get("/admin/faults", guarded(faults))
    app.router.add_post("/admin/faults", guarded(set_faults))
    app.router.add_delete("/admin/faults", guarded(clear_faults))
    app.router.add_post("/admin/prices", guarded(prices))
    app.router.add_post("/admin/balances", guarded(balances))
    app.router.add_post("/admin/funding", guarded(funding))
    app.router.add_post("/admin/clock", guarded(clock))
    app.router.add_get("/admin/state", guarded(state))
