"""What happened to each position, told from a trace file's spans: a summary per
position, or one position's span tree and machine path, as text or JSON.

The spans come from trace_file.read_spans; a position whose root span was lost
is still told, from whatever of its spans arrived.
"""

from __future__ import annotations

import base64
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from orchestrator.exceptions import UnknownPositionError
from orchestrator.fills import hours_of
from orchestrator.tracing.trace_file import AttrValue, SpanRecord

ROOT_SPAN = "position"
TRANSITION_EVENT = "transition"
# A client order id is f"{position_id}-{leg[0]}{action[0]}{attempt}"
# (orchestrator.position.manager.client_order_id): it names the position even
# when every span that carries the position id is lost.
_CLIENT_ORDER_ID = re.compile(r"^(?P<position>.+)-[sp][ocr]\d+$")


class PositionNotInTraceError(UnknownPositionError):
    """No position (or several) in the spans matches the id asked for."""

    def __str__(self) -> str:
        # KeyError's str() would quote the message.
        return str(self.args[0])


# -- positions


@dataclass(frozen=True, slots=True)
class PositionFigures:
    funding: Decimal | None
    price_pnl: Decimal | None
    net_pnl: Decimal | None
    hours_held: Decimal | None  # market time, open to close; None while still open
    spot_entry_price: Decimal | None
    perp_entry_price: Decimal | None
    spot_exit_price: Decimal | None
    perp_exit_price: Decimal | None


@dataclass(frozen=True, slots=True)
class PositionSummary:
    position_id: str | None  # None: the root span is missing and no other span names it
    spot_symbol: str | None
    perp_symbol: str | None
    final_state: str | None
    reason: str | None
    market_time: str | None  # when it began on the market's clock (the data's, in a replay)
    start_ns: int
    duration_ms: float
    leg_skew_ms: float | None  # the largest over the position's phases
    fees: Decimal | None  # every order's fee, quote currency
    trace_id: str
    run_id: str | None
    incomplete: bool  # the root span never arrived: only some of its children did
    # What a trader reads first, as the run's ledger has them (positions.csv agrees to
    # the last digit); None in traces written before they were recorded.
    figures: PositionFigures | None = None

    @property
    def outcome(self) -> str:
        if self.incomplete:
            return "incomplete (no position span)"
        state = self.final_state or "unknown"
        return f"{state}: {self.reason}" if self.reason else state


@dataclass(frozen=True, slots=True)
class SpanNode:
    span: SpanRecord
    children: tuple[SpanNode, ...]  # by start time


class Transition(NamedTuple):
    time_ns: int
    event: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class PositionDetail:
    summary: PositionSummary
    # The position span; when it is missing, the top spans that did arrive.
    roots: tuple[SpanNode, ...]
    transitions: tuple[Transition, ...]  # in time order

    @property
    def path(self) -> list[str]:
        """The machine's states in order: ``["pending", "legs_sent", ...]``."""
        if not self.transitions:
            return []
        return [self.transitions[0].source, *(t.target for t in self.transitions)]


@dataclass(frozen=True, slots=True)
class _Group:
    root: SpanRecord | None
    spans: tuple[SpanRecord, ...]  # the root (if any) and all its descendants


def positions(spans: Iterable[SpanRecord]) -> list[PositionSummary]:
    """One summary per position, by start time."""
    return sorted(
        (_summary(group) for group in _groups(spans)),
        key=lambda s: (s.start_ns, s.position_id or ""),
    )


