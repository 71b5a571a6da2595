"""The fault matrix (issue 9): each leg x each fault x each phase, through real ccxt,
the LiveExecutor and the PositionManager, against the shipped loopback venue.

Phases:

- ``open``: the fault hits this leg's open order (``*-so1`` / ``*-po1``);
- ``close``: the position opens cleanly, then the fault hits this leg's close
  order (``*-sc1`` / ``*-pc1``);
- ``rollback``: the OTHER leg's open is refused (insufficient balance), so the
  open is rolled back, and the fault hits this leg's rollback order (``*-sr1`` /
  ``*-pr1``).

Faults on the create are the venue's own rules, picked by category (the leg) and
client order id glob (the phase). Faults on the lookups (failing, empty, hiding
closed orders, malformed) pick requests by category only, so they are armed the
moment the phase's order of this leg is sent (``ArmingExecutor``) and last a while
(``until_s``).

The perp leg's cases run again on an account whose perps are in hedge (two-way) mode:
every perp order, the rollbacks and closes too, names the short side (``positionIdx`` 2),
and the venue refuses nothing for the want of it. (A classic account, or a key that may
not trade, is refused at startup before any order: ``test_live_accounts.py``.)

Every case ends hedged (``validated``: the venue's spot equals its perp short but
for the spot buy's fee coin, and the position's record equals the venue), flat
(``closed`` / ``rolled_back``: no perp position, spot dust below the minimum order)
or ``needs_attention``: then, once nothing can still land, its record equals what
the venue holds (when no order of it is unresolved), and once the faults are gone
``close_position`` (retried a couple of times) ends it ``closed`` and flat. The
venue's audit shows no client order id placed or sent twice, no two live orders of
one intent and no coin sold beyond what was bought.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import anyio
import pytest

from orchestrator import LiveExecutor, PositionManager, TickerService, TradingSettings
from orchestrator.bybit.client import make_exchange
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.settings import VenueTiming
from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, FaultRule, Venue
from orchestrator.venue.account import Account
from tests.support import BTC_PERP, BTC_SPOT, FakeClock

pytestmark = pytest.mark.anyio
D = Decimal

Leg = Literal["spot", "perp"]
Phase = Literal["open", "close", "rollback"]
LEGS: tuple[Leg, ...] = ("spot", "perp")
PHASES: tuple[Phase, ...] = ("open", "close", "rollback")
CATEGORY = {"spot": "spot", "perp": "linear"}

# Small timings so a case takes about a second: an order whose answer was lost may land
# until signing + 0.8 s (the venue refuses it after) + 0.2 s of allowed skew.
TIMING = VenueTiming(request_timeout_ms=400, recv_window_ms=800, clock_skew_ms=200)
LATE = TIMING.late_arrival_seconds
SETTINGS = TradingSettings(max_position_size_usd=D(1200), order_timeout_seconds=1)
WHILE_S = 1.5  # how long lookup faults last: beyond the late-arrival window
PRICE = D(60000)
QTY = D("0.02")  # what 1200 USD buys at 60,000
SPOT_FEE = D("0.001")  # the venue's spot fee rate, taken in the coin bought
NONCE, PID = "matrix", "fm1"


# -- the faults --------------------------------------------------------------------------

Rules = Callable[[str, str], list[FaultRule]]  # (category, client id glob) -> rules


def create(kind: str, **fields: Any) -> Rules:
    """A fault on the create of the phase's order of this leg."""

    def rules(category: str, glob: str) -> list[FaultRule]:
        return [
            FaultRule(
                kind=kind,  # type: ignore[arg-type]
                endpoint="order/create",
                category=category,  # type: ignore[arg-type]
                link_id=glob,
                times=None,
                **fields,
            )
        ]

    return rules


def lookups(
    kind: str,
    endpoint: str = "order/realtime,order/history",
    until_s: float | None = WHILE_S,
    **fields: Any,
) -> Rules:
    """A fault on every order read of this leg's category for ``until_s`` seconds (None:
    until the faults are cleared) from the moment the phase's order of this leg is sent
    (the fill read and the lookups by client id alike)."""

    def rules(category: str, glob: str) -> list[FaultRule]:
        return [
            FaultRule(
                kind=kind,  # type: ignore[arg-type]
                endpoint=endpoint,
                category=category,  # type: ignore[arg-type]
                times=None,
                until_s=until_s,
                **fields,
            )
        ]

    return rules


