from __future__ import annotations

import re
from decimal import Decimal

import anyio
import anyio.lowlevel
import msgspec
import pytest

from orchestrator import (
    DeltaDriftExceeded,
    DeltaHedgeError,
    DeltaHedgeTimeout,
    Executor,
    InsufficientSizeError,
    InvalidOrderError,
    OrderRequest,
    OrderResult,
    PaperExecutor,
    PositionManager,
    PositionStateError,
    PriceUnavailableError,
    Side,
    TickerService,
    TradingSettings,
    UnknownPositionError,
)
from orchestrator.models import Category, Holdings, Instrument
from tests.support import (
    BTC_PERP,
    BTC_SPOT,
    ETH_PERP,
    ETH_SPOT,
    FakeClock,
    FaultyPaperExecutor,
    make_ticker,
)

pytestmark = pytest.mark.anyio
D = Decimal
NONCE = "test01"  # the run nonce: client order ids read test01-pos1-so1
SETTINGS = TradingSettings(
    max_position_size_usd=D(1000), order_timeout_seconds=0.5, delta_drift_tolerance=D("0.02")
)


def setup(
    settings: TradingSettings = SETTINGS, balance: Decimal = D(100_000)
) -> tuple[PositionManager, FaultyPaperExecutor, TickerService]:
    ticker = make_ticker()
    executor = FaultyPaperExecutor(ticker, balance=balance)
    return PositionManager(executor, ticker, settings, run_nonce=NONCE), executor, ticker


def assert_flat(executor: PaperExecutor) -> None:
    assert executor.get_virtual_balance().get("BTC", D(0)) == 0
    assert executor.get_perp_position(BTC_PERP.symbol).size == 0


# -- the main line


async def test_open_buys_spot_and_shorts_perp_for_the_same_quantity() -> None:
    manager, executor, _ = setup()
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")

    assert position.state == "validated"
    assert position.quantity == D("0.02")  # 1000 USD limit at 50000
    # The spot buy's fee is taken in BTC (as on Bybit): the position holds less spot.
    assert (position.spot_qty, position.perp_qty) == (D("0.01998"), D("0.02"))
    by_category = {r.category: r for r in executor.requests}
    spot, perp = by_category[Category.SPOT], by_category[Category.LINEAR]
    assert (spot.symbol, spot.side, spot.quantity) == ("BTC/USDT", Side.BUY, D("0.02"))
    assert (perp.symbol, perp.side, perp.quantity) == ("BTC/USDT:USDT", Side.SELL, D("0.02"))
    assert not perp.reduce_only
    spot_fill, perp_fill = position.orders
    assert spot_fill.avg_price is not None
    assert position.entry_fees == spot_fill.fee * spot_fill.avg_price + perp_fill.fee
    assert position.spot_entry_price == D(50000) * D("1.0005")
    assert position.perp_entry_price == D(50010) * D("0.9995")
    assert position.opened_at is not None
    assert manager.get_open_positions() == [position]
    assert manager.get_position("pos1") is position
    assert executor.get_virtual_balance()["BTC"] == D("0.01998")
    assert executor.get_perp_position(BTC_PERP.symbol).size == D("-0.02")


async def test_client_order_ids_are_deterministic_short_and_recorded() -> None:
    manager, executor, _ = setup()
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    await manager.close_position("pos1")
    assert position.client_order_ids == [
        "test01-pos1-so1",
        "test01-pos1-po1",
        "test01-pos1-sc1",
        "test01-pos1-pc1",
    ]
    assert [r.client_order_id for r in executor.requests] == position.client_order_ids

    # Generated ids stay within Bybit's 36 characters, and so do the longest allowed.
    generated = await manager.open_position(ETH_SPOT, ETH_PERP, D(500))
    longest = await manager.open_position(BTC_SPOT, BTC_PERP, D(500), position_id="p" * 20)
    for cid in generated.client_order_ids + longest.client_order_ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", cid)
    with pytest.raises(InvalidOrderError, match="1-20 characters"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(500), position_id="p" * 21)


