"""PositionManager driving the LiveExecutor: real ccxt against the loopback Bybit v5.

The same manager code as on paper (PAPR-02); here the venue charges a spot buy's
fee in the coin bought, as Bybit does, so the spot leg holds a little less.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from orchestrator import (
    DeltaHedgeError,
    LiveExecutor,
    PositionManager,
    TickerService,
    TradingSettings,
)
from tests.fake_bybit import FakeBybit, make_exchange
from tests.support import BTC_PERP, BTC_SPOT, FakeClock

pytestmark = pytest.mark.anyio
D = Decimal


@pytest.fixture
async def venue() -> AsyncIterator[tuple[FakeBybit, PositionManager]]:
    async with FakeBybit(price=D(60000)) as fake:
        exchange = make_exchange(fake.url)
        try:
            ticker = TickerService(clock=FakeClock())
            ticker.update(BTC_SPOT.symbol, D(60000))
            ticker.update(BTC_PERP.symbol, D(60000))
            executor = LiveExecutor(exchange, fill_poll_interval=0.01)
            settings = TradingSettings(max_position_size_usd=D(1200), order_timeout_seconds=5)
            yield fake, PositionManager(executor, ticker, settings, run_nonce="live01")
        finally:
            await exchange.close()


def net_by_category(fake: FakeBybit) -> dict[str, Decimal]:
    """What the venue's fills add up to, per category (buys positive)."""
    net: dict[str, Decimal] = {"spot": D(0), "linear": D(0)}
    for order in fake.orders.values():
        sign = 1 if order.raw["side"] == "Buy" else -1
        net[order.category] += sign * D(order.raw["cumExecQty"])
    return net


async def test_open_and_close_through_ccxt(venue: tuple[FakeBybit, PositionManager]) -> None:
    fake, manager = venue
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="live1")

    assert position.state == "validated"
    assert position.quantity == D("0.02")
    # 0.1 % of the spot buy was taken in BTC: 0.02 bought, 0.01998 held.
    assert position.spot_qty == D("0.01998")
    assert position.perp_qty == D("0.02")
    spot_fee_usdt = D("0.00002") * 60000
    perp_fee_usdt = D("0.02") * 60000 * D("0.00055")
    assert position.entry_fees == spot_fee_usdt + perp_fee_usdt
    assert all(not order.is_simulated for order in position.orders)

    closed = await manager.close_position("live1")
    assert closed.state == "closed"
    sent = {b["orderLinkId"]: b for b in fake.create_bodies}
    assert set(sent) == {
        "live01-live1-so1",
        "live01-live1-po1",
        "live01-live1-sc1",
        "live01-live1-pc1",
    }
    assert (sent["live01-live1-sc1"]["side"], sent["live01-live1-sc1"]["qty"]) == (
        "Sell",
        "0.01998",
    )
    assert (sent["live01-live1-pc1"]["side"], sent["live01-live1-pc1"]["qty"]) == ("Buy", "0.02")
    assert sent["live01-live1-pc1"]["reduceOnly"] is True
    assert net_by_category(fake) == {"spot": D("0.00002"), "linear": D(0)}  # the fee coin


async def test_a_rejected_leg_is_rolled_back_on_the_venue(
    venue: tuple[FakeBybit, PositionManager],
) -> None:
    fake, manager = venue
    fake.create_error = (110007, "ab not enough for new order")  # whichever leg lands first
    with pytest.raises(DeltaHedgeError, match="insufficient funds") as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="live2")

    position = caught.value.position
    assert position.state == "rolled_back"
    assert position.spot_qty == 0
    assert position.perp_qty == 0
    assert len(fake.create_bodies) == 3  # two legs, one reversal
    assert len(fake.orders) == 2  # the rejected leg never existed
    net = net_by_category(fake)
    assert net["linear"] == 0
    assert net["spot"] in (D(0), D("0.00002"))  # flat, but for a spot buy's fee coin
