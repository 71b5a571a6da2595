"""Reading OTLP/JSON trace files back and telling what happened to each position.

The spans are the ones the project writes (root ``position`` span with transition
events, phase spans, ``order`` spans), recorded with the real SDK through our
exporter, then read back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context

from orchestrator.exceptions import InsufficientFundsError, UnknownPositionError
from orchestrator.tracing.inspect import (
    PositionNotInTraceError,
    detail_json,
    format_detail,
    format_positions,
    position_detail,
    positions,
    positions_json,
)
from orchestrator.tracing.otlp_json import OtlpJsonFileExporter, encode_request
from orchestrator.tracing.trace_file import (
    SpanRecord,
    TraceFileError,
    latest_trace_file,
    read_spans,
)

T0 = 1_795_000_000_000_000_000  # 2026-11-18 11:06:40 UTC, in ns
RUN_ID = "20261118-110640-abcdef"
CLOSED = "a1b2c3d4e5f60001"
ROLLED_BACK = "b7e0f1a2c3d40002"
ORPHANED = "c0ffee0000000003"


def ns(ms: float) -> int:
    return T0 + round(ms * 1_000_000)


@dataclass
class Recorder:
    """Writes spans the way the project does, at given times (ms after T0)."""

    tracer: Tracer
    roots: list[Span] = field(default_factory=list)

    def root(self, position_id: str, at: float) -> Span:
        span = self.tracer.start_span(
            "position",
            context=Context(),  # each position is a trace of its own
            start_time=ns(at),
            attributes={
                "fo.position.id": position_id,
                "fo.position.spot_symbol": "BTC/USDT",
                "fo.position.perp_symbol": "BTC/USDT:USDT",
            },
        )
        self.roots.append(span)
        return span

    @staticmethod
    def transition(root: Span, at: float, event: str, source: str, target: str) -> None:
        attributes = {
            "fo.transition.event": event,
            "fo.transition.from": source,
            "fo.transition.to": target,
        }
        root.add_event("transition", attributes, timestamp=ns(at))

    def phase(
        self, root: Span, name: str, start: float, end: float, skew: float | None = None
    ) -> Span:
        span = self.tracer.start_span(
            f"position.{name}", context=set_span_in_context(root), start_time=ns(start)
        )
        if skew is not None:
            span.set_attribute("fo.legs.skew_ms", skew)
        span.end(end_time=ns(end))
        return span

    def order(
        self,
        phase: Span,
        position_id: str,
        leg: str,
        action: str,
        side: str,
        start: float,
        end: float,
        *,
        filled: str = "0.01",
        price: str = "50000.5",
        fee: str = "0.25",
        error: Exception | None = None,
    ) -> None:
        span = self.tracer.start_span(
            "order",
            context=set_span_in_context(phase),
            start_time=ns(start),
            attributes={
                "fo.order.leg": leg,
                "fo.order.action": action,
                "fo.order.symbol": "BTC/USDT" if leg == "spot" else "BTC/USDT:USDT",
                "fo.order.category": "spot" if leg == "spot" else "linear",
                "fo.order.side": side,
                "fo.order.requested_qty": "0.01",
                "fo.order.client_order_id": f"{position_id}-{leg[0]}{action[0]}0",
                "fo.order.simulated": True,
                "fo.order.latency_ms": end - start,
            },
        )
        if error is None:
            span.set_attributes(
                {
                    "fo.order.filled_qty": filled,
                    "fo.order.avg_price": price,
                    "fo.order.fee": fee,
                    "fo.order.fee_currency": "USDT",
                    "fo.order.venue_order_id": f"paper-{leg}-{action}",
                    "fo.order.outcome": "filled",
                }
            )
        else:
            span.set_attribute("fo.order.outcome", "failed")
            span.record_exception(error, timestamp=ns(end))
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end(end_time=ns(end))

    @staticmethod
    def finish(root: Span, at: float, state: str, entry: str, exit: str, reason: str = "") -> None:
        root.set_attributes(
            {
                "fo.position.final_state": state,
                "fo.position.quantity": "0.01",
                "fo.position.entry_fees": entry,
                "fo.position.exit_fees": exit,
            }
        )
        if reason:
            root.set_attribute("fo.position.reason", reason)
        root.end(end_time=ns(at))


def record_positions(tracer: Tracer) -> None:
    rec = Recorder(tracer)

    # Opened, validated, later closed.
    root = rec.root(CLOSED, 0)
    rec.transition(root, 1, "send_legs", "pending", "legs_sent")
    opening = rec.phase(root, "open", 0.5, 60, skew=1.25)
    rec.order(opening, CLOSED, "spot", "open", "buy", 1, 50)
    rec.order(opening, CLOSED, "perp", "open", "sell", 2.25, 55, price="50010")
    rec.transition(root, 60, "legs_filled", "legs_sent", "filled")
    rec.phase(root, "validate", 60, 65)
    rec.transition(root, 65, "delta_ok", "filled", "validated")
    rec.transition(root, 1000, "close", "validated", "closing")
    closing = rec.phase(root, "close", 1000, 1490, skew=0.75)
    rec.order(closing, CLOSED, "spot", "close", "sell", 1001, 1400, price="50100")
    rec.order(closing, CLOSED, "perp", "close", "buy", 1001.75, 1450, price="50105")
    rec.transition(root, 1490, "close_filled", "closing", "closed")
    rec.finish(root, 1500, "closed", "0.55", "0.60")

    # The perp leg is refused; the filled spot leg is sold back.
    root = rec.root(ROLLED_BACK, 2000)
    rec.transition(root, 2001, "send_legs", "pending", "legs_sent")
    opening = rec.phase(root, "open", 2000.5, 2100, skew=2.5)
    rec.order(opening, ROLLED_BACK, "spot", "open", "buy", 2001, 2080)
    rec.order(
        opening,
        ROLLED_BACK,
        "perp",
        "open",
        "sell",
        2003.5,
        2090,
        error=InsufficientFundsError("perp: insufficient margin"),
    )
    rec.transition(root, 2100, "leg_failed", "legs_sent", "rolling_back")
    rollback = rec.phase(root, "rollback", 2100, 2500)
    rec.order(rollback, ROLLED_BACK, "spot", "rollback", "sell", 2101, 2450, fee="0.30")
    rec.transition(root, 2500, "rollback_done", "rolling_back", "rolled_back")
    rec.finish(root, 2600, "rolled_back", "0.25", "0.30", reason="perp leg failed")

    # The root span never ends (the run died): only its children were exported.
    root = rec.root(ORPHANED, 3000)
    opening = rec.phase(root, "open", 3000.5, 3100, skew=4.0)
    rec.order(opening, ORPHANED, "spot", "open", "buy", 3001, 3090)
    rec.order(opening, ORPHANED, "perp", "open", "sell", 3005, 3095)


def resource(run_id: str = RUN_ID) -> Resource:
    return Resource.create(
        {
            "service.name": "funding-orchestrator",
            "service.version": "0.1.0",
            "fo.run.id": run_id,
            "fo.run.mode": "paper",
        }
    )


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider(resource=resource())
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(path)))
    record_positions(provider.get_tracer("funding-orchestrator"))
    provider.shutdown()
    return path


def recorded_spans(run_id: str = RUN_ID) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource(run_id))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record_positions(provider.get_tracer("funding-orchestrator"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def read_clean(path: Path) -> list[SpanRecord]:
    spans, problems = read_spans(path)
    assert problems == []
    return spans


# -- reading


def test_round_trip_keeps_every_span_and_value(trace_file: Path) -> None:
    spans = read_clean(trace_file)
    assert len(spans) == 17  # complete positions of 8 and 6 spans, 3 orphans
    assert len(trace_file.read_text().splitlines()) == 17  # one export per span

    failed = next(s for s in spans if s.name == "order" and s.is_error)
    assert failed.status_code == "ERROR"
    assert failed.status_message == "perp: insufficient margin"
    assert failed.attributes["fo.order.simulated"] is True
    assert failed.attributes["fo.order.latency_ms"] == pytest.approx(86.5)
    ((time_ns, name, attributes),) = failed.events
    assert (time_ns, name) == (ns(2090), "exception")
    assert attributes["exception.type"] == "orchestrator.exceptions.InsufficientFundsError"
    assert failed.resource["fo.run.id"] == RUN_ID
    assert failed.resource["fo.run.mode"] == "paper"
    assert len(failed.trace_id) == 32 and len(failed.span_id) == 16
    assert failed.parent_span_id is not None
    assert (failed.start_ns, failed.end_ns) == (ns(2003.5), ns(2090))


def test_missing_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="no such trace file"):
        read_spans(tmp_path / "traces.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TraceFileError, match="is empty"):
        read_spans(tmp_path / "empty.jsonl")
    with pytest.raises(TraceFileError, match="is a folder"):
        read_spans(tmp_path)


def test_bad_lines_and_spans_are_reported_and_the_rest_is_read(trace_file: Path) -> None:
    lines = trace_file.read_text().splitlines()
    broken = json.loads(lines[0])
    good_span = broken["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    del good_span["spanId"]
    lines[0] = json.dumps(broken)
    lines.insert(3, "garbage, not json")
    truncated = lines[-1][: len(lines[-1]) // 2]
    trace_file.write_text("\n".join([*lines[:-1], truncated]))  # no final newline either

    spans, problems = read_spans(trace_file)
    assert len(spans) == 15  # 17, less the span without an id and the truncated line
    assert problems == [
        "line 1: resourceSpans[0].scopeSpans[0].spans[0]: missing spanId",
        problems[1],
        problems[2],
    ]
    assert problems[1].startswith("line 4: not valid JSON (truncated?): ")
    assert problems[2].startswith("line 18: not valid JSON (truncated?): ")


def test_bad_fields_inside_a_span_keep_the_span(tmp_path: Path) -> None:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "order",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": [
            {"key": "ok", "value": {"intValue": "5"}},
            {"key": "bad", "value": {"intValue": "five"}},
        ],
        "status": {"code": 9},
    }
    bad_ids = {**span, "traceId": "xyz", "spanId": "00" * 8}
    line = {"resourceSpans": [{"scopeSpans": [{"spans": [span, bad_ids, "nope"]}]}]}
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps({"resource_logs": []}) + "\n")

    spans, problems = read_spans(path)
    assert [(s.attributes, s.status_code) for s in spans] == [({"ok": 5}, "UNSET")]
    where = "line 1: resourceSpans[0].scopeSpans[0].spans"
    assert problems == [
        f"{where}[0].attributes[1]: intValue 'five' is not an integer",
        f"{where}[0]: unknown status code 9",
        f"{where}[1]: traceId 'xyz' is not 32 hex digits",
        "line 1: resourceSpans[0].scopeSpans[0].spans[2]: not an object",
        "line 2: no resourceSpans: not an OTLP/JSON trace request",
    ]


def test_other_writers_spellings_are_read(tmp_path: Path) -> None:
    # Proto3 JSON readers accept numbers for 64-bit ints, enum names and proto field names.
    line = {
        "resource_spans": [
            {
                "resource": {"attributes": [{"key": "fo.run.id", "value": {"stringValue": "r"}}]},
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "0AF7651916CD43DD8448EB211C80319C",
                                "span_id": "B7AD6B7169203331",
                                "name": "position",
                                "start_time_unix_nano": 1000,
                                "end_time_unix_nano": 3000,
                                "attributes": [
                                    {"key": "d", "value": {"doubleValue": "NaN"}},
                                    {"key": "b", "value": {"bytesValue": "AP8="}},
                                    {
                                        "key": "m",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "k", "value": {"boolValue": False}}
                                                ]
                                            }
                                        },
                                    },
                                    {"key": "a", "value": {"arrayValue": {"values": [{}]}}},
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "x"},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(line))
    (span,) = read_clean(path)
    assert span.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert (span.start_ns, span.end_ns, span.status_code) == (1000, 3000, "ERROR")
    assert span.resource == {"fo.run.id": "r"}
    assert span.attributes["b"] == b"\x00\xff"
    assert span.attributes["m"] == {"k": False}
    assert span.attributes["a"] == [None]
    assert str(span.attributes["d"]) == "nan"


def test_collector_style_lines(tmp_path: Path) -> None:
    """Several resourceSpans in one line, and one trace split over two lines."""
    ours = recorded_spans()
    theirs = recorded_spans("another-run")
    closed_trace = next(
        s.context.trace_id
        for s in ours
        if s.name == "position" and s.attributes["fo.position.id"] == CLOSED
    )
    closed = [s for s in ours if s.context.trace_id == closed_trace]
    rest = [s for s in ours if s.context.trace_id != closed_trace]
    first = encode_request(closed[:3] + rest)
    first["resourceSpans"] += encode_request(theirs)["resourceSpans"]
    second = encode_request(closed[3:])
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")

    spans = read_clean(path)
    summaries = positions(spans)
    assert [(s.position_id, s.run_id) for s in summaries] == [
        (CLOSED, RUN_ID),
        (CLOSED, "another-run"),
        (ROLLED_BACK, RUN_ID),
        (ROLLED_BACK, "another-run"),
        (ORPHANED, RUN_ID),
        (ORPHANED, "another-run"),
    ]
    ours_closed = summaries[0]
    detail = position_detail(spans, ours_closed.trace_id)
    assert [node.span.name for node in detail.roots[0].children] == [
        "position.open",
        "position.validate",
        "position.close",
    ]
    assert detail.path[-1] == "closed"
    # The same id in two runs: the id alone is ambiguous.
    with pytest.raises(PositionNotInTraceError, match="matches 2 positions"):
        position_detail(spans, CLOSED)


# -- positions


def test_positions_summarise_each_position(trace_file: Path) -> None:
    closed, rolled_back, orphaned = positions(read_clean(trace_file))

    assert closed.position_id == CLOSED
    assert (closed.spot_symbol, closed.perp_symbol) == ("BTC/USDT", "BTC/USDT:USDT")
    assert closed.final_state == "closed"
    assert closed.outcome == "closed"
    assert closed.start_ns == T0
    assert closed.duration_ms == pytest.approx(1500)
    assert closed.leg_skew_ms == pytest.approx(1.25)  # the larger of open (1.25) and close
    assert closed.fees == Decimal("1.15")
    assert closed.run_id == RUN_ID
    assert not closed.incomplete

    assert rolled_back.final_state == "rolled_back"
    assert rolled_back.outcome == "rolled_back: perp leg failed"
    assert rolled_back.leg_skew_ms == pytest.approx(2.5)
    assert rolled_back.fees == Decimal("0.55")
    assert rolled_back.duration_ms == pytest.approx(600)
    assert rolled_back.trace_id != closed.trace_id

    # Named from its orders' client order ids; no state, no fees.
    assert orphaned.incomplete
    assert orphaned.position_id == ORPHANED
    assert (orphaned.spot_symbol, orphaned.perp_symbol) == ("BTC/USDT", "BTC/USDT:USDT")
    assert orphaned.final_state is None
    assert orphaned.outcome == "incomplete (no position span)"
    assert orphaned.fees is None
    assert orphaned.leg_skew_ms == pytest.approx(4.0)
    assert orphaned.start_ns == ns(3000.5)
    assert orphaned.duration_ms == pytest.approx(99.5)
    assert orphaned.run_id == RUN_ID


def test_detail_of_a_closed_position(trace_file: Path) -> None:
    detail = position_detail(read_clean(trace_file), CLOSED)
    assert detail.path == ["pending", "legs_sent", "filled", "validated", "closing", "closed"]
    assert [t.event for t in detail.transitions] == [
        "send_legs",
        "legs_filled",
        "delta_ok",
        "close",
        "close_filled",
    ]
    (root,) = detail.roots
    assert root.span.name == "position"
    opening, validate, closing = root.children
    assert [opening.span.name, validate.span.name, closing.span.name] == [
        "position.open",
        "position.validate",
        "position.close",
    ]
    assert [
        (n.span.attributes["fo.order.leg"], n.span.attributes["fo.order.side"])
        for n in opening.children
    ] == [("spot", "buy"), ("perp", "sell")]
    assert validate.children == ()
    assert [n.span.attributes["fo.order.action"] for n in closing.children] == ["close", "close"]


def test_detail_of_a_rollback(trace_file: Path) -> None:
    detail = position_detail(read_clean(trace_file), ROLLED_BACK[:4])  # a prefix is enough
    assert detail.summary.position_id == ROLLED_BACK
    assert detail.path == ["pending", "legs_sent", "rolling_back", "rolled_back"]
    opening, rollback = detail.roots[0].children
    spot, perp = opening.children
    assert perp.span.is_error and not spot.span.is_error
    (unwind,) = rollback.children
    assert unwind.span.attributes["fo.order.action"] == "rollback"
    assert unwind.span.attributes["fo.order.side"] == "sell"


def test_detail_of_a_position_without_its_root_span(trace_file: Path) -> None:
    detail = position_detail(read_clean(trace_file), ORPHANED)
    assert detail.path == []
    (opening,) = detail.roots  # the top span that did arrive
    assert opening.span.name == "position.open"
    assert len(opening.children) == 2


def test_unknown_position_lists_known_ids(trace_file: Path) -> None:
    with pytest.raises(UnknownPositionError) as caught:
        position_detail(read_clean(trace_file), "nope")
    assert str(caught.value) == (
        f"no position 'nope' in these spans; known: {CLOSED}, {ROLLED_BACK}, {ORPHANED}"
    )


# -- text and JSON


def test_format_positions_is_an_aligned_table(trace_file: Path) -> None:
    table = format_positions(positions(read_clean(trace_file)))
    header, *rows = table.splitlines()
    assert header.split() == [
        "ID",
        "SPOT",
        "PERP",
        "OUTCOME",
        "FUNDING",
        "FEES",
        "NET",
        "PNL",
        "HELD_H",
        "ENTRY",
        "SPOT/PERP",
        "EXIT",
        "SPOT/PERP",
        "MARKET",
        "TIME",
        "START",
        "(UTC)",
        "DURATION_MS",
        "SKEW_MS",
        "RUN",
        "TRACE",
    ]
    assert len(rows) == 3
    outcome_column = header.index("OUTCOME")
    assert [row[outcome_column:].split("  ")[0] for row in rows] == [
        "closed",
        "rolled_back: perp leg failed",
        "incomplete (no position span)",
    ]
    assert rows[0].startswith(f"{CLOSED}  BTC/USDT  BTC/USDT:USDT  closed ")
    assert "2026-11-18 11:06:40.000" in rows[0]
    # Fees beside the funding and net PnL (none recorded in these older spans).
    assert "closed                               -  1.15        -" in rows[0]
    assert "1500.000    1.250  " in rows[0]
    assert "99.500    4.000  " in rows[2]
    assert format_positions([]) == "no positions"


def test_format_detail_is_a_timeline(trace_file: Path) -> None:
    spans = read_clean(trace_file)
    text = format_detail(position_detail(spans, CLOSED))
    trace_id = positions(spans)[0].trace_id
    assert text.splitlines() == [
        f"position {CLOSED}  BTC/USDT / BTC/USDT:USDT  closed",
        f"run {RUN_ID}  trace {trace_id}  started 2026-11-18 11:06:40.000 UTC",
        "     +0.000 ms  1500.000 ms  position  qty 0.01  state closed  fees 1.15",
        "     +0.500 ms    59.500 ms    position.open  skew 1.250 ms",
        "     +1.000 ms    49.000 ms      order  spot open buy 0.01/0.01 @ 50000.5  "
        f"fee 0.25 USDT  cid {CLOSED}-so0  filled",
        "     +2.250 ms    52.750 ms      order  perp open sell 0.01/0.01 @ 50010  "
        f"fee 0.25 USDT  cid {CLOSED}-po0  filled",
        "    +60.000 ms     5.000 ms    position.validate",
        "  +1000.000 ms   490.000 ms    position.close  skew 0.750 ms",
        "  +1001.000 ms   399.000 ms      order  spot close sell 0.01/0.01 @ 50100  "
        f"fee 0.25 USDT  cid {CLOSED}-sc0  filled",
        "  +1001.750 ms   448.250 ms      order  perp close buy 0.01/0.01 @ 50105  "
        f"fee 0.25 USDT  cid {CLOSED}-pc0  filled",
        "path: pending -> legs_sent -> filled -> validated -> closing -> closed",
    ]


def test_format_detail_shows_errors_and_missing_roots(trace_file: Path) -> None:
    spans = read_clean(trace_file)
    text = format_detail(position_detail(spans, ROLLED_BACK))
    assert (
        "perp open sell -/0.01  cid b7e0f1a2c3d40002-po0  failed  "
        "ERROR orchestrator.exceptions.InsufficientFundsError: perp: insufficient margin"
    ) in text
    assert "reason perp leg failed" in text
    assert text.endswith("path: pending -> legs_sent -> rolling_back -> rolled_back")

    text = format_detail(position_detail(spans, ORPHANED))
    lines = text.splitlines()
    assert (
        lines[0] == f"position {ORPHANED}  BTC/USDT / BTC/USDT:USDT  incomplete (no position span)"
    )
    assert lines[2] == "  +0.000 ms  99.500 ms  position.open  skew 4.000 ms"
    assert lines[-1] == "path: unknown (the position span, which records it, is missing)"


def test_json_forms_are_plain(trace_file: Path) -> None:
    spans = read_clean(trace_file)
    rows = positions_json(positions(spans))
    assert json.loads(json.dumps(rows)) == rows
    assert rows[0]["fees"] == "1.15"
    assert rows[0]["outcome"] == "closed"
    assert rows[0]["start"] == "2026-11-18T11:06:40+00:00"
    assert rows[2]["id"] == ORPHANED and rows[2]["incomplete"] is True

    detail = detail_json(position_detail(spans, ROLLED_BACK))
    assert json.loads(json.dumps(detail, allow_nan=False)) == detail
    assert detail["path"] == ["pending", "legs_sent", "rolling_back", "rolled_back"]
    assert detail["transitions"][1] == {
        "time_ns": ns(2100),
        "offset_ms": 100.0,
        "event": "leg_failed",
        "from": "legs_sent",
        "to": "rolling_back",
    }
    (root,) = detail["spans"]
    perp = root["children"][0]["children"][1]
    assert perp["status"] == {"code": "ERROR", "message": "perp: insufficient margin"}
    assert perp["attributes"]["fo.order.requested_qty"] == "0.01"
    assert perp["events"][0]["name"] == "exception"
    assert perp["offset_ms"] == pytest.approx(3.5)


# -- finding the file


def test_latest_trace_file_picks_the_newest_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(TraceFileError, match="no such runs folder"):
        latest_trace_file(runs)
    runs.mkdir()
    with pytest.raises(TraceFileError, match=r"has a traces\.jsonl"):
        latest_trace_file(runs)
    for name, mtime in [("run-a", 100), ("run-c", 300), ("run-b", 300), ("run-d", 900)]:
        folder = runs / name
        folder.mkdir()
        if name != "run-d":  # the newest run wrote no traces
            (folder / "traces.jsonl").write_text("{}\n")
        os.utime(folder, (mtime, mtime))
    assert latest_trace_file(runs) == runs / "run-c" / "traces.jsonl"  # a tie goes by name