async def test_client_order_ids_are_unique_across_runs() -> None:
    """A second run must never take the first run's orders for its own: each run
    has its own nonce, while ids stay deterministic within the run."""
    ids = []
    for _ in range(2):
        ticker = make_ticker()
        manager = PositionManager(FaultyPaperExecutor(ticker), ticker, SETTINGS)  # fresh nonce
        position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
        ids.append(position.client_order_ids)
        assert all(cid.startswith(f"{manager.run_nonce}-pos1-") for cid in ids[-1])
    assert not set(ids[0]) & set(ids[1])
    with pytest.raises(InvalidOrderError, match="run nonce"):
        PositionManager(FaultyPaperExecutor(ticker), ticker, SETTINGS, run_nonce="has space")


async def test_both_orders_are_in_flight_at_the_same_time() -> None:
    """Each place_order waits until the other has arrived; sequential sending fails."""

    class Rendezvous(Executor):
        def __init__(self, inner: PaperExecutor) -> None:
            self.inner = inner
            self.arrived = 0
            self.both = anyio.Event()

        async def place_order(self, request: OrderRequest) -> OrderResult:
            self.arrived += 1
            if self.arrived % 2 == 0:
                self.both.set()
            with anyio.fail_after(2):
                await self.both.wait()
            self.both = anyio.Event() if self.arrived % 2 == 0 else self.both
            return await self.inner.place_order(request)

        async def cancel_order(
            self, order_id: str, symbol: str, category: Category = Category.LINEAR
        ) -> bool:
            return await self.inner.cancel_order(order_id, symbol, category)

        async def fetch_order_by_client_id(
            self, client_order_id: str, symbol: str
        ) -> OrderResult | None:
            return await self.inner.fetch_order_by_client_id(client_order_id, symbol)

        async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
            return await self.inner.fetch_holdings(spot, perp)

    ticker = make_ticker()
    paper = FaultyPaperExecutor(ticker)
    settings = TradingSettings(order_timeout_seconds=5)
    manager = PositionManager(Rendezvous(paper), ticker, settings, run_nonce=NONCE)
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(1000))
    assert position.state == "validated"
    assert len(paper.requests) == 2


async def test_close_sends_the_reverse_orders_and_ends_flat() -> None:
    manager, executor, _ = setup()
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = await manager.close_position("pos1")

    assert position.state == "closed"
    spot_close, perp_close = executor.requests[2:]
    assert (spot_close.side, spot_close.quantity) == (Side.SELL, D("0.01998"))  # what is held
    assert (perp_close.side, perp_close.quantity, perp_close.reduce_only) == (
        Side.BUY,
        D("0.02"),
        True,
    )
    assert position.spot_qty == position.perp_qty == 0
    assert position.exit_fees > 0
    assert position.closed_at is not None
    assert manager.get_open_positions() == []
    assert_flat(executor)


async def test_closing_twice_or_an_unknown_position_is_refused() -> None:
    manager, _, _ = setup()
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    await manager.close_position("pos1")
    with pytest.raises(PositionStateError, match="pos1 is closed"):
        await manager.close_position("pos1")
    with pytest.raises(UnknownPositionError):
        await manager.close_position("nope")


# -- failures on the way in


async def test_perp_rejected_reverses_the_spot_leg() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = "reject"
    with pytest.raises(DeltaHedgeError, match="perp leg failed") as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")

    position = caught.value.position
    assert type(caught.value) is DeltaHedgeError
    assert position.state == "rolled_back"
    rollback = executor.requests[-1]
    assert (rollback.client_order_id, rollback.side, rollback.quantity) == (
        "test01-pos1-sr1",
        Side.SELL,
        D("0.01998"),
    )
    assert len(executor.requests) == 3  # nothing to reverse on the perp side
    assert position.spot_qty == position.perp_qty == 0
    assert manager.get_open_positions() == []
    assert_flat(executor)


async def test_leg_hanging_past_the_timeout_is_looked_up_and_rolled_back() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = "fill_then_hang"  # the venue filled it; the answer never came
    with anyio.fail_after(5), pytest.raises(DeltaHedgeTimeout) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")

    position = caught.value.position
    assert position.state == "rolled_back"
    assert "test01-pos1-po1" in executor.lookups  # resolved by its client order id ...
    assert executor.requests.count(executor.requests[1]) == 1  # ... never sent again
    reversals = {r.client_order_id: r for r in executor.requests[2:]}
    assert reversals["test01-pos1-sr1"].side is Side.SELL
    assert (
        reversals["test01-pos1-pr1"].side is Side.BUY and reversals["test01-pos1-pr1"].reduce_only
    )
    assert_flat(executor)