def position_detail(spans: Iterable[SpanRecord], position_id: str) -> PositionDetail:
    """The span tree and machine path of one position, found by its id, its trace id
    or a unique prefix of its id."""
    if not position_id.strip():  # a prefix of every id: it names none
        raise PositionNotInTraceError(
            f"{position_id!r} names no position: give a position id, a unique prefix of one "
            "or a trace id"
        )
    found = [(group, _summary(group)) for group in _groups(spans)]
    matches = [
        (group, summary)
        for group, summary in found
        if position_id in (summary.position_id, summary.trace_id)
    ] or [
        (group, summary)
        for group, summary in found
        if summary.position_id and summary.position_id.startswith(position_id)
    ]
    if not matches:
        known = sorted({s.position_id for _, s in found if s.position_id})
        shown = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
        raise PositionNotInTraceError(
            f"no position {position_id!r} in these spans; known: {shown or 'none'}"
        )
    if len(matches) > 1:
        which = ", ".join(f"{s.position_id} (trace {s.trace_id})" for _, s in matches[:5])
        raise PositionNotInTraceError(
            f"{position_id!r} matches {len(matches)} positions: {which}; give a trace id"
        )
    group, summary = matches[0]
    return PositionDetail(summary, _tree(group.spans), _transitions(group.root))


def _groups(spans: Iterable[SpanRecord]) -> list[_Group]:
    """The spans of each position: a ``position`` span with its descendants, or, for
    a position whose root span is missing, its orphaned phase and order spans (by
    trace: each position is a trace of its own)."""
    index: dict[tuple[str, str], SpanRecord] = {}
    for span in spans:
        # A span seen twice (merged files) counts once.
        index.setdefault((span.trace_id, span.span_id), span)
    owners: dict[tuple[str, str], tuple[str, str] | None] = {}
    members: defaultdict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    for key, span in index.items():
        owner = _owner(key, index, owners)
        if owner is not None:
            members[owner].append(span)
        elif span.name == "order" or span.name.startswith(("position.", "order.")):
            members[(span.trace_id, "")].append(span)
    return [
        _Group(index.get(key) if key[1] else None, tuple(group)) for key, group in members.items()
    ]


def _owner(
    key: tuple[str, str],
    index: dict[tuple[str, str], SpanRecord],
    owners: dict[tuple[str, str], tuple[str, str] | None],
) -> tuple[str, str] | None:
    """The key of the nearest ``position`` span above (or at) ``key``, or None."""
    walked: list[tuple[str, str]] = []
    current: tuple[str, str] | None = key
    while current is not None and current not in owners:
        span = index.get(current)
        if span is None or current in walked:  # parent never arrived, or a cycle
            current = None
            break
        if span.name == ROOT_SPAN:
            owners[current] = current
            break
        walked.append(current)
        current = (span.trace_id, span.parent_span_id) if span.parent_span_id else None
    owner = owners.get(current) if current is not None else None
    for step in walked:
        owners[step] = owner
    return owner


def _summary(group: _Group) -> PositionSummary:
    root = group.root
    skews = [
        skew
        for span in group.spans
        if span.name.startswith("position.")
        and isinstance(skew := span.attributes.get("fo.legs.skew_ms"), int | float)
        and not isinstance(skew, bool)
    ]
    leg_skew = float(max(skews)) if skews else None
    if root is not None:
        attrs = root.attributes
        fees = [
            _decimal(attrs.get(name))
            for name in ("fo.position.entry_fees", "fo.position.exit_fees")
        ]
        known_fees = [fee for fee in fees if fee is not None]
        paid = _decimal(attrs.get("fo.position.fees_paid"))  # rollbacks' fees included
        return PositionSummary(
            position_id=_str(attrs.get("fo.position.id")),
            spot_symbol=_str(attrs.get("fo.position.spot_symbol")),
            perp_symbol=_str(attrs.get("fo.position.perp_symbol")),
            final_state=_str(attrs.get("fo.position.final_state")),
            reason=_str(attrs.get("fo.position.reason")),
            market_time=_str(attrs.get("fo.market_time")),
            start_ns=root.start_ns,
            duration_ms=root.duration_ms,
            leg_skew_ms=leg_skew,
            fees=paid if paid is not None else sum(known_fees, Decimal(0)) if known_fees else None,
            trace_id=root.trace_id,
            run_id=_str(root.resource.get("fo.run.id")),
            incomplete=False,
            figures=_figures(attrs) if paid is not None else None,
        )
    start = min(span.start_ns for span in group.spans)
    symbols = {
        _str(span.attributes.get("fo.order.leg")): _str(span.attributes.get("fo.order.symbol"))
        for span in group.spans
        if span.name == "order"
    }
    return PositionSummary(
        position_id=_orphan_position_id(group.spans),
        spot_symbol=symbols.get("spot"),
        perp_symbol=symbols.get("perp"),
        final_state=None,
        reason=None,
        market_time=None,
        start_ns=start,
        duration_ms=(max(span.end_ns for span in group.spans) - start) / 1e6,
        leg_skew_ms=leg_skew,
        fees=None,  # only the position span has them in the quote currency
        trace_id=group.spans[0].trace_id,
        run_id=next((r for s in group.spans if (r := _str(s.resource.get("fo.run.id")))), None),
        incomplete=True,
    )