@dataclass(frozen=True)
class Fault:
    rules: Rules
    # Whether the phase's order of this leg ends filled on the venue (found by its client
    # order id when its answer was lost): the phase then completes (validated, closed,
    # rolled back); else it fails (an open is rolled back, a close or a rollback leaves
    # the position needing attention). None: its outcome stays unknown until the faults
    # are gone, and the position needs attention whatever the phase.
    lands: bool | None
    armed: bool = False  # installed when the phase's order of the leg is sent


FAULTS: dict[str, Fault] = {
    # Refusals: nothing placed.
    "reject_insufficient": Fault(create("reject", error="insufficient_balance"), lands=False),
    "reject_qty_step": Fault(create("reject", error="qty_step"), lands=False),
    "reject_qty_too_small": Fault(create("reject", error="qty_too_small"), lands=False),
    "duplicate_link_id": Fault(create("reject", error="duplicate_link_id"), lands=False),
    # No answer: placed or not, only a lookup can tell.
    "timeout_before": Fault(create("timeout_before", delay_ms=600), lands=False),
    "timeout_after": Fault(create("timeout_after", delay_ms=600), lands=True),
    "drop_after": Fault(create("drop_after"), lands=True),
    # The answer is lost, the order lands later: within the receive window, or beyond it
    # (refused by the venue).
    "land_late_within": Fault(create("land_late", delay_ms=500), lands=True),
    "land_late_beyond": Fault(create("land_late", delay_ms=1100), lands=False),
    # Half fills, the rest is cancelled: the open drifts, a close or rollback leaves half.
    "partial": Fault(create("partial", fill_ratio=D("0.5")), lands=False),
    # Works a moment, then fills while the executor still polls its fill; or works beyond
    # the polls, and the manager cancels it unfilled.
    "fill_late": Fault(create("fill_late", hold_ms=50), lands=True),
    "fill_late_long": Fault(create("fill_late", hold_ms=1500), lands=False),
    # Rate limits, gateways, Bybit's system error: nothing placed, outcome unknown until
    # the receive window has passed.
    "http_429": Fault(create("http", status=429), lands=False),
    "rate_limit_10006": Fault(create("reject", error="rate_limit"), lands=False),
    "http_500": Fault(create("http", status=500), lands=False),
    "http_502": Fault(create("http", status=502), lands=False),
    "http_503": Fault(create("http", status=503), lands=False),
    "http_504": Fault(create("http", status=504), lands=False),
    "http_502_placed": Fault(create("http", status=502, accept=True), lands=True),
    "system_error_10016": Fault(create("reject", error="system_error"), lands=False),
    # Malformed answers to the create: placed (the default) or not.
    "malformed_html": Fault(create("malformed", body="html"), lands=True),
    "malformed_truncated": Fault(create("malformed", body="truncated_json"), lands=True),
    "malformed_unplaced": Fault(
        create("malformed", body="missing_result", accept=False), lands=False
    ),
    # The create is answered; its fill read and the lookups by client id fail, answer
    # nothing, hide closed orders or are unreadable, for WHILE_S seconds.
    "lookups_http_503": Fault(lookups("http", status=503), lands=True, armed=True),
    "lookups_empty": Fault(lookups("empty"), lands=True, armed=True),
    "lookups_hide_closed": Fault(
        lookups("hide_closed", endpoint="order/realtime"), lands=True, armed=True
    ),
    "lookups_malformed": Fault(lookups("malformed", body="missing_fields"), lands=True, armed=True),
    # Order answers without the fee detail (ccxt then reads no fee): the fee is read from
    # the order's executions, so the position holds what the fill left and sells no more.
    "no_fee_detail": Fault(lookups("no_fee_detail", until_s=None), lands=True, armed=True),
    # Lookups down beyond every deadline: the order's outcome stays unknown.
    "lookups_down": Fault(lookups("http", status=503, until_s=None), lands=None, armed=True),
}

