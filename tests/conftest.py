from __future__ import annotations

import decimal
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.venue import Venue, make_client
from tests.dashboard_support import CHROMIUM, CHROMIUM_ARGS
from tests.fake_bybit import INSTRUMENTS, FakeBybit, make_exchange

VENUE_PRICES = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}


@pytest.fixture
def anyio_backend() -> str:
    # python-statemachine's async engine and our code run on asyncio.
    return "asyncio"


@pytest.fixture
async def exchange(fake: FakeBybit) -> AsyncIterator[Any]:
    """Real ccxt (async bybit) pointed at the module's fake Bybit, closed after the test."""
    client = make_exchange(fake.url)
    try:
        yield client
    finally:
        await client.close()


def _restore(context: decimal.Context, saved: decimal.Context) -> None:
    context.prec, context.rounding = saved.prec, saved.rounding
    context.Emin, context.Emax = saved.Emin, saved.Emax
    context.capitals, context.clamp = saved.capitals, saved.clamp
    for signal in saved.traps:
        context.traps[signal] = saved.traps[signal]
        context.flags[signal] = saved.flags[signal]


@pytest.fixture(autouse=True)
def _every_test_leaves_the_decimal_context() -> Iterator[None]:
    """No test's change to the thread's decimal context (ccxt's precision helpers set
    ROUND_HALF_UP and trap Underflow on it) reaches the next test in the same worker."""
    context = decimal.getcontext()
    saved = context.copy()
    try:
        yield
    finally:
        _restore(context, saved)


@pytest.fixture
async def keep_decimal_context() -> AsyncIterator[None]:
    """Undoes what a test's direct ccxt calls do to the decimal context: ccxt's precision
    helpers set ROUND_HALF_UP and trap Underflow on the current context object, which
    tasks share, so the change would outlive the test. Restored in place."""
    context = decimal.getcontext()
    saved = context.copy()
    try:
        yield
    finally:
        _restore(context, saved)


@pytest.fixture
async def bybit_venue(keep_decimal_context: None) -> AsyncIterator[Venue]:
    """The shipped loopback venue: recorded instruments, 100,000 USDT, BTC at 60,000 and
    ETH at 3,000 in both categories, Bybit's fee rates, no slippage; stopped after the test."""
    async with Venue(data_dir=INSTRUMENTS.parent, prices=VENUE_PRICES) as venue:
        yield venue


@pytest.fixture
async def venue_client(bybit_venue: Venue) -> AsyncIterator[Any]:
    """Real ccxt (async bybit) for ``bybit_venue``, markets loaded, 1 s timeout; closed after."""
    client = make_client(bybit_venue.url, timeout_ms=1000)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per test module (skip where it is missing)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context); the test fails on any script error on it."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == []  # no script error on any page
