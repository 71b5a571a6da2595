"""Traces of position lifecycles, through the real OpenTelemetry SDK (in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator import (
    DeltaHedgeError,
    DeltaHedgeTimeout,
    LiveExecutor,
    PositionManager,
    TickerService,
    TradingSettings,
)
from orchestrator.position.tracer import PositionTracer
from tests.fake_bybit import API_KEY, FakeBybit, make_exchange
from tests.support import BTC_PERP, BTC_SPOT, FakeClock, FaultyPaperExecutor, make_ticker

pytestmark = pytest.mark.anyio
D = Decimal
SETTINGS = TradingSettings(max_position_size_usd=D(1000), order_timeout_seconds=0.5)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]
    yield exporter
    provider.shutdown()


def traced(
    exporter: InMemorySpanExporter,
) -> tuple[PositionManager, FaultyPaperExecutor]:
    ticker = make_ticker()
    executor = FaultyPaperExecutor(ticker)
    tracer = exporter.provider.get_tracer("test")  # type: ignore[attr-defined]
    tracing = PositionTracer(tracer, clock=ticker.clock)
    return PositionManager(
        executor, ticker, SETTINGS, tracing=tracing, run_nonce="test01"
    ), executor


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def path(root: ReadableSpan) -> list[str]:
    events = [e for e in root.events if e.name == "transition"]
    assert events
    states = [str(events[0].attributes["fo.transition.from"])]  # type: ignore[index]
    states += [str(e.attributes["fo.transition.to"]) for e in events]  # type: ignore[index]
    return states


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    pid = parent.context.span_id  # type: ignore[union-attr]
    return [s for s in spans if s.parent is not None and s.parent.span_id == pid]


async def test_open_and_close_give_one_trace_with_phases_legs_and_transitions(
    exporter: InMemorySpanExporter,
) -> None:
    manager, _ = traced(exporter)
    await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    await manager.close_position("pos1")
    spans = exporter.get_finished_spans()

    (root,) = by_name(spans, "position")
    assert root.parent is None
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}  # type: ignore[union-attr]
    attrs = root.attributes or {}
    assert attrs["fo.position.id"] == "pos1"
    assert attrs["fo.position.final_state"] == "closed"
    assert attrs["fo.position.quantity"] == "0.02"
    assert D(str(attrs["fo.position.entry_fees"])) > 0
    assert path(root) == ["pending", "legs_sent", "filled", "validated", "closing", "closed"]
    events = [e.attributes["fo.transition.event"] for e in root.events]  # type: ignore[index]
    assert events == ["send_legs", "legs_filled", "delta_ok", "close", "close_filled"]

    phases = {s.name: s for s in children(spans, root)}
    assert set(phases) == {"position.open", "position.validate", "position.close"}
    for phase in ("position.open", "position.close"):
        legs = children(spans, phases[phase])
        assert {str((s.attributes or {})["fo.order.leg"]) for s in legs} == {"spot", "perp"}
        skew = (phases[phase].attributes or {})["fo.legs.skew_ms"]
        assert isinstance(skew, float)
        assert 0 <= skew < 1000
    spot_open = next(
        s
        for s in children(spans, phases["position.open"])
        if (s.attributes or {})["fo.order.leg"] == "spot"
    )
    leg = spot_open.attributes or {}
    assert leg["fo.order.client_order_id"] == "test01-pos1-so1"
    assert leg["fo.order.side"] == "buy"
    assert leg["fo.order.requested_qty"] == leg["fo.order.filled_qty"] == "0.02"
    assert leg["fo.order.avg_price"] == str(D(50000) * D("1.0005"))
    assert leg["fo.order.simulated"] is True
    assert leg["fo.order.outcome"] == "filled"
    assert str(leg["fo.order.venue_order_id"]).startswith("paper_")
    assert isinstance(leg["fo.order.latency_ms"], float)


async def test_rollback_trace_records_the_failed_leg_and_the_reversal(
    exporter: InMemorySpanExporter,
) -> None:
    manager, executor = traced(exporter)
    executor.faults["po1"] = "reject"
    with pytest.raises(DeltaHedgeError):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    spans = exporter.get_finished_spans()

    (root,) = by_name(spans, "position")
    assert (root.attributes or {})["fo.position.final_state"] == "rolled_back"
    assert "perp leg failed" in str((root.attributes or {})["fo.position.reason"])
    assert path(root) == ["pending", "legs_sent", "rolling_back", "rolled_back"]
    phases = {s.name: s for s in children(spans, root)}
    assert set(phases) == {"position.open", "position.rollback"}

    failed = next(
        s
        for s in children(spans, phases["position.open"])
        if (s.attributes or {})["fo.order.leg"] == "perp"
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["fo.order.outcome"] == "failed"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert "rejected by the test venue" in str((exception.attributes or {})["exception.message"])

    (reversal,) = children(spans, phases["position.rollback"])
    attrs = reversal.attributes or {}
    assert (attrs["fo.order.client_order_id"], attrs["fo.order.side"]) == (
        "test01-pos1-sr1",
        "sell",
    )


async def test_a_timed_out_leg_is_traced_as_unknown_then_looked_up(
    exporter: InMemorySpanExporter,
) -> None:
    manager, executor = traced(exporter)
    executor.faults["po1"] = "fill_then_hang"
    with pytest.raises(DeltaHedgeTimeout):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="pos1")
    spans = exporter.get_finished_spans()
    hung = next(
        s
        for s in by_name(spans, "order")
        if (s.attributes or {})["fo.order.client_order_id"] == "test01-pos1-po1"
    )
    assert (hung.attributes or {})["fo.order.outcome"] == "unknown"
    (lookup,) = by_name(spans, "order.lookup")
    assert (lookup.attributes or {})["fo.order.client_order_id"] == "test01-pos1-po1"
    assert (lookup.attributes or {})["fo.order.filled_qty"] == "0.02"  # it had filled after all
    (root,) = by_name(spans, "position")
    assert path(root)[-2:] == ["rolling_back", "rolled_back"]


async def test_a_rejected_position_is_a_short_trace(exporter: InMemorySpanExporter) -> None:
    manager, _ = traced(exporter)
    with pytest.raises(Exception, match="meets both"):
        await manager.open_position(BTC_SPOT, BTC_PERP, D(40), position_id="small")
    (root,) = by_name(exporter.get_finished_spans(), "position")
    assert path(root) == ["pending", "rejected"]
    assert by_name(exporter.get_finished_spans(), "order") == []


async def test_secrets_never_reach_a_span(exporter: InMemorySpanExporter) -> None:
    """A venue that echoes the credentials in its error (Bybit does, on a bad
    signature) must not get them into the trace."""
    sentinel = "SENTINEL-secret-7f3a9c2e1b4d5a6f"
    async with FakeBybit(price=D(50000)) as fake:
        exchange = make_exchange(fake.url, secret=sentinel)  # wrong secret: signature refused
        try:
            ticker = TickerService(clock=FakeClock())
            ticker.update(BTC_SPOT.symbol, D(50000))
            ticker.update(BTC_PERP.symbol, D(50000))
            tracer = exporter.provider.get_tracer("test")  # type: ignore[attr-defined]
            manager = PositionManager(
                LiveExecutor(exchange),
                ticker,
                SETTINGS,
                tracing=PositionTracer(tracer, clock=ticker.clock),
            )
            with pytest.raises(DeltaHedgeError):
                await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="pos1")
        finally:
            await exchange.close()
    assert fake.bad_signatures > 0  # the venue did answer with an error about the key
    text = "".join(s.to_json() for s in exporter.get_finished_spans())
    assert "exception" in text
    assert sentinel not in text
    assert API_KEY not in text
