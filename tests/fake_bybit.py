"""The shipped loopback venue (``orchestrator.venue``) under the names older tests use.

``FakeBybit`` is a ``Venue`` with test credentials, a large wallet, one price for
every market and ``fake-N`` order ids; its fault knobs (``create_error``,
``reply_delay``, ``fill_qty``...) install the equivalent fault rules. New tests
use ``orchestrator.venue`` directly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Self

from orchestrator.venue import (
    HOUR_MS,
    FaultRule,
    Order,
    Venue,
    funding_rate,
    kline_entry,
    make_client,
)
from orchestrator.venue.faults import ActiveRule
from tests.support import data_file

__all__ = [
    "API_KEY",
    "HOUR_MS",
    "INSTRUMENTS",
    "SECRET",
    "FakeBybit",
    "funding_rate",
    "kline_entry",
    "make_exchange",
]

INSTRUMENTS = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json")
API_KEY = "test-key"
SECRET = "test-secret"
_READS = "order/realtime,order/history"
_MARKET = "market/kline,market/funding/history"


class FakeBybit:
    """Start with ``async with FakeBybit() as fake:``; ``fake.url`` is its base URL.

    Knobs, each installing a fault rule (setting one again replaces it; 0 or None
    removes it): ``create_error`` (code, msg) for the next create; ``reply_delay``
    seconds after placing the next order; ``drop_connection`` after placing it;
    ``open_fetches`` reads of the next order as New before it fills; ``fill_qty``
    for the next order, the rest cancelled; ``realtime_forgets_closed``;
    ``failing_reads`` order reads answering HTTP 503; ``failing_market_reads``,
    ``market_error`` and ``market_reads_left`` (after which every kline/funding
    read answers 10016) for the public history endpoints.
    """

    def __init__(
        self,
        price: Decimal = Decimal("60000"),
        *,
        spot_fee_rate: Decimal = Decimal("0.001"),
        perp_fee_rate: Decimal = Decimal("0.00055"),
        history_hours: int = 0,
    ) -> None:
        self._knobs: dict[str, ActiveRule] = {}
        self.venue = Venue(
            data_dir=INSTRUMENTS.parent,
            keys={API_KEY: SECRET},
            balances={"USDT": Decimal(10_000_000)},
            spot_fee_rate=spot_fee_rate,
            perp_fee_rate=perp_fee_rate,
            order_id_prefix="fake-",
        )
        self.venue.synthetic.hours = history_hours
        self.price = price

    async def __aenter__(self) -> Self:
        await self.venue.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.venue.stop()

    @property
    def url(self) -> str:
        return self.venue.url

    # -- what arrived -------------------------------------------------------------

    @property
    def orders(self) -> dict[str, Order]:
        return self.venue.orders

    @property
    def create_bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.venue.audit.creates if r.outcome != "auth"]

    @property
    def unknown_paths(self) -> list[str]:
        return self.venue.unknown_paths

    @property
    def market_queries(self) -> list[tuple[str, dict[str, str]]]:
        return self.venue.market_queries

    @property
    def bad_signatures(self) -> int:
        return self.venue.bad_signatures

    # -- prices and generated history ---------------------------------------------

    @property
    def price(self) -> Decimal:
        return next(iter(self.venue.book.prices.values()))

    @price.setter
    def price(self, value: Decimal) -> None:
        for category, symbol in self.venue.book.instruments:
            self.venue.set_price(symbol, value, category)

    @property
    def history_hours(self) -> int:
        return self.venue.synthetic.hours

    @history_hours.setter
    def history_hours(self, value: int) -> None:
        self.venue.synthetic.hours = value

    @property
    def funding_hours(self) -> int:
        return self.venue.synthetic.funding_hours or 8

    @funding_hours.setter
    def funding_hours(self, value: int) -> None:
        self.venue.synthetic.funding_hours = value

    # -- fault knobs ----------------------------------------------------------------

    def _set(self, knob: str, rule: FaultRule | None) -> None:
        old = self._knobs.pop(knob, None)
        if old is not None:
            self.venue.faults.remove(old)
        if rule is not None:
            self._knobs[knob] = self.venue.faults.add(rule)

    def _left(self, knob: str) -> int:
        active = self._knobs.get(knob)
        if active is None or active.rule.times is None:
            return 0
        return active.rule.times - active.hits

    def __setattr__(self, name: str, value: Any) -> None:
        rule = _knob_rule(name, value)
        if rule is False:
            super().__setattr__(name, value)
        else:
            self._set(name, rule)

    @property
    def failing_reads(self) -> int:
        return self._left("failing_reads")

    @property
    def failing_market_reads(self) -> int:
        return self._left("failing_market_reads")


def _knob_rule(name: str, value: Any) -> FaultRule | bool | None:
    """The fault rule a knob stands for; None removes it; False: not a knob."""
    create = "order/create"
    if name == "create_error":
        if value is None:
            return None
        code, msg = value
        return FaultRule(kind="reject", endpoint=create, ret_code=code, ret_msg=msg)
    if name == "reply_delay":
        if value is None:
            return None
        return FaultRule(kind="timeout_after", endpoint=create, delay_ms=int(value * 1000))
    if name == "drop_connection":
        return FaultRule(kind="drop_after", endpoint=create) if value else None
    if name == "open_fetches":
        return FaultRule(kind="fill_late", hold_reads=value) if value else None
    if name == "fill_qty":
        return None if value is None else FaultRule(kind="partial", fill_qty=value)
    if name == "realtime_forgets_closed":
        return FaultRule(kind="hide_closed", times=None) if value else None
    if name == "failing_reads":
        return FaultRule(kind="http", endpoint=_READS, status=503, times=value) if value else None
    if name == "failing_market_reads":
        return FaultRule(kind="http", endpoint=_MARKET, status=503, times=value) if value else None
    if name == "market_error":
        if value is None:
            return None
        code, msg = value
        return FaultRule(kind="reject", endpoint=_MARKET, ret_code=code, ret_msg=msg)
    if name == "market_reads_left":
        if value is None:
            return None
        return FaultRule(
            kind="reject", endpoint=_MARKET, after=value, times=None, ret_code=10016,
            ret_msg="System error",
        )  # fmt: skip
    return False


def make_exchange(url: str, *, timeout_ms: int = 2000, secret: str = SECRET) -> Any:
    """A real ``ccxt.async_support.bybit`` that can only reach ``url``."""
    return make_client(url, api_key=API_KEY, secret=secret, timeout_ms=timeout_ms)
