"""Reading OTLP/JSON trace files into span records, and finding a run's.

Reads any file in the OTLP/JSON lines encoding: ours (``otlp_json``), another
run's, or one a Collector wrote or merged (several ``resourceSpans`` per line,
one trace spread over several lines). A bad line or span is reported by line
number and skipped; everything else is still read.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import msgspec

from orchestrator.exceptions import OrchestratorError

AttrValue: TypeAlias = (
    str | bool | int | float | bytes | list["AttrValue"] | dict[str, "AttrValue"] | None
)
Attributes: TypeAlias = dict[str, AttrValue]

TRACES_FILE = "traces.jsonl"


class TraceFileError(OrchestratorError):
    """The trace file as a whole cannot be used: missing, unreadable or empty."""


class SpanEvent(NamedTuple):
    time_ns: int
    name: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    events: tuple[SpanEvent, ...]
    status_code: str  # "UNSET", "OK" or "ERROR"
    status_message: str
    resource: Attributes  # shared by all spans of one resourceSpans entry

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR"


# -- reading


class _Bad(Exception):
    """A part of a line that cannot be read; the message says why."""


# Records a problem: (where in the line, what is wrong).
_Problem: TypeAlias = Callable[[str, str], None]

_decoder = msgspec.json.Decoder()
_STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
_STATUS_NAMES = {f"STATUS_CODE_{name}": name for name in _STATUS_CODES.values()}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_CAMEL_HUMP = re.compile(r"[A-Z]")


def read_spans(path: str | Path) -> tuple[list[SpanRecord], list[str]]:
    """Every readable span in the file, and the problems found, each naming its line."""
    path = Path(path)
    spans: list[SpanRecord] = []
    problems: list[str] = []
    seen_content = False
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    seen_content = True
                    _read_line(line, number, spans, problems)
    except FileNotFoundError:
        raise TraceFileError(f"{path}: no such trace file") from None
    except IsADirectoryError:
        raise TraceFileError(f"{path} is a folder, not a trace file") from None
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not seen_content:
        raise TraceFileError(f"{path} is empty: no spans were exported to it")
    return spans, problems


def _read_line(line: bytes, number: int, spans: list[SpanRecord], problems: list[str]) -> None:
    def problem(where: str, message: str) -> None:
        problems.append(
            f"line {number}: {where}: {message}" if where else f"line {number}: {message}"
        )

    try:
        request = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        problem("", f"not valid JSON (truncated?): {exc}")
        return
    if not isinstance(request, dict) or _get(request, "resourceSpans") is None:
        problem("", "no resourceSpans: not an OTLP/JSON trace request")
        return
    for i, resource_spans in _items(request, "resourceSpans", "", problem):
        where = f"resourceSpans[{i}]"
        resource_obj = _get(resource_spans, "resource")
        resource = (
            _attributes(resource_obj, f"{where}.resource", problem)
            if isinstance(resource_obj, dict)
            else {}
        )
        for j, scope_spans in _items(resource_spans, "scopeSpans", where, problem):
            scope_where = f"{where}.scopeSpans[{j}]"
            for k, raw in _items(scope_spans, "spans", scope_where, problem):
                span_where = f"{scope_where}.spans[{k}]"
                try:
                    spans.append(_span(raw, resource, span_where, problem))
                except _Bad as exc:
                    problem(span_where, str(exc))


def _get(obj: dict[str, Any], name: str) -> Any:
    """A field by its lowerCamelCase name, or by its proto name, which proto3 JSON
    readers must accept as well."""
    if name in obj:
        return obj[name]
    return obj.get(_snake(name))


def _snake(name: str) -> str:
    return _CAMEL_HUMP.sub(lambda hump: "_" + hump.group().lower(), name)


def _items(
    obj: dict[str, Any], name: str, where: str, problem: _Problem
) -> Iterable[tuple[int, dict[str, Any]]]:
    """The objects in the list field ``name``; a missing field is an empty list."""
    values = _get(obj, name)
    if values is None:
        return
    if not isinstance(values, list):
        problem(where, f"{name} is not a list")
        return
    for index, value in enumerate(values):
        if isinstance(value, dict):
            yield index, value
        else:
            problem(f"{where}.{name}[{index}]" if where else f"{name}[{index}]", "not an object")


def _span(raw: dict[str, Any], resource: Attributes, where: str, problem: _Problem) -> SpanRecord:
    trace_id = _hex_id(raw, "traceId", 32)
    span_id = _hex_id(raw, "spanId", 16)
    parent_span_id = _hex_id(raw, "parentSpanId", 16) if _get(raw, "parentSpanId") else None
    name = _get(raw, "name") or ""
    if not isinstance(name, str):
        raise _Bad("name is not a string")
    start_ns = _uint64(raw, "startTimeUnixNano")
    end_ns = _uint64(raw, "endTimeUnixNano")
    attributes = _attributes(raw, where, problem)
    events: list[SpanEvent] = []
    for index, event in _items(raw, "events", where, problem):
        event_where = f"{where}.events[{index}]"
        try:
            event_name = _get(event, "name") or ""
            if not isinstance(event_name, str):
                raise _Bad("name is not a string")
            time_ns = _uint64(event, "timeUnixNano")
        except _Bad as exc:
            problem(event_where, str(exc))
            continue
        events.append(SpanEvent(time_ns, event_name, _attributes(event, event_where, problem)))
    status_code, status_message = _status(_get(raw, "status"), where, problem)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attributes,
        events=tuple(events),
        status_code=status_code,
        status_message=status_message,
        resource=resource,
    )


def _hex_id(raw: dict[str, Any], name: str, digits: int) -> str:
    value = _get(raw, name)
    if value is None or value == "":
        raise _Bad(f"missing {name}")
    if (
        not isinstance(value, str)
        or len(value) != digits
        or not all(c in "0123456789abcdefABCDEF" for c in value)
    ):
        raise _Bad(f"{name} {value!r} is not {digits} hex digits")
    if not value.strip("0"):
        raise _Bad(f"{name} is all zeros (invalid)")
    return value.lower()


def _uint64(raw: dict[str, Any], name: str) -> int:
    value = _get(raw, name)
    if value is None:
        raise _Bad(f"missing {name}")
    number = _int(value, name)
    if number < 0:
        raise _Bad(f"{name} is negative")
    return number


def _int(value: Any, what: str) -> int:
    # 64-bit integers are decimal strings in OTLP/JSON; readers accept numbers too.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _Bad(f"{what} {value!r} is not an integer")


def _status(raw: Any, where: str, problem: _Problem) -> tuple[str, str]:
    if raw is None:
        return "UNSET", ""
    if not isinstance(raw, dict):
        problem(where, "status is not an object")
        return "UNSET", ""
    code = _get(raw, "code")
    message = _get(raw, "message") or ""
    if code is None:  # proto3 JSON leaves out the default, UNSET
        name: str | None = "UNSET"
    elif isinstance(code, str):  # enum names are valid proto3 JSON too
        name = _STATUS_NAMES.get(code)
    else:
        name = _STATUS_CODES.get(code) if isinstance(code, int) else None
    if name is None:
        problem(where, f"unknown status code {code!r}")
    return name or "UNSET", message if isinstance(message, str) else str(message)


def _attributes(owner: dict[str, Any], where: str, problem: _Problem) -> Attributes:
    attributes: Attributes = {}
    for index, entry in _items(owner, "attributes", where, problem):
        key = _get(entry, "key")
        try:
            if not isinstance(key, str):
                raise _Bad("key is not a string")
            attributes[key] = _any_value(_get(entry, "value") or {})
        except _Bad as exc:
            problem(f"{where}.attributes[{index}]", str(exc))
    return attributes


def _any_value(raw: Any) -> AttrValue:
    if not isinstance(raw, dict):
        raise _Bad("value is not an AnyValue object")
    if not raw:  # the empty AnyValue: a null inside an array
        return None
    kind, value = next(iter(raw.items()))
    match _snake(kind):
        case "string_value" if isinstance(value, str):
            return value
        case "bool_value" if isinstance(value, bool):
            return value
        case "int_value":
            return _int(value, "intValue")
        case "double_value":
            return _double(value)
        case "array_value" if isinstance(value, dict):
            return [_any_value(item) for item in _list(value)]
        case "kvlist_value" if isinstance(value, dict):
            entries = [entry for entry in _list(value) if isinstance(entry, dict)]
            if not all(isinstance(_get(entry, "key"), str) for entry in entries):
                raise _Bad("kvlistValue has a key that is not a string")
            return {_get(entry, "key"): _any_value(_get(entry, "value") or {}) for entry in entries}
        case "bytes_value" if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise _Bad(f"bytesValue {value!r} is not base64") from None
    raise _Bad(f"unreadable AnyValue {raw!r}")


def _list(container: dict[str, Any]) -> list[Any]:
    values = _get(container, "values") or []
    if not isinstance(values, list):
        raise _Bad("values is not a list")
    return values


def _double(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise _Bad(f"doubleValue {value!r} is not a number")


# -- files


def latest_trace_file(runs_dir: str | Path) -> Path:
    """``<runs_dir>/<run id>/traces.jsonl`` of the newest run (by folder mtime, then name)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise TraceFileError(f"{runs_dir}: no such runs folder")
    candidates = [
        run / TRACES_FILE
        for run in runs_dir.iterdir()
        if run.is_dir() and (run / TRACES_FILE).is_file()
    ]
    if not candidates:
        raise TraceFileError(f"no run under {runs_dir} has a {TRACES_FILE}")
    return max(candidates, key=lambda path: (path.parent.stat().st_mtime_ns, path.parent.name))