EXPECTED = {  # the phase's outcome when the faulty order lands, and when it does not
    "open": ("validated", "rolled_back"),
    "close": ("closed", "needs_attention"),
    "rollback": ("rolled_back", "needs_attention"),
}

Mode = Literal["one-way", "hedge"]
CASES = [
    pytest.param(mode, leg, phase, fault, id=f"{prefix}{leg}-{phase}-{fault}")
    for mode, prefix in (("one-way", ""), ("hedge", "hedge-"))
    for phase in PHASES
    for leg in LEGS
    if mode == "one-way" or leg == "perp"
    for fault in FAULTS
]


# -- the parts -----------------------------------------------------------------------------


class ArmingExecutor(LiveExecutor):
    """The LiveExecutor, installing ``rules`` on the venue when the order whose client id
    matches ``glob`` is about to be sent."""

    def __init__(self, exchange: Any, venue: Venue, hedged: tuple[str, ...]) -> None:
        super().__init__(
            exchange,
            timing=TIMING,
            fill_poll_interval=0.02,
            fill_poll_attempts=5,
            read_attempts=3,
            hedged=hedged,
        )
        self.venue = venue
        self.armed: tuple[str, list[FaultRule]] | None = None

    async def place_order(self, request: OrderRequest) -> OrderResult:
        if self.armed is not None and fnmatch.fnmatchcase(request.client_order_id, self.armed[0]):
            for rule in self.armed[1]:
                self.venue.faults.add(rule)
            self.armed = None
        return await super().place_order(request)


@dataclass
class Rig:
    venue: Venue
    executor: ArmingExecutor
    manager: PositionManager


@pytest.fixture
async def rig(bybit_venue: Venue, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """The parts, on an account in the position mode ``request.param`` (one-way if not
    parametrised)."""
    mode: Mode = getattr(request, "param", "one-way")
    bybit_venue.book.account = Account(mode=mode)
    exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, TIMING, url=bybit_venue.url)
    try:
        ticker = TickerService(clock=FakeClock())
        ticker.update(BTC_SPOT.symbol, PRICE)
        ticker.update(BTC_PERP.symbol, PRICE)
        hedged = (BTC_PERP.symbol,) if mode == "hedge" else ()
        executor = ArmingExecutor(exchange, bybit_venue, hedged)
        manager = PositionManager(executor, ticker, SETTINGS, run_nonce=NONCE)
        yield Rig(bybit_venue, executor, manager)
    finally:
        await exchange.close()


def held(venue: Venue) -> tuple[Decimal, Decimal]:
    """(BTC in the wallet, the BTCUSDT perp short) as the venue's book has them."""
    position = venue.book.positions.get("BTCUSDT")
    return venue.book.wallet.get("BTC", D(0)), -position.size if position else D(0)