def _orphan_position_id(spans: Sequence[SpanRecord]) -> str | None:
    for span in spans:
        if position_id := _str(span.attributes.get("fo.position.id")):
            return position_id
    for span in spans:
        match = _CLIENT_ORDER_ID.match(_str(span.attributes.get("fo.order.client_order_id")) or "")
        if match:
            return match["position"]
    return None


def _tree(spans: Sequence[SpanRecord]) -> tuple[SpanNode, ...]:
    ids = {span.span_id for span in spans}
    children: defaultdict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        # Spans whose parent is not in the group are the tops of the tree.
        children[span.parent_span_id if span.parent_span_id in ids else None].append(span)

    def nodes(parent: str | None) -> tuple[SpanNode, ...]:
        ordered = sorted(children.get(parent, []), key=lambda s: (s.start_ns, s.end_ns, s.name))
        return tuple(SpanNode(span, nodes(span.span_id)) for span in ordered)

    return nodes(None)


def _transitions(root: SpanRecord | None) -> tuple[Transition, ...]:
    if root is None:
        return ()
    found = [
        Transition(
            event.time_ns,
            _str(event.attributes.get("fo.transition.event")) or "?",
            _str(event.attributes.get("fo.transition.from")) or "?",
            _str(event.attributes.get("fo.transition.to")) or "?",
        )
        for event in root.events
        if event.name == TRANSITION_EVENT
    ]
    return tuple(sorted(found, key=lambda t: t.time_ns))  # stable: ties keep recorded order


def _str(value: AttrValue) -> str | None:
    return value if isinstance(value, str) and value else None


def _decimal(value: AttrValue) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


# -- text


def _figures(attrs: dict[str, AttrValue]) -> PositionFigures:
    def get(name: str) -> Decimal | None:
        return _decimal(attrs.get(f"fo.position.{name}"))

    opened, closed = (_str(attrs.get(f"fo.position.{n}")) for n in ("opened_at", "closed_at"))
    hours = None
    if opened and closed:
        try:
            held = datetime.fromisoformat(closed) - datetime.fromisoformat(opened)
        except ValueError:
            held = None
        if held is not None:
            hours = hours_of(held)
    return PositionFigures(
        funding=get("funding"),
        price_pnl=get("price_pnl"),
        net_pnl=get("net_pnl"),
        hours_held=hours,
        spot_entry_price=get("spot_entry_price"),
        perp_entry_price=get("perp_entry_price"),
        spot_exit_price=get("spot_exit_price"),
        perp_exit_price=get("perp_exit_price"),
    )


