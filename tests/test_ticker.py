from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator import PriceUnavailableError, TickerService
from tests.support import FakeClock

D = Decimal


def test_fresh_price_is_returned_with_its_timestamp() -> None:
    clock = FakeClock(1000.0)
    ticker = TickerService(clock=clock)
    ticker.update("BTC/USDT", D("50000.1"))
    assert ticker.get_price("BTC/USDT") == D("50000.1")
    assert ticker.get_quote("BTC/USDT") == (D("50000.1"), 1000.0)


def test_missing_symbol_gives_nothing() -> None:
    ticker = TickerService(clock=FakeClock())
    assert ticker.get_price("BTC/USDT") is None
    with pytest.raises(PriceUnavailableError, match="BTC/USDT: no price received"):
        ticker.require_price("BTC/USDT")


def test_price_goes_stale_after_the_limit_on_the_injected_clock() -> None:
    clock = FakeClock(1000.0)
    ticker = TickerService(clock=clock)  # 60 s by default
    ticker.update("BTC/USDT", D(50000))
    clock.now += 60
    assert ticker.get_price("BTC/USDT") == D(50000)
    clock.now += 1
    assert ticker.get_price("BTC/USDT") is None
    with pytest.raises(PriceUnavailableError, match=r"stale \(61 s old, limit 60 s\)"):
        ticker.require_price("BTC/USDT")


def test_stale_limit_is_a_setting_for_hourly_replays() -> None:
    clock = FakeClock(0.0)
    ticker = TickerService(clock=clock, stale_after_seconds=2 * 3600)
    ticker.update("BTC/USDT", D(50000), timestamp=0.0)
    clock.now = 3600.0
    assert ticker.get_price("BTC/USDT") == D(50000)


@pytest.mark.parametrize("bad", [D(0), D(-1), D("NaN"), D("Infinity")])
def test_zero_negative_nan_and_infinite_prices_are_refused(bad: Decimal) -> None:
    ticker = TickerService(clock=FakeClock())
    ticker.update("BTC/USDT", D(50000))
    ticker.update("BTC/USDT", bad)  # a bad tick hides the good one before it
    assert ticker.get_price("BTC/USDT") is None
    with pytest.raises(PriceUnavailableError):
        ticker.require_price("BTC/USDT")


def test_nonpositive_stale_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="stale_after_seconds"):
        TickerService(stale_after_seconds=0)