async def settle(venue: Venue, limit: float = 3.0) -> None:
    """Wait until nothing can still land or fill: no create pending (land_late), no order
    working (fill_late)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pending = any(r.outcome == "pending" for r in venue.audit.creates)
        working = any(o.is_open for o in venue.orders.values())  # ticks held orders
        if not pending and not working:
            return
        await anyio.sleep(0.05)
    raise AssertionError("orders still pending or working on the venue")


def unresolved(position: Position) -> bool:
    return "outcome unknown for" in (position.reason or "")


def assert_hedged(venue: Venue, position: Position) -> None:
    spot, short = held(venue)
    assert (spot, short) == (position.spot_qty, position.perp_qty), position.reason
    assert short > 0
    assert D(0) <= short - spot <= short * SPOT_FEE, (spot, short)


def assert_flat(venue: Venue, position: Position) -> None:
    spot, short = held(venue)
    where = f"{position.state}: {position.reason}"
    assert short == 0, f"the venue still holds a perp short of {short} ({where})"
    assert D(0) <= spot < BTC_SPOT.min_qty, f"the venue still holds {spot} BTC ({where})"


def assert_audit_clean(venue: Venue) -> None:
    """No client order id placed or sent twice, no coin oversold, no two live orders of
    one intent, and in hedge mode every perp order on the short side."""
    audit = venue.audit
    if venue.book.account.mode == "hedge":
        perp = [c for c in audit.creates if c.category == "linear"]
        assert perp and all(str(c.body.get("positionIdx")) == "2" for c in perp), perp
    assert audit.placed_twice() == []
    assert audit.sent_twice() == []
    assert audit.oversold() == {}
    assert audit.live_overlaps(venue.server_ms()) == []


async def attempt(call: Awaitable[Position]) -> Position:
    try:
        return await call
    except DeltaHedgeError as exc:
        return exc.position


# -- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rig", "leg", "phase", "fault"), CASES, indirect=["rig"])
async def test_fault_matrix(
    rig: Rig, leg: Leg, phase: Phase, fault: str, record_property: Any
) -> None:
    venue, manager = rig.venue, rig.manager
    spec = FAULTS[fault]
    glob = f"*-{leg[0]}{phase[0]}1"
    rules = spec.rules(CATEGORY[leg], glob)

    def install() -> None:
        if spec.armed:
            rig.executor.armed = (glob, rules)
        else:
            for rule in rules:
                venue.faults.add(rule)

    open_it = manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id=PID)
    if phase == "open":
        install()
        position = await attempt(open_it)
        assert position.state in ("validated", "rolled_back", "needs_attention"), position.reason
    elif phase == "close":
        position = await open_it
        assert position.state == "validated"
        install()
        position = await attempt(manager.close_position(PID))
        assert position.state in ("closed", "needs_attention"), position.reason
    else:
        other: Leg = "perp" if leg == "spot" else "spot"
        venue.faults.add(
            FaultRule(
                kind="reject",
                endpoint="order/create",
                category=CATEGORY[other],  # type: ignore[arg-type]
                link_id=f"*-{other[0]}o1",
                error="insufficient_balance",
            )
        )
        install()
        position = await attempt(open_it)
        assert position.state in ("rolled_back", "needs_attention"), position.reason
    first = position.state
    record_property("outcome", first)
    record_property("unresolved", unresolved(position))
    lands, fails = EXPECTED[phase]
    expected = "needs_attention" if spec.lands is None else lands if spec.lands else fails
    assert first == expected, position.reason
    assert unresolved(position) == (spec.lands is None), position.reason

    # Nothing may land or fill any more: what the venue holds now is what it holds.
    await settle(venue)
    if first == "validated":
        assert_hedged(venue, position)
        position = await manager.close_position(PID)  # and it closes cleanly
        assert position.state == "closed"
    elif first in ("closed", "rolled_back"):
        assert not unresolved(position)
    else:
        if not unresolved(position):
            spot, short = held(venue)
            assert (position.spot_qty, position.perp_qty) == (spot, short), position.reason
        venue.faults.clear()
        rig.executor.armed = None
        for _ in range(3):
            position = await attempt(manager.close_position(PID))
            if position.state == "closed":
                break
        assert position.state == "closed", position.reason
        await settle(venue)
    assert_flat(venue, position)
    assert_audit_clean(venue)


async def test_a_partial_close_and_the_close_of_its_rest_are_no_overlap(rig: Rig) -> None:
    """A close whose spot order half fills (the rest cancelled) needs attention; the next
    close sells the rest. The two were never live at once and no coin was sold beyond
    what was bought."""
    venue, manager = rig.venue, rig.manager
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id=PID)
    venue.faults.add(FaultRule(kind="partial", category="spot", link_id="*-sc1"))
    position = await attempt(manager.close_position(PID))
    assert position.state == "needs_attention"
    position = await manager.close_position(PID)
    assert position.state == "closed"
    assert_flat(venue, position)
    first, then = (o for o in venue.book.orders.values() if o.link_id.endswith(("-sc1", "-sc2")))
    assert first.done_ms is not None and first.done_ms < then.created_ms  # one after the other
    assert venue.audit.oversold() == {}
    assert venue.audit.live_overlaps(venue.server_ms()) == []