async def test_leg_that_never_reached_the_venue_needs_no_reversal() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = "hang"  # never answered, never filled
    with pytest.raises(DeltaHedgeTimeout) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    assert caught.value.position.state == "rolled_back"
    assert [r.client_order_id for r in executor.requests] == [
        "test01-pos1-so1",
        "test01-pos1-po1",
        "test01-pos1-sr1",
    ]
    assert_flat(executor)


async def test_leg_that_lands_after_the_first_lookup_is_still_found() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = "lands_late"
    with pytest.raises(DeltaHedgeTimeout) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    assert caught.value.position.state == "rolled_back"
    assert executor.lookups.count("test01-pos1-po1") == 2
    assert {r.client_order_id for r in executor.requests[2:]} == {
        "test01-pos1-sr1",
        "test01-pos1-pr1",
    }
    assert_flat(executor)


async def test_failed_rollback_leaves_the_operator_the_exposure() -> None:
    manager, executor, _ = setup()
    executor.faults.update({"po1": "reject", "sr1": "reject"})
    with pytest.raises(DeltaHedgeError, match="rollback left exposure") as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")

    position = caught.value.position
    assert position.state == "needs_attention"
    assert position.spot_qty == D("0.01998") and position.perp_qty == 0
    assert "spot 0.01998 BTC long, perp 0 short" in (position.reason or "")
    assert manager.get_open_positions() == [position]

    # The operator retries: a close flattens what is left.
    del executor.faults["sr1"]
    closed = await manager.close_position("pos1")
    assert closed.state == "closed"
    assert executor.requests[-1].client_order_id == "test01-pos1-sc1"
    assert_flat(executor)


async def test_unresolvable_leg_is_reported_not_guessed() -> None:
    # The perp's fate is unknown and the venue cannot be asked about it.
    class Unreachable(FaultyPaperExecutor):
        async def fetch_order_by_client_id(
            self, client_order_id: str, symbol: str
        ) -> OrderResult | None:
            raise OSError("venue unreachable")

    ticker = make_ticker()
    executor = Unreachable(ticker)
    executor.faults["po1"] = "unknown"
    manager = PositionManager(executor, ticker, SETTINGS, run_nonce=NONCE)
    with pytest.raises(DeltaHedgeError) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    position = caught.value.position
    assert position.state == "needs_attention"
    assert "outcome unknown for test01-pos1-po1" in (position.reason or "")
    # What was known (the spot leg) was reversed anyway.
    assert executor.get_virtual_balance()["BTC"] == 0


async def test_partial_fill_beyond_tolerance_unwinds_both_legs() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = D("0.9")  # the perp fills 0.018 of 0.01998 held: 9.9 % drift
    with pytest.raises(DeltaDriftExceeded, match=r"drifts 9\.9099%") as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")

    position = caught.value.position
    assert position.state == "rolled_back"
    unwound = {r.client_order_id: r.quantity for r in executor.requests[2:]}
    assert unwound == {"test01-pos1-sr1": D("0.01998"), "test01-pos1-pr1": D("0.018")}
    assert_flat(executor)


async def test_partial_fill_within_tolerance_is_a_valid_position() -> None:
    manager, executor, _ = setup()
    executor.faults["po1"] = D("0.99")  # 1 % short of the spot
    position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    assert position.state == "validated"
    assert (position.spot_qty, position.perp_qty) == (D("0.01998"), D("0.0198"))
    closed = await manager.close_position("pos1")
    assert closed.state == "closed"
    assert executor.requests[-1].quantity == D("0.0198")  # buys back what is short
    assert_flat(executor)


# -- failures on the way out


async def test_close_timeout_leaves_the_position_needing_attention() -> None:
    manager, executor, _ = setup()
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    executor.faults["pc1"] = "hang"
    with pytest.raises(DeltaHedgeTimeout, match="close left exposure") as caught:
        await manager.close_position("pos1")
    position = caught.value.position
    assert position.state == "needs_attention"
    assert (position.spot_qty, position.perp_qty) == (D(0), D("0.02"))
    # A second close only buys back the perp that is still short.
    await manager.close_position("pos1")
    assert position.state == "closed"
    assert [r.client_order_id for r in executor.requests[-1:]] == ["test01-pos1-pc2"]
    assert_flat(executor)


# -- refused before anything is sent