def _money(x: Decimal | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _price(x: Decimal | None) -> str:
    return "-" if x is None else f"{x.normalize():f}"


def format_positions(summaries: Sequence[PositionSummary]) -> str:
    """An aligned table, one position per row."""
    if not summaries:
        return "no positions"
    header = (
        "ID",
        "SPOT",
        "PERP",
        "OUTCOME",
        "FUNDING",
        "FEES",
        "NET PNL",
        "HELD_H",
        "ENTRY SPOT/PERP",
        "EXIT SPOT/PERP",
        "MARKET TIME",
        "START (UTC)",
        "DURATION_MS",
        "SKEW_MS",
        "RUN",
        "TRACE",
    )
    none = PositionFigures(None, None, None, None, None, None, None, None)
    rows = [
        (
            s.position_id or "?",
            s.spot_symbol or "-",
            s.perp_symbol or "-",
            s.outcome,
            _money(f.funding),
            _money(s.fees),
            _money(f.net_pnl),
            "-" if f.hours_held is None else f"{f.hours_held:.2f}",
            f"{_price(f.spot_entry_price)}/{_price(f.perp_entry_price)}",
            f"{_price(f.spot_exit_price)}/{_price(f.perp_exit_price)}",
            (s.market_time or "-")[:16],
            _utc(s.start_ns),
            f"{s.duration_ms:.3f}",
            "-" if s.leg_skew_ms is None else f"{s.leg_skew_ms:.3f}",
            s.run_id or "-",
            s.trace_id,
        )
        for s in summaries
        for f in [s.figures or none]
    ]
    numeric = {4, 5, 6, 7, 12, 13}
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in (header, *rows)
    )


def format_detail(detail: PositionDetail) -> str:
    """A timeline: one line per span, indented by depth, with its offset from the
    position's start and its duration, then the machine's path."""
    s = detail.summary
    title = f"position {s.position_id or '?'}  {s.spot_symbol or '-'} / {s.perp_symbol or '-'}"
    lines = [
        f"{title}  {s.outcome}",
        f"run {s.run_id or '-'}  trace {s.trace_id}  started {_utc(s.start_ns)} UTC",
    ]
    rows = [
        (
            f"+{(node.span.start_ns - s.start_ns) / 1e6:.3f}",
            f"{node.span.duration_ms:.3f}",
            depth,
            node.span,
        )
        for node, depth in _walk(detail.roots, 0)
    ]
    offset_width = max((len(row[0]) for row in rows), default=0)
    duration_width = max((len(row[1]) for row in rows), default=0)
    for offset, duration, depth, span in rows:
        text = "  ".join(part for part in (span.name, _describe(span)) if part)
        lines.append(
            f"  {offset.rjust(offset_width)} ms  {duration.rjust(duration_width)} ms  "
            f"{'  ' * depth}{text}"
        )
    if detail.path:
        lines.append("path: " + " -> ".join(detail.path))
    elif s.incomplete:
        lines.append("path: unknown (the position span, which records it, is missing)")
    else:
        lines.append("path: unknown (no transition events)")
    return "\n".join(lines)


def _walk(nodes: Sequence[SpanNode], depth: int) -> Iterable[tuple[SpanNode, int]]:
    for node in nodes:
        yield node, depth
        yield from _walk(node.children, depth + 1)


def _describe(span: SpanRecord) -> str:
    """The attributes worth a glance, by kind of span."""
    a = span.attributes

    def get(name: str) -> str:
        value = a.get(name)
        return "-" if value is None or value == "" else str(value)

    parts: list[str] = []
    if span.name == ROOT_SPAN:
        parts.append(f"qty {get('fo.position.quantity')}")
        parts.append(f"state {get('fo.position.final_state')}")
        fees = [_decimal(a.get(f"fo.position.{part}_fees")) for part in ("entry", "exit")]
        if any(fee is not None for fee in fees):
            parts.append(f"fees {sum((f or Decimal(0) for f in fees), Decimal(0))}")
        if "fo.position.reason" in a:
            parts.append(f"reason {get('fo.position.reason')}")
    elif span.name == "order":
        fill = f"{get('fo.order.filled_qty')}/{get('fo.order.requested_qty')}"
        if a.get("fo.order.avg_price"):  # none when nothing filled
            fill += f" @ {get('fo.order.avg_price')}"
        parts.append(
            f"{get('fo.order.leg')} {get('fo.order.action')} {get('fo.order.side')} {fill}"
        )
        if "fo.order.fee" in a:
            parts.append(f"fee {get('fo.order.fee')} {get('fo.order.fee_currency')}")
        parts.append(f"cid {get('fo.order.client_order_id')}")
        parts.append(get("fo.order.outcome"))
    elif span.name.startswith("order."):
        parts.append(f"{get('fo.order.leg')} {get('fo.order.action')}")
        parts.append(f"cid {get('fo.order.client_order_id')}")
        parts.append(get("fo.order.outcome"))
    skew = a.get("fo.legs.skew_ms")
    if isinstance(skew, int | float) and not isinstance(skew, bool):
        parts.append(f"skew {skew:.3f} ms")
    if span.is_error:
        parts.append(f"ERROR {_error_text(span)}")
    return "  ".join(parts)


