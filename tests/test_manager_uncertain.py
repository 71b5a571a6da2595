"""A position is final only when none of its orders can still work or land, and never
with a negative holding; unwinds send only what the venue shows the position holds.

Each case is one of the root causes random fault schedules found, reduced to one
position (tests/test_manager_properties.py draws the schedules)."""

from __future__ import annotations

import time
from decimal import Decimal

import anyio
import pytest

from orchestrator import PositionManager
from orchestrator.models import (
    ZERO,
    Category,
    Side,
)
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.settings import TradingSettings
from tests.fault_venue import Fault, FaultVenue
from tests.support import BTC_PERP, BTC_SPOT, make_ticker

pytestmark = pytest.mark.anyio
D = Decimal
SETTINGS = TradingSettings(max_position_size_usd=D(1000), order_timeout_seconds=0.3)


def setup() -> tuple[PositionManager, FaultVenue]:
    ticker = make_ticker()
    venue = FaultVenue(ticker)
    return PositionManager(venue, ticker, SETTINGS, run_nonce="test01"), venue


def perp_short(venue: FaultVenue) -> Decimal:
    return -venue.get_perp_position(BTC_PERP.symbol).size


async def test_a_working_leg_whose_lookup_is_cut_off_is_not_called_failed() -> None:
    manager, venue = setup()
    # Acknowledged as working, it fills a second later; the venue cannot be asked about it.
    venue.faults["pos1-po1"] = Fault("working", delay=1.0, lookup_hangs=True)
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = caught.value.position
    # Not "rolled back, unwound to flat" while its order still works on the venue.
    assert position.state == "needs_attention"
    assert "outcome unknown for test01-pos1-po1" in (position.reason or "")
    assert "perp leg still working" in (position.reason or "")

    # It fills on the venue; looked at again, the close finds the fill and flattens it.
    await venue.settle(1.0)
    assert perp_short(venue) > 0
    venue.heal()
    closed = await manager.close_position("pos1")
    assert closed.state == "closed"
    assert perp_short(venue) == 0 and venue.balance("BTC") < BTC_SPOT.min_qty


async def test_a_working_leg_the_first_lookup_misses_is_not_declared_absent() -> None:
    manager, venue = setup()
    venue.faults["pos1-po1"] = Fault("working", delay=0.2, unseen=0.25)  # lookups miss it
    with anyio.fail_after(10):
        position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    # Acknowledged orders exist even when search misses them: it was waited for.
    assert position.state == "validated"
    assert position.perp_qty == perp_short(venue) > 0


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.35])
async def test_an_order_landing_within_the_acceptance_window_is_found_not_left_naked(
    delay: float,
) -> None:
    manager, venue = setup()
    venue.faults["pos1-po1"] = Fault("lands", delay=delay)  # lost answer; lands in the window
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    # Looked for until the venue could no longer accept it, found filled: the open
    # stands, hedged, exactly as the venue holds it.
    assert position.state == "validated"
    assert position.perp_qty == perp_short(venue) == D("0.02")
    assert [r.client_order_id for r in venue.sent].count("test01-pos1-po1") == 1


async def test_an_order_landing_late_during_a_failed_open_is_unwound() -> None:
    manager, venue = setup()
    venue.faults["pos1-so1"] = Fault("reject")  # the spot leg fails ...
    venue.faults["pos1-po1"] = Fault("lands", delay=0.2)  # ... the perp lands later
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = caught.value.position
    assert position.state == "rolled_back"
    await venue.settle(1.0)
    assert perp_short(venue) == 0  # found once it landed and bought back: nothing naked


async def test_an_order_absent_past_the_acceptance_window_needs_no_unwind() -> None:
    manager, venue = setup()
    venue.faults["pos1-po1"] = Fault("lands", delay=60)  # past the window: the venue refuses it
    started = time.monotonic()
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = caught.value.position
    assert position.state == "rolled_back"
    assert "perp leg never reached the venue: RequestTimeout" in (position.reason or "")
    # Concluded absent only after the venue could no longer accept it.
    assert time.monotonic() - started >= venue.late_arrival_seconds


async def test_a_retried_unwind_never_sells_again_while_an_earlier_sell_may_land() -> None:
    manager, venue = setup()
    venue.faults["pos1-po1"] = Fault("reject")  # the open fails: the spot leg is rolled back,
    venue.faults["pos1-sr1"] = Fault("lands", delay=0.8)  # but that answer is lost: lands late
    venue.late_arrival_seconds = 1.0
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = caught.value.position
    assert position.state in ("rolled_back", "needs_attention")
    if position.state == "needs_attention":  # the lookup deadline came first: retry
        await venue.settle(1.0)
        position = await manager.close_position("pos1")
    assert position.state in ("rolled_back", "closed")
    assert position.spot_qty >= 0
    sells = [r for r in venue.sent if r.category is Category.SPOT and r.side is Side.SELL]
    bought = D("0.02") - D("0.02") * D("0.001")  # less the fee taken in BTC
    assert sum((r.quantity for r in sells), ZERO) <= bought  # never the account's own coin


async def test_the_close_sells_only_the_positions_coin_not_the_traders_own() -> None:
    manager, venue = setup()
    venue.set_initial_balance("BTC", D("1.5"))  # the trader's own coins, not the strategy's
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = await manager.close_position("pos1")
    assert position.state == "closed"
    assert venue.balance("BTC") == D("1.5")


async def test_the_close_sends_what_the_venue_holds_when_it_holds_less_than_the_record() -> None:
    manager, venue = setup()
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    venue.set_initial_balance("BTC", D("0.01"))  # half of it sold by hand on the venue
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.close_position("pos1")
    position = caught.value.position
    sells = [r for r in venue.sent if r.category is Category.SPOT and r.side is Side.SELL]
    assert [r.quantity for r in sells] == [D("0.01")]  # not the 0.01998 the record says
    assert venue.balance("BTC") == 0 and perp_short(venue) == 0
    # What the record still says is held is exposure the operator must explain.
    assert position.state == "needs_attention"


async def test_every_failure_names_the_cause_the_venue_gave() -> None:
    manager, venue = setup()
    venue.faults["pos1-po1"] = Fault("reject")
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    assert '"retCode":170131' in (caught.value.position.reason or "")
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos2")
    venue.faults.update({"pos2-sc1": Fault("reject"), "pos2-pc1": Fault("reject")})
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.close_position("pos2")
    reason = caught.value.position.reason or ""
    assert "close left exposure" in reason and "Insufficient balance" in reason