async def test_size_below_the_minimums_is_rejected_without_an_order() -> None:
    manager, executor, _ = setup()
    with pytest.raises(InsufficientSizeError, match="meets both"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(40), position_id="small")
    assert manager.get_position("small").state == "rejected"  # type: ignore[union-attr]
    assert executor.requests == []
    assert manager.get_open_positions() == []


async def test_missing_price_is_rejected_without_an_order() -> None:
    clock = FakeClock()
    ticker = make_ticker(clock)
    executor = FaultyPaperExecutor(ticker)
    manager = PositionManager(executor, ticker, SETTINGS, run_nonce=NONCE)
    clock.now += 3600  # every price is now an hour old
    with pytest.raises(PriceUnavailableError, match="stale"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="stale")
    position = manager.get_position("stale")
    assert position is not None and position.state == "rejected"
    assert "stale" in (position.reason or "")
    assert executor.requests == []


@pytest.mark.parametrize("balance", [D(0), D(-100), D("NaN")])
async def test_nonpositive_balance_is_a_clear_error(balance: Decimal) -> None:
    manager, executor, _ = setup()
    with pytest.raises(InvalidOrderError, match="available balance must be a positive"):
        await manager.open_position(BTC_SPOT, BTC_PERP, balance)
    assert executor.requests == []


async def test_swapped_instruments_or_bad_ids_are_refused() -> None:
    manager, executor, _ = setup()
    with pytest.raises(InvalidOrderError) as refused:
        await manager.open_position(BTC_PERP, BTC_SPOT, D(1000))
    # The message names what is wrong with each argument, not only what was given.
    assert str(refused.value) == (
        "open_position needs a spot instrument then a linear perp instrument: "
        "spot is BTC/USDT:USDT, a linear instrument; perp is BTC/USDT, a spot instrument"
    )
    with pytest.raises(InvalidOrderError, match="position id"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="x" * 25)
    await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="same")
    with pytest.raises(InvalidOrderError, match="already in use"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="same")
    assert len(executor.requests) == 2


# -- many at once, and cancellation


async def test_many_positions_open_and_close_concurrently() -> None:
    manager, executor, _ = setup(balance=D(10_000_000))

    async def lifecycle(i: int) -> None:
        spot, perp = (BTC_SPOT, BTC_PERP) if i % 2 else (ETH_SPOT, ETH_PERP)
        await manager.open_position(spot, perp, D(500), position_id=f"p{i}")
        await anyio.lowlevel.checkpoint()
        await manager.close_position(f"p{i}")

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(lifecycle, i)
    assert manager.get_open_positions() == []
    assert {manager.get_position(f"p{i}").state for i in range(50)} == {"closed"}  # type: ignore[union-attr]
    assert len(executor.requests) == 200
    assert_flat(executor)


async def test_cancelling_the_caller_mid_open_does_not_strand_a_leg() -> None:
    class Slow(FaultyPaperExecutor):
        async def place_order(self, request: OrderRequest) -> OrderResult:
            await anyio.sleep(0.05)
            return await super().place_order(request)

    ticker = make_ticker()
    executor = Slow(ticker)
    manager = PositionManager(executor, ticker, SETTINGS, run_nonce=NONCE)
    with anyio.move_on_after(0.01) as scope:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    assert scope.cancel_called  # the caller gave up while the legs were in flight
    position = manager.get_position("pos1")
    assert position is not None
    assert position.state == "validated"  # both legs finished under the shield
    assert (position.spot_qty, position.perp_qty) == (D("0.01998"), D("0.02"))


@pytest.mark.parametrize("spot_category", ["spot", Category.SPOT])
@pytest.mark.parametrize("perp_category", ["linear", Category.LINEAR])
async def test_an_instrument_built_with_the_category_text_is_the_enum(
    spot_category: str, perp_category: str
) -> None:
    # The README's execution-core example once built instruments with category="spot"
    # and got "need a spot and a linear perp instrument, got BTC/USDT (spot) ...".
    spot = msgspec.structs.replace(BTC_SPOT, category=spot_category)
    perp = msgspec.structs.replace(BTC_PERP, category=perp_category)
    assert spot.category is Category.SPOT and perp.category is Category.LINEAR
    manager, executor, _ = setup()
    position = await manager.open_position(spot, perp, D(1000))
    assert position.state == "validated" and len(executor.requests) == 2


def test_an_unknown_category_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"category must be 'spot' or 'linear' .*got 'perp'"):
        msgspec.structs.replace(BTC_PERP, category="perp")