def _error_text(span: SpanRecord) -> str:
    for event in span.events:
        if event.name == "exception":
            kind = _str(event.attributes.get("exception.type")) or "exception"
            message = _str(event.attributes.get("exception.message"))
            return f"{kind}: {message}" if message else kind
    return span.status_message or "(no message)"


def _utc(time_ns: int) -> str:
    return _moment(time_ns).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _moment(time_ns: int) -> datetime:
    # Whole seconds and microseconds apart: a float of the nanoseconds since 1970
    # keeps only about a quarter of a microsecond.
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)


# -- JSON


def positions_json(summaries: Sequence[PositionSummary]) -> list[dict[str, Any]]:
    """Plain JSON types; decimals stay strings."""
    return [_summary_json(s) for s in summaries]


def detail_json(detail: PositionDetail) -> dict[str, Any]:
    start = detail.summary.start_ns
    return {
        "position": _summary_json(detail.summary),
        "path": detail.path,
        "transitions": [
            {
                "time_ns": t.time_ns,
                "offset_ms": (t.time_ns - start) / 1e6,
                "event": t.event,
                "from": t.source,
                "to": t.target,
            }
            for t in detail.transitions
        ],
        "spans": [_node_json(node, start) for node in detail.roots],
    }


def _summary_json(s: PositionSummary) -> dict[str, Any]:
    return {
        "id": s.position_id,
        "spot_symbol": s.spot_symbol,
        "perp_symbol": s.perp_symbol,
        "final_state": s.final_state,
        "reason": s.reason,
        "outcome": s.outcome,
        "incomplete": s.incomplete,
        "market_time": s.market_time,
        "start": _moment(s.start_ns).isoformat(),
        "start_ns": s.start_ns,
        "duration_ms": s.duration_ms,
        "leg_skew_ms": s.leg_skew_ms,
        "fees": None if s.fees is None else str(s.fees),
        **{
            name: None if value is None else str(value)
            for name, value in (
                ("funding", s.figures and s.figures.funding),
                ("price_pnl", s.figures and s.figures.price_pnl),
                ("net_pnl", s.figures and s.figures.net_pnl),
                ("hours_held", s.figures and s.figures.hours_held),
                ("spot_entry_price", s.figures and s.figures.spot_entry_price),
                ("perp_entry_price", s.figures and s.figures.perp_entry_price),
                ("spot_exit_price", s.figures and s.figures.spot_exit_price),
                ("perp_exit_price", s.figures and s.figures.perp_exit_price),
            )
        },
        "trace_id": s.trace_id,
        "run_id": s.run_id,
    }


def _node_json(node: SpanNode, start: int) -> dict[str, Any]:
    span = node.span
    return {
        "name": span.name,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "offset_ms": (span.start_ns - start) / 1e6,
        "duration_ms": span.duration_ms,
        "status": {"code": span.status_code, "message": span.status_message},
        "attributes": _plain(span.attributes),
        "events": [
            {"time_ns": e.time_ns, "name": e.name, "attributes": _plain(e.attributes)}
            for e in span.events
        ],
        "children": [_node_json(child, start) for child in node.children],
    }


def _plain(value: AttrValue) -> Any:
    """An attribute value in plain JSON types (strict JSON has no NaN, no bytes)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
