"""The venue's fault injection, each fault observed as the ccxt exception it becomes
(the table of docs/notes ccxt-bybit.md), and what ccxt makes of malformed answers."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import ccxt
import pytest

from orchestrator.venue import FaultRule, FaultSpec, FaultSpecError, Venue, load_faults
from orchestrator.venue.faults import parse_faults

pytestmark = pytest.mark.anyio
D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


async def short(client: Any, cid: str, symbol: str = PERP) -> Any:
    side = "sell" if symbol == PERP else "buy"
    return await client.create_order(symbol, "market", side, 0.001, None, {"clientOrderId": cid})


async def find(client: Any, cid: str, symbol: str = PERP) -> list[Any]:
    """The order by client id, as the notes say to look it up: open, then history."""
    params = {"orderLinkId": cid}
    found = await client.fetch_open_orders(symbol, params=params)
    return found or await client.fetch_canceled_and_closed_orders(symbol, params=params)


# -- each fault as ccxt sees it --------------------------------------------------------

FAULTS: list[tuple[str, dict[str, Any], type[Exception], int]] = [
    ("reject: insufficient balance", {"kind": "reject", "error": "insufficient_balance"},
     ccxt.InsufficientFunds, 0),
    ("reject: invalid quantity", {"kind": "reject", "error": "qty_too_large"}, ccxt.BadRequest, 0),
    ("reject: duplicate client id", {"kind": "reject", "error": "duplicate_link_id"},
     ccxt.InvalidOrder, 0),
    ("retCode 10006", {"kind": "reject", "error": "rate_limit"}, ccxt.RateLimitExceeded, 0),
    ("retCode 10016 system error", {"kind": "reject", "error": "system_error"},
     ccxt.ExchangeError, 0),
    ("retCode 10016 request timeout", {"kind": "reject", "error": "request_timeout"},
     ccxt.RequestTimeout, 0),
    ("HTTP 429", {"kind": "http", "status": 429}, ccxt.RateLimitExceeded, 0),
    ("HTTP 500", {"kind": "http", "status": 500}, ccxt.ExchangeNotAvailable, 0),
    ("HTTP 502", {"kind": "http", "status": 502}, ccxt.ExchangeNotAvailable, 0),
    ("HTTP 503", {"kind": "http", "status": 503}, ccxt.ExchangeNotAvailable, 0),
    ("HTTP 504", {"kind": "http", "status": 504}, ccxt.RequestTimeout, 0),
    ("HTTP 502 after accept", {"kind": "http", "status": 502, "accept": True},
     ccxt.ExchangeNotAvailable, 1),
    ("timeout before accept", {"kind": "timeout_before", "delay_ms": 600}, ccxt.RequestTimeout, 0),
    ("timeout after accept", {"kind": "timeout_after", "delay_ms": 600}, ccxt.RequestTimeout, 1),
    ("connection dropped before accept", {"kind": "drop_before"}, ccxt.ExchangeNotAvailable, 0),
    ("connection dropped after accept", {"kind": "drop_after"}, ccxt.ExchangeNotAvailable, 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "error", "placed"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
async def test_each_create_fault_is_the_ccxt_exception_the_notes_predict(
    bybit_venue: Venue, venue_client: Any, rule: dict[str, Any], error: type[Exception], placed: int
) -> None:
    bybit_venue.faults.add(FaultRule(endpoint="order/create", **rule))
    venue_client.timeout = 300  # ms: shorter than the held answers
    started = time.monotonic()
    with pytest.raises(error) as raised:
        await short(venue_client, "f-1")
    assert time.monotonic() - started < 1.0
    # The exact class matters for retry decisions: 10016 "System error" is not a NetworkError.
    if error is ccxt.ExchangeError:
        assert type(raised.value) is ccxt.ExchangeError
    if rule.get("delay_ms"):
        await anyio.sleep(0.7)  # past the held answer: nothing more happens late
    assert len(bybit_venue.orders) == placed
    found = await find(venue_client, "f-1")
    assert len(found) == placed
    [record] = bybit_venue.audit.creates
    assert record.fault == rule["kind"]
    assert record.outcome == ("placed" if placed else record.outcome)


async def test_a_fault_picks_its_leg_its_client_id_and_the_nth_request(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.faults.add(
        FaultRule(kind="reject", error="insufficient_balance", category="linear", after=1)
    )
    bybit_venue.faults.add(FaultRule(kind="drop_before", link_id="*-po3"))
    await short(venue_client, "p-so1", SPOT)
    await short(venue_client, "p-po1")
    await short(venue_client, "p-so2", SPOT)  # spot requests do not count for the linear rule
    with pytest.raises(ccxt.InsufficientFunds) as raised:
        await short(venue_client, "p-po2")  # the second linear create
    assert '"retCode":110007' in str(raised.value)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await short(venue_client, "p-po3")
    await short(venue_client, "p-po4")
    outcomes = [(r.order_link_id, r.outcome) for r in bybit_venue.audit.creates]
    assert outcomes == [
        ("p-so1", "placed"),
        ("p-po1", "placed"),
        ("p-so2", "placed"),
        ("p-po2", "rejected"),
        ("p-po3", "dropped"),
        ("p-po4", "placed"),
    ]


async def test_a_fault_can_be_scheduled(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.faults.add(FaultRule(kind="http", endpoint="account/*", times=None, until_s=0.5))
    bybit_venue.faults.add(
        FaultRule(kind="reject", endpoint="position/list", error="system_error", start_s=0.5)
    )
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await venue_client.fetch_balance()
    await venue_client.fetch_positions([PERP])
    await anyio.sleep(0.6)
    await venue_client.fetch_balance()
    with pytest.raises(ccxt.ExchangeError):
        await venue_client.fetch_positions([PERP])


# -- the order that lands late -----------------------------------------------------------


async def test_order_lands_late_within_the_recv_window(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.faults.add(FaultRule(kind="land_late", delay_ms=600))
    venue_client.timeout = 150
    with pytest.raises(ccxt.RequestTimeout):
        await short(venue_client, "late-1")
    assert await find(venue_client, "late-1") == []  # not yet: a lookup now says absent
    [record] = bybit_venue.audit.creates
    assert record.outcome == "pending"

    await anyio.sleep(0.7)
    [order] = await find(venue_client, "late-1")
    assert (order["status"], order["filled"]) == ("closed", 0.001)
    assert record.outcome == "placed"
    assert record.order_id == order["id"]


@pytest.mark.parametrize("ignore_window", [False, True])
async def test_order_landing_beyond_the_recv_window(
    bybit_venue: Venue, venue_client: Any, ignore_window: bool
) -> None:
    bybit_venue.faults.add(
        FaultRule(kind="land_late", delay_ms=400, reply="error", ignore_recv_window=ignore_window)
    )
    venue_client.options["recvWindow"] = 200
    with pytest.raises(ccxt.ExchangeError):  # answered at once with 10016
        await short(venue_client, "late-2")
    await anyio.sleep(0.5)
    found = await find(venue_client, "late-2")
    [record] = bybit_venue.audit.creates
    if ignore_window:  # a venue that breaks Bybit's rule: it lands anyway
        assert (len(found), record.outcome) == (1, "placed")
    else:  # Bybit refuses what arrives after timestamp + recvWindow
        assert (found, record.outcome) == ([], "expired")


async def test_a_resend_before_the_late_order_lands_is_never_placed_twice(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.faults.add(FaultRule(kind="land_late", delay_ms=500, reply="drop"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await short(venue_client, "late-3")
    await short(venue_client, "late-3")  # a blind resend, same client id
    await anyio.sleep(0.6)
    first, resend = bybit_venue.audit.creates
    assert (first.outcome, first.ret_code) == ("rejected", 110072)  # it landed as a duplicate
    assert resend.outcome == "placed"
    assert bybit_venue.audit.sent_twice() == ["late-3"]
    assert bybit_venue.audit.placed_twice() == []
    assert len(await find(venue_client, "late-3")) == 1


# -- lookups ----------------------------------------------------------------------------


async def test_lookups_failing_then_answering(bybit_venue: Venue, venue_client: Any) -> None:
    await short(venue_client, "look-1")
    bybit_venue.faults.add(
        FaultRule(kind="http", endpoint="order/realtime,order/history", status=503, times=2)
    )
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await find(venue_client, "look-1")
    assert len(await find(venue_client, "look-1")) == 1


async def test_lookups_returning_nothing_for_a_while(bybit_venue: Venue, venue_client: Any) -> None:
    await short(venue_client, "look-2")
    bybit_venue.faults.add(FaultRule(kind="empty", times=None, until_s=0.5))
    assert await find(venue_client, "look-2") == []
    await anyio.sleep(0.6)
    assert len(await find(venue_client, "look-2")) == 1


async def test_realtime_forgets_closed_orders_as_after_a_restart(
    bybit_venue: Venue, venue_client: Any
) -> None:
    await short(venue_client, "look-3")
    bybit_venue.faults.add(FaultRule(kind="hide_closed", times=None))
    assert await venue_client.fetch_open_orders(PERP, params={"orderLinkId": "look-3"}) == []
    [order] = await venue_client.fetch_canceled_and_closed_orders(
        PERP, params={"orderLinkId": "look-3"}
    )
    assert order["clientOrderId"] == "look-3"


async def test_rate_limited_reads(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.faults.add(FaultRule(kind="http", endpoint="position/list", status=429))
    bybit_venue.faults.add(FaultRule(kind="reject", endpoint="execution/list", error="rate_limit"))
    with pytest.raises(ccxt.RateLimitExceeded):
        await venue_client.fetch_positions([PERP])
    with pytest.raises(ccxt.RateLimitExceeded):
        await venue_client.fetch_funding_history(PERP)


# -- malformed answers ------------------------------------------------------------------

# What ccxt 4.5 makes of each broken answer to a create (the order is placed first) and
# to a lookup of an existing, filled order. "no id": create_order returns an order
# whose id is None; "[]": the lookup says the order does not exist. Few of them raise.
MALFORMED: dict[str, tuple[str, str]] = {
    "empty_body": ("no id", "[]"),
    "html": ("no id", "[]"),
    "not_json": ("no id", "[]"),
    "truncated_json": ("no id", "[]"),
    "missing_result": ("no id", "[]"),
    "null_result": ("no id", "[]"),
    "missing_fields": ("no id", "entry without id or status"),
    "non_numeric": ("id 'NaN'", "ValueError"),  # not even a ccxt error
    "wrong_types": ("id '1.0'", "[]"),
    "unknown_status": ("id '1'", "status 'Sideways'"),  # passed through as the status
    "retcode_string": ("id '1'", "status 'closed'"),  # read as success
    "missing_retcode": ("ExchangeError", "ExchangeError"),
    "extra_nesting": ("no id", "[]"),
    "json_array": ("ExchangeError", "ExchangeError"),
    "nan_literal": ("no id", "[]"),
}


def summary(result: Any) -> str:
    if isinstance(result, BaseException):
        return type(result).__name__
    if isinstance(result, dict):
        return "no id" if result["id"] is None else f"id {result['id']!r}"
    if result == []:
        return "[]"
    [entry] = result
    if entry["id"] is None:
        return "entry without id or status"
    return f"status {entry['status']!r}"


async def outcome(call: Any) -> str:
    started = time.monotonic()
    try:
        result = await call
    except Exception as exc:
        result = exc
    assert time.monotonic() - started < 0.5  # an answer, never a hang
    return summary(result)


@pytest.mark.parametrize("how", list(MALFORMED))
async def test_malformed_answers_and_what_ccxt_makes_of_them(
    bybit_venue: Venue, venue_client: Any, how: str
) -> None:
    expected_create, expected_lookup = MALFORMED[how]
    bybit_venue.faults.add(FaultRule(kind="malformed", endpoint="order/create", body=how))
    assert await outcome(short(venue_client, "bad-1")) == expected_create
    [order] = bybit_venue.orders.values()  # it was placed all the same
    assert order.link_id == "bad-1"

    bybit_venue.faults.add(FaultRule(kind="malformed", endpoint="order/realtime", body=how))
    lookup = venue_client.fetch_open_orders(PERP, params={"orderLinkId": "bad-1"})
    assert await outcome(lookup) == expected_lookup
    [entry] = await venue_client.fetch_open_orders(PERP, params={"orderLinkId": "bad-1"})
    assert entry["status"] == "closed"  # the next, sound answer


async def test_malformed_create_that_places_nothing(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.faults.add(FaultRule(kind="malformed", body="html", accept=False))
    assert await outcome(short(venue_client, "bad-2")) == "no id"
    assert bybit_venue.orders == {}


# -- the fault spec -------------------------------------------------------------------


def test_fault_spec_loads_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "faults.yaml"
    yaml_file.write_text(
        "rules:\n"
        "  - kind: partial\n"
        "    category: linear\n"
        '    fill_ratio: "0.25"\n'
        "    hold_ms: 200\n"
        "  - kind: http\n"
        "    endpoint: order/*\n"
        "    status: 503\n"
        "    times: null\n"
        "    until_s: 2\n"
    )
    spec = load_faults(yaml_file)
    partial, http = spec.rules
    assert (partial.endpoint, partial.fill_ratio, partial.hold_ms) == (
        "order/create",
        D("0.25"),
        200,
    )
    assert (http.times, http.until_s) == (None, 2)
    json_file = tmp_path / "faults.json"
    json_file.write_text('{"rules": [{"kind": "drop_after", "endpoint": "order/create"}]}')
    assert load_faults(json_file) == FaultSpec(
        [FaultRule(kind="drop_after", endpoint="order/create")]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"rules": [{"kind": "reject"}]}', "reject needs an error name or a ret_code"),
        ('{"rules": [{"kind": "reject", "error": "nope"}]}', "unknown error 'nope'"),
        ('{"rules": [{"kind": "partial", "fill_ratio": "1"}]}', "fill_ratio must be in"),
        ('{"rules": [{"kind": "fill_late"}]}', "needs hold_reads or hold_ms"),
        ('{"rules": [{"kind": "land_late", "endpoint": "order/cancel"}]}', "order/create only"),
        ('{"rules": [{"kind": "http", "oops": 1}]}', "unknown field `oops`"),
        ('{"rules": [{"kind": "http", "times": 0}]}', "times must be 1 to"),
        ('{"rules": [{"kind": "teleport"}]}', "$.rules[0].kind"),
        # bounds: a rule that would hold an answer for 30 years, count past any run, ...
        ('{"rules": [{"kind": "timeout_after", "delay_ms": 1000000000000}]}', "delay_ms must be"),
        ('{"rules": [{"kind": "fill_late", "hold_ms": 3600001}]}', "hold_ms must be 0 to"),
        ('{"rules": [{"kind": "partial", "hold_reads": 10000000000}]}', "hold_reads must be"),
        ('{"rules": [{"kind": "http", "after": -1}]}', "after must be 0 to"),
        ('{"rules": [{"kind": "http", "times": 10000000000}]}', "times must be 1 to"),
        ('{"rules": [{"kind": "http", "start_s": 1e12}]}', "start_s and until_s must be"),
        ('{"rules": [{"kind": "http", "until_s": -1}]}', "start_s and until_s must be"),
        ('{"rules": [{"kind": "reject", "ret_code": 0}]}', "ret_code must be"),
        ('{"rules": [{"kind": "http", "endpoint": "' + "x" * 501 + '"}]}', "at most 500"),
        ('{"rules": [' + ", ".join(['{"kind": "http"}'] * 1001) + "]}", "at most 1,000 rules"),
    ],
)
def test_fault_spec_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=re.escape(message)):
        parse_faults(text)
