"""Random fault schedules across both legs of two positions at once.

Whatever the venue does (refuses, loses answers, lands late, fills late or in part,
hides orders from lookups, fails reads), every position ends hedged or flat, or
needs attention with what the venue holds recorded or the uncertainty named; once
the faults end, the operator's retries flatten it. No client order id reaches the
venue twice, nothing is sent on an intent twice, and the trader's own coins are
never sold.

Time is trio's MockClock: a schedule of seconds runs in microseconds. CI runs
1,000 examples; the deeper profile is documented in docs/internals/testing.md:

    HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/test_manager_properties.py
"""

from __future__ import annotations

import os
from collections import Counter
from contextlib import suppress
from decimal import Decimal

import anyio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from machines import FINAL_STATES
from orchestrator import PositionManager
from orchestrator.models import Instrument, Position
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.settings import TradingSettings
from tests.fault_venue import Fault, FaultVenue
from tests.support import BTC_PERP, BTC_SPOT, ETH_PERP, ETH_SPOT, make_ticker

D = Decimal
SETTINGS = TradingSettings(max_position_size_usd=D(1000), order_timeout_seconds=0.5)
OWN = {"BTC": D("0.7"), "ETH": D("3")}  # the trader's own coins: never to be sold
PAIRS = {"b1": (BTC_SPOT, BTC_PERP), "e1": (ETH_SPOT, ETH_PERP)}
KEYS = [
    f"{pid}-{leg}{action}{attempt}"
    for pid in PAIRS
    for leg in "sp"
    for action in "ocr"
    for attempt in (1, 2)
]

settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same schedules on every CI run
)
settings.register_profile(
    "deep", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

faults = st.one_of(
    st.just(Fault()),
    st.builds(
        Fault,
        send=st.sampled_from(
            ["ok", "reject", "lost", "lost_filled", "lands", "working", "partial"]
        ),
        delay=st.sampled_from([0.0, 0.1, 0.3, 0.7, 3.0]),
        fraction=st.sampled_from([D("0.5"), D("0.9"), D("0.99")]),
        # Search may lag, but shows an accepted order within the acceptance window
        # (the rule that lets an order be concluded absent at all).
        unseen=st.sampled_from([0.0, 0.0, 0.2, 0.35]),
        lookup_fails=st.sampled_from([0, 0, 1, 5]),
        lookup_hangs=st.sampled_from([False, False, False, True]),
    ),
)
schedules = st.fixed_dictionaries({key: faults for key in KEYS})


def held(venue: FaultVenue, spot: Instrument, perp: Instrument) -> tuple[Decimal, Decimal]:
    """What the venue holds for the strategy: coin beyond the trader's own, perp short."""
    return venue.balance(spot.base) - OWN[spot.base], -venue.get_perp_position(perp.symbol).size


def check_position(venue: FaultVenue, position: Position, *, healed: bool) -> None:
    spot, perp = PAIRS[position.id]
    coin, short = held(venue, spot, perp)
    assert coin >= 0, f"{position.id}: the trader's own {spot.base} was sold"
    assert short >= 0, f"{position.id}: the venue holds a long perp"
    if position.state in FINAL_STATES:
        # Final: none of its orders can still work or land, and nothing is held.
        assert venue.pending(position.client_order_ids) == [], position
        assert short == 0, position
        assert coin < spot.min_qty, position  # dust below the minimum order is not exposure
        assert position.spot_qty >= 0 and position.perp_qty == 0, position
    elif position.state == "validated":
        assert not healed or position.perp_qty == short
        assert position.spot_qty > 0 and position.perp_qty > 0
    else:
        assert position.state == "needs_attention", position
        reason = position.reason or ""
        if "outcome unknown" not in reason and not venue.pending(position.client_order_ids):
            # Nothing uncertain: the exposure recorded is what the venue holds.
            assert (position.spot_qty, position.perp_qty) == (coin, short), reason


async def scenario(schedule: dict[str, Fault], holdings_fails: int) -> None:
    ticker = make_ticker()
    venue = FaultVenue(ticker)
    for coin, amount in OWN.items():
        venue.set_initial_balance(coin, amount)
    venue.faults = dict(schedule)
    venue.holdings_fails = holdings_fails
    manager = PositionManager(venue, ticker, SETTINGS, run_nonce="prop01")

    async def life(pid: str) -> None:
        spot, perp = PAIRS[pid]
        with suppress(DeltaHedgeError):
            await manager.open_position(spot, perp, D(5000), position_id=pid)
        position = manager.get_position(pid)
        assert position is not None
        if position.state == "validated":
            with suppress(DeltaHedgeError):
                await manager.close_position(pid)

    async with anyio.create_task_group() as tg:
        for pid in PAIRS:
            tg.start_soon(life, pid)
    positions = [p for p in (manager.get_position(pid) for pid in PAIRS) if p is not None]
    for position in positions:
        check_position(venue, position, healed=False)

    # A retry while the faults go on (the second attempts have their own).
    for position in positions:
        if position.state == "needs_attention":
            with suppress(DeltaHedgeError):
                await manager.close_position(position.id)
        check_position(venue, position, healed=False)

    # The faults end; the operator retries what needs attention.
    await venue.settle()
    venue.heal()
    for _ in range(3):
        for position in positions:
            if position.state == "needs_attention":
                with suppress(DeltaHedgeError):
                    await manager.close_position(position.id)
    for position in positions:
        assert position.state in FINAL_STATES, position
        check_position(venue, position, healed=True)

    # Each client order id reached the venue once, and was sent once.
    assert max(venue.placed.values(), default=0) <= 1, venue.placed
    sent = Counter(r.client_order_id for r in venue.sent)
    assert max(sent.values(), default=0) <= 1, sent


@given(schedule=schedules, holdings_fails=st.sampled_from([0, 0, 1, 3]))
def test_random_fault_schedules_end_hedged_or_flat(
    schedule: dict[str, Fault], holdings_fails: int
) -> None:
    anyio.run(
        scenario,
        schedule,
        holdings_fails,
        backend="trio",
        backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
    )
