"""The OTLP/JSON lines exporter, driven by the real SDK."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from orchestrator.tracing.otlp_json import OtlpJsonFileExporter, encode_line, encode_request

RUN = {
    "service.name": "funding-orchestrator",
    "service.version": "0.1.0",
    "fo.run.id": "20261124-120000-abcdef",
    "fo.run.mode": "paper",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
NANOS = re.compile(r"^[0-9]+$")


def read_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    for line in lines:
        # Compact: exactly what a separator-free dump of the same data gives.
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False)
    return [json.loads(line) for line in lines]


# -- a strict check of the OTLP/JSON shape


def check_any_value(value: dict[str, Any]) -> None:
    assert len(value) == 1, value
    ((kind, inner),) = value.items()
    if kind == "stringValue":
        assert isinstance(inner, str)
    elif kind == "boolValue":
        assert isinstance(inner, bool)
    elif kind == "intValue":
        assert isinstance(inner, str) and re.fullmatch(r"-?[0-9]+", inner), inner
    elif kind == "doubleValue":
        assert isinstance(inner, float) or inner in ("NaN", "Infinity", "-Infinity")
    elif kind == "bytesValue":
        base64.b64decode(inner, validate=True)
    elif kind == "arrayValue":
        assert set(inner) == {"values"}
        for item in inner["values"]:
            if item:  # {} is the empty AnyValue (a None in the array)
                check_any_value(item)
    elif kind == "kvlistValue":
        check_attributes(inner["values"])
    else:
        pytest.fail(f"unexpected AnyValue {value}")


def check_attributes(attributes: list[dict[str, Any]]) -> None:
    for attribute in attributes:
        assert set(attribute) == {"key", "value"}
        assert isinstance(attribute["key"], str)
        check_any_value(attribute["value"])


def check_span(span: dict[str, Any]) -> None:
    allowed = {
        "traceId",
        "spanId",
        "traceState",
        "parentSpanId",
        "flags",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "droppedAttributesCount",
        "events",
        "droppedEventsCount",
        "links",
        "droppedLinksCount",
        "status",
    }
    assert set(span) <= allowed, set(span) - allowed
    assert HEX32.match(span["traceId"])
    assert HEX16.match(span["spanId"])
    if "parentSpanId" in span:
        assert HEX16.match(span["parentSpanId"])
    assert isinstance(span["flags"], int)
    assert isinstance(span["name"], str)
    assert span["kind"] in (1, 2, 3, 4, 5)
    assert NANOS.match(span["startTimeUnixNano"])
    assert NANOS.match(span["endTimeUnixNano"])
    assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
    check_attributes(span.get("attributes", []))
    for event in span.get("events", []):
        assert set(event) <= {"timeUnixNano", "name", "attributes", "droppedAttributesCount"}
        assert NANOS.match(event["timeUnixNano"])
        check_attributes(event.get("attributes", []))
    assert set(span["status"]) <= {"code", "message"}
    assert span["status"]["code"] in (0, 1, 2)
    if "message" in span["status"]:
        assert span["status"]["message"]


def check_request(request: dict[str, Any]) -> None:
    assert set(request) == {"resourceSpans"}
    for resource_spans in request["resourceSpans"]:
        assert set(resource_spans) <= {"resource", "scopeSpans", "schemaUrl"}
        check_attributes(resource_spans["resource"]["attributes"])
        for scope_spans in resource_spans["scopeSpans"]:
            assert set(scope_spans) <= {"scope", "spans", "schemaUrl"}
            assert set(scope_spans["scope"]) <= {"name", "version", "attributes"}
            for span in scope_spans["spans"]:
                check_span(span)


def attrs(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item["value"] for item in items}


def all_spans(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource_spans in request["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]


# -- the spans


def record(provider: TracerProvider) -> None:
    """Parent and child in scope "fo.position", an error span in scope "fo.orders"."""
    positions = provider.get_tracer("fo.position", "0.1.0")
    orders = provider.get_tracer("fo.orders")
    with positions.start_as_current_span(
        "position",
        kind=SpanKind.SERVER,
        attributes={
            "s": "BTC/USDT",
            "flag": True,
            "n": 42,
            "neg": -7,
            "x": 1.5,
            "strs": ["a", "b"],
            "ints": [1, 2],
            "bools": [True, False],
            "floats": [0.5, 2.0],
            "unicode": "café €",
        },
    ) as root:
        root.add_event("transition", {"fo.transition.from": "pending", "fo.transition.to": "x"})
        with positions.start_as_current_span("position.open", kind=SpanKind.CLIENT) as phase:
            phase.set_attribute("fo.legs.skew_ms", 1.25)
            phase.set_status(Status(StatusCode.OK))
        order = orders.start_span("order", context=set_span_in_context(root))
        try:
            raise ValueError("insufficient margin")
        except ValueError as exc:
            order.record_exception(exc)
        order.set_status(Status(StatusCode.ERROR, "insufficient margin"))
        order.end()


@pytest.fixture
def provider_factory() -> Iterator[Any]:
    providers: list[TracerProvider] = []

    def make(*processors: Any, resource: dict[str, Any] | None = None) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create(resource or RUN))
        for processor in processors:
            provider.add_span_processor(processor)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()


def finished_spans(provider_factory: Any, resource: dict[str, Any] | None = None) -> list[Any]:
    memory = InMemorySpanExporter()
    record(provider_factory(SimpleSpanProcessor(memory), resource=resource))
    return list(memory.get_finished_spans())


# -- tests


def test_simple_processor_writes_one_exact_otlp_line_per_span(
    tmp_path: Path, provider_factory: Any
) -> None:
    path = tmp_path / "traces.jsonl"
    provider = provider_factory(SimpleSpanProcessor(OtlpJsonFileExporter(path)))
    record(provider)
    provider.force_flush()

    requests = read_lines(path)
    assert len(requests) == 3  # the simple processor exports each span as it ends
    for request in requests:
        check_request(request)
        assert len(request["resourceSpans"]) == 1
        resource = attrs(request["resourceSpans"][0]["resource"]["attributes"])
        for key, value in RUN.items():
            assert resource[key] == {"stringValue": value}
    phase, order, root = (all_spans(request)[0] for request in requests)
    assert [phase["name"], order["name"], root["name"]] == ["position.open", "order", "position"]

    # Ids: hex of the SDK's ints; the child points at its parent.
    assert phase["traceId"] == root["traceId"] == order["traceId"]
    assert phase["parentSpanId"] == root["spanId"] == order["parentSpanId"]
    assert "parentSpanId" not in root
    assert int(root["endTimeUnixNano"]) >= int(phase["endTimeUnixNano"])

    # Enums as integers.
    assert root["kind"] == 2  # SERVER
    assert phase["kind"] == 3  # CLIENT
    assert order["kind"] == 1  # INTERNAL
    assert root["status"] == {"code": 0}
    assert phase["status"] == {"code": 1}
    assert order["status"] == {"code": 2, "message": "insufficient margin"}

    assert attrs(root["attributes"]) == {
        "s": {"stringValue": "BTC/USDT"},
        "flag": {"boolValue": True},
        "n": {"intValue": "42"},
        "neg": {"intValue": "-7"},
        "x": {"doubleValue": 1.5},
        "strs": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}},
        "ints": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}},
        "bools": {"arrayValue": {"values": [{"boolValue": True}, {"boolValue": False}]}},
        "floats": {"arrayValue": {"values": [{"doubleValue": 0.5}, {"doubleValue": 2.0}]}},
        "unicode": {"stringValue": "café €"},
    }
    assert attrs(phase["attributes"]) == {"fo.legs.skew_ms": {"doubleValue": 1.25}}

    (transition,) = root["events"]
    assert transition["name"] == "transition"
    assert attrs(transition["attributes"])["fo.transition.from"] == {"stringValue": "pending"}
    (exception,) = order["events"]
    assert exception["name"] == "exception"
    assert attrs(exception["attributes"])["exception.type"] == {"stringValue": "ValueError"}
    assert attrs(exception["attributes"])["exception.message"] == {
        "stringValue": "insufficient margin"
    }


def test_batch_processor_groups_spans_by_scope_in_one_line(
    tmp_path: Path, provider_factory: Any
) -> None:
    path = tmp_path / "traces.jsonl"
    provider = provider_factory(BatchSpanProcessor(OtlpJsonFileExporter(path)))
    record(provider)
    provider.force_flush()

    (request,) = read_lines(path)
    check_request(request)
    (resource_spans,) = request["resourceSpans"]
    scopes = {
        scope_spans["scope"]["name"]: scope_spans for scope_spans in resource_spans["scopeSpans"]
    }
    assert set(scopes) == {"fo.position", "fo.orders"}
    assert scopes["fo.position"]["scope"] == {"name": "fo.position", "version": "0.1.0"}
    assert scopes["fo.orders"]["scope"] == {"name": "fo.orders"}
    assert sorted(s["name"] for s in scopes["fo.position"]["spans"]) == [
        "position",
        "position.open",
    ]
    assert [s["name"] for s in scopes["fo.orders"]["spans"]] == ["order"]


def test_encode_request_groups_by_resource(provider_factory: Any) -> None:
    spans = finished_spans(provider_factory) + finished_spans(
        provider_factory, resource={**RUN, "fo.run.id": "other"}
    )
    request = encode_request(spans)
    check_request(request)
    runs = [
        attrs(rs["resource"]["attributes"])["fo.run.id"]["stringValue"]
        for rs in request["resourceSpans"]
    ]
    assert runs == ["20261124-120000-abcdef", "other"]
    for resource_spans in request["resourceSpans"]:
        assert [s["scope"]["name"] for s in resource_spans["scopeSpans"]] == [
            "fo.position",
            "fo.orders",
        ]


def test_values_json_cannot_hold_directly(provider_factory: Any) -> None:
    memory = InMemorySpanExporter()
    tracer = provider_factory(SimpleSpanProcessor(memory)).get_tracer("t")
    # The 1.45 SDK lets all of these through as attribute values.
    values = {
        "nan": float("nan"),
        "inf": float("inf"),
        "huge": 2**70,
        "raw": b"\x00\xff",
        "map": {"a": 1},
        "holes": [None, "x"],
    }
    tracer.start_span("s", attributes=values).end()
    (span,) = all_spans(encode_request(memory.get_finished_spans()))
    check_span(span)
    assert attrs(span["attributes"]) == {
        "nan": {"doubleValue": "NaN"},
        "inf": {"doubleValue": "Infinity"},
        "huge": {"stringValue": str(2**70)},
        "raw": {"bytesValue": "AP8="},
        "map": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}},
        "holes": {"arrayValue": {"values": [{}, {"stringValue": "x"}]}},
    }
    json.loads(encode_line(memory.get_finished_spans()), parse_constant=pytest.fail)


def test_exports_append_lines_across_exporters(tmp_path: Path, provider_factory: Any) -> None:
    path = tmp_path / "traces.jsonl"
    spans = finished_spans(provider_factory)
    first = OtlpJsonFileExporter(path)
    assert first.export(spans[:1]) is SpanExportResult.SUCCESS
    assert first.export(spans[1:]) is SpanExportResult.SUCCESS
    assert first.export([]) is SpanExportResult.SUCCESS  # nothing to write: no line
    first.shutdown()
    second = OtlpJsonFileExporter(path)  # e.g. a resumed run
    assert second.export(spans) is SpanExportResult.SUCCESS
    second.shutdown()

    counts = [len(all_spans(request)) for request in read_lines(path)]
    assert counts == [1, 2, 3]


def test_a_truncated_last_line_is_not_glued_to_the_next(
    tmp_path: Path, provider_factory: Any
) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'{"resourceSpans":[{"resou')  # a crash mid-write
    exporter = OtlpJsonFileExporter(path)
    exporter.export(finished_spans(provider_factory))
    exporter.shutdown()
    first, second = path.read_text().splitlines()
    assert first == '{"resourceSpans":[{"resou'
    check_request(json.loads(second))


def test_export_after_shutdown_fails(tmp_path: Path, provider_factory: Any) -> None:
    path = tmp_path / "traces.jsonl"
    exporter = OtlpJsonFileExporter(path)
    spans = finished_spans(provider_factory)
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()  # twice is harmless
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True
    assert path.read_bytes() == b""


def test_a_missing_folder_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OtlpJsonFileExporter(tmp_path / "no-such-run" / "traces.jsonl")


def test_concurrent_exports_never_interleave(tmp_path: Path, provider_factory: Any) -> None:
    path = tmp_path / "traces.jsonl"
    exporter = OtlpJsonFileExporter(path)
    memory = InMemorySpanExporter()
    tracer = provider_factory(SimpleSpanProcessor(memory)).get_tracer("t")
    for number in range(20):
        # Big lines, so that an unlocked write would be split and interleaved.
        tracer.start_span(f"s{number}", attributes={"pad": "x" * 4000}).end()
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    threads, rounds = 8, 25
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for _ in range(rounds):
            assert exporter.export(spans) is SpanExportResult.SUCCESS

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    exporter.shutdown()

    requests = read_lines(path)
    assert len(requests) == threads * rounds
    assert all(len(all_spans(request)) == 20 for request in requests)
