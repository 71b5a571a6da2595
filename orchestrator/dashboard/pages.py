"""The dashboard's pages, server-rendered: every value from a run passes through
``esc`` (a position id or a reason is text a run wrote, never markup). A money cell
shows two decimals and carries the exact Decimal in ``data-exact``."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from machines import FINAL_STATES
from orchestrator.dashboard.folders import PositionsPage
from orchestrator.journal.schema import Transition
from orchestrator.journal.status import PositionStatus, RunStatus, age_text, time_text
from orchestrator.tracing.inspect import PositionDetail, format_detail

STATIC = "/static"
POSITION_HEAD = [
    "pair", "state", "quantity", "spot entry", "perp entry", "unrealised", "funding", "fees",
    "age", "reason",
]  # fmt: skip


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(value: Decimal | None, signed: bool = False) -> str:
    """A money cell: two decimals shown, the exact value kept in data-exact."""
    if value is None:
        return '<td class="num">-</td>'
    shown = f"{value:+,.2f}" if signed else f"{value:,.2f}"
    return f'<td class="num" data-exact="{esc(value)}">{shown}</td>'


def percent(value: object) -> str:
    """A fraction shown as a percentage (two decimals), exact in data-exact."""
    if value is None:
        return '<td class="num">-</td>'
    number = Decimal(str(value))
    return f'<td class="num" data-exact="{esc(value)}">{number * 100:,.2f}%</td>'


def table(head: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True)
class Frame:
    """What every page has: its title, the run it is about (if any), where its live
    updates come from, whether controls are on."""

    title: str
    run: str | None = None
    events: str = "/events"
    controls: bool = False


def layout(frame: Frame, body: str) -> str:
    nav = ['<a href="/">Runs</a>', '<a href="/sweeps">Sweeps</a>', '<a href="/market">Market</a>']
    if frame.run is not None:
        base = f"/runs/{quote(frame.run)}"
        nav += [
            f'<span class="sep">{esc(frame.run)}:</span>',
            f'<a href="{base}">Positions</a>',
            f'<a href="{base}/machine">Machine</a>',
            f'<a href="{base}/money">Money</a>',
        ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(frame.title)} · funding-orchestrator</title>"
        f'<link rel="stylesheet" href="{STATIC}/charts/vendor/uplot/uPlot.min.css">'
        f'<link rel="stylesheet" href="{STATIC}/style.css">'
        f'<script src="{STATIC}/charts/vendor/uplot/uPlot.iife.min.js" defer></script>'
        f'<script src="{STATIC}/charts/charts.js" defer></script>'
        f'<script src="{STATIC}/app.js" defer></script></head>'
        f'<body data-events="{esc(frame.events)}" data-updates="0" '
        f'data-controls="{"on" if frame.controls else "off"}">'
        f"<header><nav>{' '.join(nav)}</nav>"
        '<span id="live" title="updated when the journal changes">live: connecting</span>'
        f'</header><main id="content"><h1>{esc(frame.title)}</h1>{body}</main></body></html>'
    )


# -- runs


def kind_of(status: RunStatus, config: Any) -> str:
    """replay, dry run, live (network) or rehearsal."""
    if status.mode == "rehearsal":
        return "rehearsal"
    if status.mode == "dry-run":
        return "dry run"
    if status.mode == "live":
        return f"live ({getattr(config, 'network', '?')})"
    if config is not None and getattr(config, "dry_run", False):
        return "dry run"
    return "replay" if status.clock == "data" else status.mode


def runs_page(rows: Sequence[tuple[str, RunStatus | str, str, str, int]], folder: str) -> str:
    """One row per run: (name, its status or why it cannot be read, kind, venue,
    alerts in its summary)."""
    head = [
        "run", "kind", "venue", "state", "as of", "uptime", "last venue contact",
        "open", "ended", "equity", "funding", "fees", "pauses", "alerts",
    ]  # fmt: skip
    body = []
    for name, status, kind, venue, alerts in rows:
        link = f'<td><a href="/runs/{quote(name)}">{esc(name)}</a></td>'
        if isinstance(status, str):
            body.append(f'{link}<td colspan="13" class="problem">{esc(status)}</td>')
            continue
        began = status.start_ms if status.start_ms is not None else status.first_ms
        uptime = age_text(status.as_of_ms - began) if began is not None else "-"
        contact = (
            time_text(status.last_contact_ms)
            if status.last_contact_ms is not None
            else status.contact_note.split(":")[0]
        )
        open_rows = sum(1 for r in status.positions if r.open)
        body.append(
            f"{link}<td>{esc(kind)}</td><td>{esc(venue)}</td>"
            f'<td class="state state-{esc(status.state)}" title="{esc(status.state_detail)}">'
            f"{esc(status.state)}</td><td>{esc(time_text(status.as_of_ms))}</td>"
            f"<td>{esc(uptime)}</td><td>{esc(contact)}</td>"
            f'<td class="num">{open_rows}</td>'
            f'<td class="num">{len(status.positions) - open_rows}</td>'
            f"{money(status.equity)}{money(status.funding_total, True)}"
            f'{money(status.fees_total)}<td class="num">{len(status.pauses)}</td>'
            f'<td class="num">{alerts}</td>'
        )
    if not body:
        return f"<p>No run folders under <code>{esc(folder)}</code> yet.</p>"
    return f"<p>Run folders under <code>{esc(folder)}</code>, newest first.</p>" + table(
        head, body, "runs"
    )


# -- one run


def status_block(status: RunStatus) -> str:
    q = status.quote
    lines = [
        ("state", f"{status.state}: {status.state_detail}"),
        ("as of", f"{time_text(status.as_of_ms)} ({status.clock}'s clock)"),
        (
            "venue",
            time_text(status.last_contact_ms)
            if status.last_contact_ms is not None
            else status.contact_note,
        ),
    ]
    parts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in lines)
    balance = table(
        [
            "equity",
            "available",
            "allocated to positions",
            "of which perp margin",
            "cash",
            "starting balance",
        ],
        [
            money(status.equity)
            + money(status.available)
            + money(status.allocated)
            + money(status.margin)
            + money(status.cash)
            + money(status.starting_balance)
        ],
        "balance",
    )
    funding = table(
        [f"funding today ({q})", f"funding in all ({q})", f"fees paid ({q})"],
        [
            money(status.funding_today, True)
            + money(status.funding_total, True)
            + money(status.fees_total)
        ],
        "funding",
    )
    pauses = "".join(f"<li>{esc(p.line)}</li>" for p in status.pauses) or "<li>none</li>"
    requests = "".join(f"<li>{esc(r)}</li>" for r in status.requests)
    problems = "".join(f'<li class="problem">{esc(p)}</li>' for p in status.problems)
    return (
        f'<dl class="status">{parts}</dl>{balance}{funding}'
        f"<h2>Pauses</h2><ul>{pauses}</ul>"
        + (f"<h2>Operator requests</h2><ul>{requests}</ul>" if requests else "")
        + (f"<ul>{problems}</ul>" if problems else "")
    )


def controls_block(run: str, status: RunStatus, thresholds: Mapping[str, str]) -> str:
    """Buttons and a form that POST to the control API (app.js adds the token the user
    types; it is never in the page): pause and resume opening, close one position or
    all (the run goes on, those pairs paused), close all and stop, and the strategy's
    ``thresholds`` as the run decides with them now."""
    if status.state != "running":
        return ""
    r = esc(run)
    buttons = "".join(
        f'<button data-command="{c}" data-run="{r}"{extra}>{esc(label)}</button>'
        for c, label, extra in (
            ("pause", "Pause opening", ""),
            ("resume-trading", "Resume opening", ""),
            ("close", "Close all (keep running, paused)", ""),
            ("stop", "Close all and stop", ' data-close-all="true"'),
        )
    )
    held = [row for row in status.positions if row.position.state not in FINAL_STATES]
    closes = "".join(
        f'<button data-command="close" data-run="{r}" data-pair="{esc(row.pair)}">'
        f"Close {esc(row.position.id)}</button>"
        for row in held
    )
    fields = "".join(
        f'<label>{esc(name)} <input name="{esc(name)}" value="{esc(value)}" '
        f'data-was="{esc(value)}" size="8"></label> '
        for name, value in thresholds.items()
    )
    return (
        '<section id="controls"><h2>Controls</h2>'
        '<label>token <input type="password" id="token" autocomplete="off"></label> '
        f"{buttons}"
        + (f'<p class="closes">Close one position: {closes}</p>' if closes else "")
        + f'<form id="thresholds" data-run="{r}"><h3>Strategy thresholds</h3>{fields}'
        '<button type="submit">Apply from the next cycle</button></form>'
        '<p id="control-answer"></p></section>'
    )


def positions_block(run: str, page: PositionsPage) -> str:
    base = f"/runs/{quote(run)}"
    filters = [f'<a href="{base}" class="{"on" if page.state is None else ""}">all</a>']
    for state, n in sorted(page.counts.items()):
        on = "on" if state == page.state else ""
        link = f"{base}?{urlencode({'state': state})}"
        filters.append(
            f'<a href="{link}" class="{on}" data-state="{esc(state)}">{esc(state)} {n}</a>'
        )
    head = [
        "id", "pair", "state", "quantity", "spot qty", "perp qty", "spot entry", "perp entry",
        f"unrealised ({page.quote})", "funding", "fees", "price PnL (fills)", "age",
    ]  # fmt: skip
    rows = [_position_cells(run, r, page.price_pnl.get(r.position.id)) for r in page.rows]
    last = min(page.offset + page.limit, page.total)
    nav = []
    params = {"state": page.state} if page.state else {}
    if page.offset > 0:
        prev = urlencode({**params, "offset": max(page.offset - page.limit, 0)})
        nav.append(f'<a href="{base}?{prev}" rel="prev">previous</a>')
    if last < page.total:
        nxt = urlencode({**params, "offset": page.offset + page.limit})
        nav.append(f'<a href="{base}?{nxt}" rel="next">next</a>')
    shown = f"{page.offset + 1}-{last}" if page.total else "0"
    return (
        f'<h2>Positions</h2><p class="filters">{" ".join(filters)}</p>'
        + table(head, rows, "positions")
        + f'<p class="pager"><span id="shown">{shown} of {page.total:,}</span> {" ".join(nav)}</p>'
    )


def _position_cells(run: str, r: PositionStatus, fills: Decimal | None) -> str:
    p = r.position
    link = f"/runs/{quote(run)}/positions/{quote(p.id)}"
    return (
        f'<td><a href="{link}">{esc(p.id)}</a></td><td>{esc(r.pair)}</td>'
        f'<td class="state">{esc(p.state)}</td><td class="num">{esc(p.quantity)}</td>'
        f'<td class="num">{esc(p.spot_qty)}</td>'
        f'<td class="num">{esc(p.perp_qty)}</td>'
        f'<td class="num">{esc(p.spot_entry_price or "-")}</td>'
        f'<td class="num">{esc(p.perp_entry_price or "-")}</td>{money(r.unrealised, True)}'
        f"{money(r.funding, True)}{money(r.fees)}{money(fills, True)}"
        f"<td>{esc(age_text(r.age_ms))}</td>"
    )


def position_page(
    run: str,
    row: PositionStatus | None,
    transitions: Sequence[Transition],
    detail: PositionDetail | str,
    diagram: str,
) -> str:
    """A position: its figures, its path (the journal's transitions) drawn on the
    machine, and its timeline from the trace (as ``orchestrator traces --position``)."""
    parts = []
    if row is not None:
        p = row.position
        parts.append(
            table(
                POSITION_HEAD,
                [
                    f"<td>{esc(row.pair)}</td><td>{esc(p.state)}</td>"
                    f'<td class="num">{esc(p.quantity)}</td>'
                    f'<td class="num">{esc(p.spot_entry_price or "-")}</td>'
                    f'<td class="num">{esc(p.perp_entry_price or "-")}</td>'
                    f"{money(row.unrealised, True)}{money(row.funding, True)}{money(row.fees)}"
                    f"<td>{esc(age_text(row.age_ms))}</td><td>{esc(p.reason or '')}</td>"
                ],
                "position",
            )
        )
    steps = [
        f"<td>{esc(time_text(t.time_ms))}</td><td>{esc(t.event)}</td>"
        f"<td>{esc(t.source)}</td><td>{esc(t.target)}</td>"
        for t in transitions
    ]
    path = " → ".join([transitions[0].source, *(t.target for t in transitions)]) if steps else ""
    parts.append(f'<h2>Path</h2><p id="path">{esc(path or "no transition journaled")}</p>')
    parts.append(f'<div class="diagram">{diagram}</div>')
    parts.append(table(["when (run's clock)", "event", "from", "to"], steps, "transitions"))
    if isinstance(detail, str):
        parts.append(f'<h2>Timeline</h2><p class="problem">{esc(detail)}</p>')
    else:
        s = detail.summary
        skew = "-" if s.leg_skew_ms is None else f"{s.leg_skew_ms:.3f} ms"
        parts.append(
            f"<h2>Timeline</h2><p>from the trace: {len(detail.roots)} root span(s), "
            f'largest leg skew <span id="skew">{esc(skew)}</span>, '
            f"{s.duration_ms:.3f} ms in all</p>"
            f'<pre id="timeline">{esc(format_detail(detail))}</pre>'
        )
    return "".join(parts)


def machine_page(counts: dict[str, int], diagram: str) -> str:
    rows = [
        f'<td>{esc(s)}</td><td class="num" data-state="{esc(s)}">{n:,}</td>'
        for s, n in sorted(counts.items())
    ]
    return (
        "<p>PositionMachine, drawn from the code as <code>orchestrator diagrams</code> "
        "draws it, with the number of this run's positions in each state.</p>"
        f'<div class="diagram">{diagram}</div>' + table(["state", "positions"], rows, "counts")
    )
