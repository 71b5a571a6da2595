"""The venue's admin endpoints (plain JSON, no signature: the venue listens on loopback only).

- ``GET /admin/requests``: the audit record, every order create received
- ``GET /admin/faults``, ``POST /admin/faults`` (a FaultSpec; ``?append=1`` adds to
  the rules in force instead of replacing them), ``DELETE /admin/faults``
- ``POST /admin/prices``: ``{"BTCUSDT": "60000"}`` (both categories), or
  ``{"spot:BTCUSDT": "...", "linear:BTCUSDT": "..."}``
- ``POST /admin/balances``: ``{"USDT": "100000"}``
- ``POST /admin/funding``: ``{"symbol": "BTCUSDT", "rate": "0.0001"}`` (optional
  ``time_ms``, ``mark``): settle one funding payment now
- ``POST /admin/outside``: ``{"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
  "qty": "0.01", "exec_type": "Trade" | "AdlTrade" | "BustTrade", "price": optional}``: a
  trade the run did not make (the owner's own, auto-deleveraging, a liquidation)
- ``POST /admin/clock``: ``{"time_ms": ...}`` or ``{"advance_ms": ...}`` (recorded mode)
- ``POST /admin/collateral``: ``{"coin": "BTC", "on": false}``: the coin no longer counts
  in the margin balance (``accountMMRate`` = maintenance margin / margin balance)
- ``GET /admin/state``: wallet, positions, orders, executions, requests received per
  endpoint and the audit checks

Only a local program may use them: a request whose ``Host`` is not the loopback
address, whose ``Origin`` is not loopback or whose ``Sec-Fetch-Site`` says
cross-site (a web page open in a browser on the same machine) is refused with
HTTP 403, and a body that is not ``Content-Type: application/json`` with 415 (a
page can send ``text/plain`` or a form without asking first; never JSON). When
the venue has an admin token (``Venue(admin_token=...)``,
``$ORCHESTRATOR_VENUE_TOKEN``) every admin request must carry it in the
``X-Venue-Token`` header (else 401). Values are checked as strictly as the
trading endpoints check theirs: finite, in range, the right type (else 400).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from orchestrator.venue.checks import COIN, checked_amount, read_body
from orchestrator.venue.codes import VenueError
from orchestrator.venue.endpoints import positions_view, wallet_view
from orchestrator.venue.faults import FaultSpecError, parse_faults
from orchestrator.venue.surface import AdminSurface

AdminHandler = Callable[[web.Request], Awaitable[web.Response]]


class _BadRequest(Exception):
    pass


def _ok(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body, default=str), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"error": message}), content_type="application/json"
    )


def _bad(message: str) -> web.Response:
    return _error(400, message)


async def _object(request: web.Request) -> dict[str, Any]:
    _, body, problem = read_body(await request.read())
    if body is None:
        raise _BadRequest(f"the {problem}")
    return body


def _dec(value: Any, what: str) -> Decimal:
    """A number given as JSON text ("60000") or a JSON number; never true/false."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _BadRequest(f"{what}: expected a number, got {type(value).__name__}")
    text = str(value)
    try:
        if len(text) <= _NUMBER_CHARS:
            number = Decimal(text)
            if number.is_finite():
                return number
    except InvalidOperation:
        pass
    raise _BadRequest(f"{what}: {text[:_NUMBER_CHARS]!r} is not a finite number")


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _BadRequest(f"{what}: expected a whole number from {low:,} to {high:,}")
    return value


_NUMBER_CHARS = 100
_MAX_MS = 4_102_444_800_000  # 2100-01-01: no market time beyond it
_MAX_RATE = Decimal(1)  # a funding rate is a fraction per interval; 100 % is far beyond any
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
TOKEN_HEADER = "X-Venue-Token"


def _host_name(value: str) -> str:
    """The host of ``host:port`` or ``[v6]:port``."""
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if ":" in value else value


def refusal(request: web.Request, token: str | None) -> web.Response | None:
    """Why an admin request is refused (a response), or None to serve it."""
    # A web page on this machine can reach the port; DNS rebinding makes its host
    # name resolve here, so the Host header must name the loopback address.
    if _host_name(request.headers.get("Host", "")).lower() not in _LOOPBACK:
        return _error(403, "the admin API answers only requests to 127.0.0.1 (Host header)")
    origin = request.headers.get("Origin")
    if origin is not None:
        host = origin.split("://", 1)[-1]
        if not origin.startswith("http://") or _host_name(host).lower() not in _LOOPBACK:
            return _error(403, "the admin API refuses requests from another origin (a web page)")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return _error(403, "the admin API refuses requests a browser marks cross-site")
    if token is not None and not hmac.compare_digest(
        request.headers.get(TOKEN_HEADER, "").encode(), token.encode()
    ):
        return _error(401, f"the admin API needs the venue's token in the {TOKEN_HEADER} header")
    if request.method in ("POST", "PUT", "PATCH") and request.content_type != "application/json":
        return _error(415, "send the body as JSON (Content-Type: application/json)")
    return None


