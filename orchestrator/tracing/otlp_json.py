"""Spans to a file as OTLP/JSON lines: one ``ExportTraceServiceRequest`` per export.

The encoding is the one the OpenTelemetry Collector's file exporter writes and its
``otlpjsonfile`` receiver reads (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
trace and span ids as lowercase hex, 64-bit integers as decimal strings, enums as
integers, lowerCamelCase field names. We encode it ourselves because the beta
``opentelemetry-exporter-otlp-json-file`` package pins an ``otlp-common`` version
that conflicts with the http exporter.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    StatusCode,
    format_span_id,
    format_trace_id,
)

logger = logging.getLogger(__name__)

# OTLP numbers its enums from 1 (0 is "unspecified"); the Python API numbers from 0.
SPAN_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
STATUS_CODE = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}

# SpanFlags: the low byte is the W3C trace flags; these two say whether the
# parent (or the linked span) was remote, and that this is known.
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_encoder = msgspec.json.Encoder()


def encode_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON ``ExportTraceServiceRequest`` for ``spans``, grouped by resource,
    then by instrumentation scope, in first-seen order."""
    grouped: dict[Resource, dict[InstrumentationScope | None, list[dict[str, Any]]]] = {}
    for span in spans:
        context = span.get_span_context()
        if context is None:  # only a hand-made ReadableSpan has none: nothing to address it by
            continue
        scopes = grouped.setdefault(span.resource, {})
        scopes.setdefault(span.instrumentation_scope, []).append(_span(span, context))
    return {
        "resourceSpans": [
            _with_schema(
                {
                    "resource": _attributes_of(resource.attributes, 0),
                    "scopeSpans": [
                        _with_schema({"scope": _scope(scope), "spans": encoded}, scope)
                        for scope, encoded in scopes.items()
                    ],
                },
                resource,
            )
            for resource, scopes in grouped.items()
        ]
    }


def encode_line(spans: Sequence[ReadableSpan]) -> bytes:
    """``encode_request`` as one compact, newline-terminated line of UTF-8 JSON."""
    return _encoder.encode(encode_request(spans)) + b"\n"


class OtlpJsonFileExporter(SpanExporter):
    """Appends one OTLP/JSON line per ``export`` call to ``path``.

    The file is opened (created if need be, but not its folder) when the exporter
    is built, so a bad path fails at start-up rather than in the batch worker thread.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file = self.path.open("ab")
        self._shutdown = False
        # A run that crashed mid-write left a line without its newline; ours must
        # not be glued to it, or the reader loses both.
        if self._file.tell() > 0 and _last_byte(self.path) != b"\n":
            self._file.write(b"\n")
            self._file.flush()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        line = encode_line(spans)  # outside the lock: encoding is pure
        with self._lock:
            if self._shutdown:  # shut down while we were encoding
                return SpanExportResult.FAILURE
            try:
                # One write of the whole line, then flush: a reader (or a crash)
                # sees whole lines plus at most one truncated last line.
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                # Cut (a full disk): no file may keep the final name without being
                # whole, so it goes, and the spans after it with it.
                self._shutdown = True
                removed = self._remove()
                logger.error(
                    "could not write %d spans to %s: %s; %s",
                    len(spans),
                    self.path,
                    exc.strerror or exc,
                    removed,
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _remove(self) -> str:
        """Close and remove the cut file (if it is still the one opened); what was done."""
        try:
            opened = os.fstat(self._file.fileno())
        except (OSError, ValueError):
            opened = None
        with contextlib.suppress(OSError):
            self._file.close()  # its flush fails again: the buffer is lost either way
        try:
            now = os.stat(self.path)
            if opened is not None and (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
                return "the file there now is another, left as it is"
            os.unlink(self.path)
        except FileNotFoundError:
            return "the file is gone"
        except OSError as exc:
            return f"the cut file could not be removed ({exc.strerror or exc})"
        return "the file, cut short, was removed"

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if not self._shutdown:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            self._file.close()


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1)


def _with_schema(
    message: dict[str, Any], owner: Resource | InstrumentationScope | None
) -> dict[str, Any]:
    schema_url = owner.schema_url if owner is not None else None
    if schema_url:
        message["schemaUrl"] = schema_url
    return message


def _scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    if scope is None:
        return {}
    encoded: dict[str, Any] = {"name": scope.name}
    if scope.version:
        encoded["version"] = scope.version
    encoded.update(_attributes_of(scope.attributes, 0))
    return encoded


def _span(span: ReadableSpan, context: SpanContext) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": format_trace_id(context.trace_id),
        "spanId": format_span_id(context.span_id),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    parent = span.parent
    if parent is not None:
        encoded["parentSpanId"] = format_span_id(parent.span_id)
    encoded["flags"] = _flags(context, parent)
    encoded["name"] = span.name
    encoded["kind"] = SPAN_KIND[span.kind]
    encoded["startTimeUnixNano"] = str(span.start_time or 0)
    encoded["endTimeUnixNano"] = str(span.end_time or 0)
    encoded.update(_attributes_of(span.attributes, span.dropped_attributes))
    if span.events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                **_attributes_of(event.attributes, event.dropped_attributes),
            }
            for event in span.events
        ]
    if span.dropped_events:
        encoded["droppedEventsCount"] = span.dropped_events
    if span.links:
        encoded["links"] = [_link(link) for link in span.links]
    if span.dropped_links:
        encoded["droppedLinksCount"] = span.dropped_links
    status: dict[str, Any] = {"code": STATUS_CODE[span.status.status_code]}
    if span.status.description:
        status["message"] = span.status.description
    encoded["status"] = status
    return encoded


def _link(link: Link) -> dict[str, Any]:
    context = link.context
    encoded: dict[str, Any] = {
        "traceId": format_trace_id(context.trace_id),
        "spanId": format_span_id(context.span_id),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    encoded.update(_attributes_of(link.attributes, link.dropped_attributes))
    encoded["flags"] = _flags(context, context)
    return encoded


def _flags(context: SpanContext, remote_of: SpanContext | None) -> int:
    flags = int(context.trace_flags) | FLAG_HAS_IS_REMOTE
    if remote_of is not None and remote_of.is_remote:
        flags |= FLAG_IS_REMOTE
    return flags


def _attributes_of(attributes: Mapping[str, Any] | None, dropped: int) -> dict[str, Any]:
    """``{"attributes": [...], "droppedAttributesCount": n}``, each part only when non-empty."""
    encoded: dict[str, Any] = {}
    if attributes:
        encoded["attributes"] = _key_values(attributes)
    if dropped:
        encoded["droppedAttributesCount"] = dropped
    return encoded


def _key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def any_value(value: Any) -> dict[str, Any]:
    """One attribute value as an OTLP ``AnyValue``."""
    # bool first: it is an int subclass.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return {"intValue": str(value)}
        # The SDK lets a bigger int through; as intValue it would make the
        # Collector reject the whole line.
        return {"stringValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        # JSON has no NaN/Infinity; protobuf's JSON mapping spells them as strings.
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes | bytearray):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _key_values(value)}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if value is None:  # an empty AnyValue: a null inside an array
        return {}
    return {"stringValue": str(value)}