def add_admin_routes(app: web.Application, venue: AdminSurface) -> None:
    def guarded(handler: AdminHandler) -> AdminHandler:
        async def run(request: web.Request) -> web.Response:
            refused = refusal(request, venue.admin_token)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except (_BadRequest, FaultSpecError, KeyError, ValueError) as exc:
                return _bad(str(exc))
            except VenueError as exc:
                return _bad(exc.message)

        return run

    async def requests(request: web.Request) -> web.Response:
        audit = venue.audit
        return _ok({"creates": audit.view(), "refused_dropped": audit.refused_dropped})

    async def faults(request: web.Request) -> web.Response:
        return _ok({"rules": [active.view() for active in venue.faults.rules]})

    async def set_faults(request: web.Request) -> web.Response:
        spec = parse_faults(await request.read())
        if request.query.get("append") in ("1", "true"):
            venue.faults.extend(spec)
        else:
            venue.faults.set(spec)
        return await faults(request)

    async def clear_faults(request: web.Request) -> web.Response:
        venue.faults.clear()
        return await faults(request)

    async def prices(request: web.Request) -> web.Response:
        wanted: list[tuple[str, Decimal, str | None]] = []
        for key, value in (await _object(request)).items():  # all checked before any is set
            category, _, symbol = key.rpartition(":")
            cats = (category,) if category else ("spot", "linear")
            if any((c, symbol) not in venue.book.instruments for c in cats):
                raise _BadRequest(f"{key[:40]!r}: not a listed symbol (e.g. BTCUSDT, spot:BTCUSDT)")
            wanted.append((symbol, checked_amount(_dec(value, key), key), category or None))
        for symbol, price, where in wanted:
            venue.set_price(symbol, price, where)
        return _ok({f"{c}:{s}": str(p) for (c, s), p in sorted(venue.book.prices.items())})

    async def balances(request: web.Request) -> web.Response:
        wanted = []
        for coin, value in (await _object(request)).items():  # all checked before any is set
            if not COIN.fullmatch(coin):
                raise _BadRequest(f"{coin[:40]!r} is not a coin name (capital letters, digits)")
            wanted.append((coin, checked_amount(_dec(value, coin), coin, minimum=Decimal(0))))
        for coin, amount in wanted:
            venue.set_balance(coin, amount)
        return _ok({coin: str(v) for coin, v in sorted(venue.book.wallet.items())})

    async def funding(request: web.Request) -> web.Response:
        body = await _object(request)
        symbol, mark = body.get("symbol"), body.get("mark")
        if not isinstance(symbol, str) or ("linear", symbol) not in venue.book.instruments:
            raise _BadRequest('symbol: expected a listed perpetual, e.g. "BTCUSDT"')
        rate = _dec(body.get("rate"), "rate")
        if abs(rate) > _MAX_RATE:
            raise _BadRequest(f"rate: must be from -{_MAX_RATE} to {_MAX_RATE}, got {rate}")
        execution = venue.settle_funding(
            symbol,
            rate,
            _int(body["time_ms"], "time_ms", 0, _MAX_MS) if "time_ms" in body else None,
            checked_amount(_dec(mark, "mark"), "mark") if mark is not None else None,
        )
        return _ok({"execution": execution.view() if execution else None})

    async def outside(request: web.Request) -> web.Response:
        """A trade the run did not make (the owner's, ADL, a liquidation): see
        ``Book.outside_trade``."""
        body = await _object(request)
        category = body.get("category")
        if category not in ("spot", "linear"):
            raise _BadRequest("category: 'spot' or 'linear'")
        price = body.get("price")
        execution = venue.book.outside_trade(
            category,
            str(body.get("symbol", "")),
            str(body.get("side", "")),
            checked_amount(_dec(body.get("qty"), "qty"), "qty"),
            venue.server_ms(),
            exec_type=str(body.get("exec_type", "Trade")),
            price=None if price is None else checked_amount(_dec(price, "price"), "price"),
        )
        return _ok({"execution": execution.view()})

    async def collateral(request: web.Request) -> web.Response:
        """Switch a coin on or off as collateral, as the owner does on Bybit."""
        body = await _object(request)
        coin, on = body.get("coin"), body.get("on")
        if not isinstance(coin, str) or not COIN.fullmatch(coin):
            raise _BadRequest('coin: expected a coin name, e.g. "BTC"')
        if not isinstance(on, bool):
            raise _BadRequest("on: true or false")
        off = venue.book.account.collateral_off
        if on:
            off.discard(coin)
        else:
            off.add(coin)
        return _ok({"collateral_off": sorted(off)})

    async def clock(request: web.Request) -> web.Response:
        body = await _object(request)
        market = venue.recorded
        if market is None:
            raise _BadRequest("the venue does not replay recorded data")
        if "time_ms" in body:
            target = _int(body["time_ms"], "time_ms", 0, _MAX_MS)
        else:
            target = market.clock_ms + _int(body.get("advance_ms"), "advance_ms", 0, _MAX_MS)
        settled = venue.advance_to(min(target, _MAX_MS))
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
    app.router.add_post("/admin/collateral", guarded(collateral))
    app.router.add_post("/admin/outside", guarded(outside))
    app.router.add_get("/admin/state", guarded(state))
