"""``orchestrator status [RUN_DIR]``: where a run stands, read from its folder without
disturbing it (orchestrator/journal/status.py reads it), as text or JSON, once or
refreshed every few seconds (``--watch``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from orchestrator.journal.status import (
    PositionStatus,
    Price,
    RunStatus,
    age_text,
    latest_run,
    read_status,
    time_text,
)

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen: a tty's refresh in place
EXIT_INTERRUPTED = 130  # 128 + SIGINT: how --watch ends


def to_json(status: RunStatus) -> dict[str, Any]:
    """The status as JSON-ready values: decimals as strings, times in ms and as text."""
    account = None
    if status.account is not None:
        account = {k: _plain(v) for k, v in status.account.items()}
        account["time"] = time_text(status.account.get("time_ms"))
    return {
        "run_dir": str(status.run_dir),
        "run_id": status.run_id,
        "mode": status.mode,
        "state": status.state,
        "state_detail": status.state_detail,
        "writer_pid": status.writer_pid,
        "now_ms": status.now_ms,
        "as_of_ms": status.as_of_ms,
        "as_of": time_text(status.as_of_ms),
        "clock": status.clock,
        "start_ms": status.start_ms,
        "first_ms": status.first_ms,
        "quote": status.quote,
        "starting_balance": _plain(status.starting_balance),
        "leverage": _plain(status.leverage),
        "equity": {
            "equity": _plain(status.equity),
            "cash": _plain(status.cash),
            "allocated_to_positions": _plain(status.allocated),
            "available": _plain(status.available),
            "prices_from": status.prices_from,
        },
        "account": account,
        "funding": {
            "today": str(status.funding_today),
            "total": str(status.funding_total),
            "day": time_text(status.as_of_ms)[:10],
        },
        "fees_total": str(status.fees_total),
        "positions": [_position_json(row) for row in status.positions],
        "pauses": [{"label": p.label, "n": p.n, "line": p.line} for p in status.pauses],
        "paused_now": status.paused_now,
        "operator_requests": status.requests,
        "last_venue_contact_ms": status.last_contact_ms,
        "last_venue_contact": (
            time_text(status.last_contact_ms)
            if status.last_contact_ms is not None
            else status.contact_note
        ),
        "summary": status.summary,
        "problems": status.problems,
    }


def _position_json(row: PositionStatus) -> dict[str, Any]:
    p = row.position
    return {
        "id": p.id,
        "pair": row.pair,
        "state": p.state,
        "open": row.open,
        "spot_symbol": p.spot_symbol,
        "perp_symbol": p.perp_symbol,
        "quantity": str(p.quantity),
        "spot_qty": str(p.spot_qty),
        "perp_qty": str(p.perp_qty),
        "spot_entry_price": _plain(p.spot_entry_price),
        "perp_entry_price": _plain(p.perp_entry_price),
        "spot_price": _price_json(row.spot_price),
        "perp_price": _price_json(row.perp_price),
        "unrealised_pnl": _plain(row.unrealised),
        "funding": str(row.funding),
        "fees": str(row.fees),
        "age_seconds": None if row.age_ms is None else row.age_ms // 1000,
        "opened_at": _iso(p.opened_at),
        "closed_at": _iso(p.closed_at),
        "reason": p.reason,
    }


def _price_json(price: Price | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {"price": str(price.price), "time_ms": price.time_ms, "source": price.source}


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _iso(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat())


def _money(value: Decimal | None, quote: str = "") -> str:
    if value is None:
        return "unknown"
    return f"{value:,.2f}" + (f" {quote}" if quote else "")


def format_status(status: RunStatus) -> str:
    q = status.quote
    lines: list[str] = []

    def row(label: str, text: str) -> None:
        lines.append(f"{label:<12}{text}")

    row("run", f"{status.run_id}  mode {status.mode}  ({status.run_dir})")
    row("state", f"{status.state.upper()}: {status.state_detail}")
    if status.summary and status.summary.get("interrupted"):
        row("", "the run was stopped early (a signal), as its summary says")
    clock = (
        "the recorded data's time at the run's last record"
        if status.clock == "data"
        else "the venue's time at the run's last record"
    )
    began = (
        f"started {time_text(status.start_ms)}"
        if status.start_ms is not None
        else f"first record {time_text(status.first_ms)}"
    )
    row("as of", f"{time_text(status.as_of_ms)} ({clock}); {began}")
    if status.last_contact_ms is not None:
        ago = f" ({max(status.now_ms - status.last_contact_ms, 0) / 1000:.0f} s ago)"
        row(
            "venue",
            f"last successful contact {time_text(status.last_contact_ms)}{ago}, "
            "on this machine's clock",
        )
    else:
        row("venue", f"last successful contact: {status.contact_note}")
    row(
        "equity",
        f"{_money(status.equity, q)} = available {_money(status.available)} + allocated to "
        f"positions {_money(status.allocated)} (spot at price + perp margin"
        + (f" at {status.leverage}x)" if status.leverage is not None else ")"),
    )
    row("", f"cash {_money(status.cash)} (starting balance {_money(status.starting_balance)})")
    account = status.account
    if account is not None:
        said = f"{account['source']} at {time_text(account.get('time_ms'))}: "
        said += f"{_money(account.get('total'), account['currency'])}, available "
        said += _money(account.get("available"))
        if account.get("equity") is not None:
            said += f"; equity as the run valued it {_money(account['equity'])}"
        coins = account.get("coins")
        if coins:
            said += "; " + ", ".join(f"{k} {v}" for k, v in coins.items())
        row("account", said)
    day = time_text(status.as_of_ms)[:10]
    row(
        "funding",
        f"today ({day} UTC) {status.funding_today:+,.2f} {q}; total "
        f"{status.funding_total:+,.2f} {q}; fees paid {status.fees_total:,.2f} {q}",
    )
    open_rows = [r for r in status.positions if r.open]
    done = Counter(r.position.state or "(none)" for r in status.positions if not r.open)
    ended = ", ".join(f"{s} {n}" for s, n in sorted(done.items()))
    row(
        "positions",
        f"{len(open_rows)} open" + (f"; ended: {ended}" if ended else ""),
    )
    if open_rows:
        lines.extend(_positions_table(open_rows))
        if status.prices_from:
            row("", f"unrealised PnL at {status.prices_from}")
    for pair, why in status.paused_now.items():
        row("paused now", f"{pair}: {why}")
    if status.pauses:
        for pause in status.pauses:
            row("paused", pause.line)
    elif not status.paused_now:
        row("paused", "nothing (no pause said in the journal)")
    for request in status.requests:
        row("operator", request)
    for problem in status.problems:
        row("warning", problem)
    return "\n".join(lines)


def _positions_table(rows: list[PositionStatus]) -> list[str]:
    header = [
        "id", "state", "spot qty", "perp qty", "quantity", "spot entry", "perp entry",
        "spot last", "perp last", "unrealised", "funding", "fees", "age",
    ]  # fmt: skip
    cells = []
    for r in rows:
        p = r.position
        cells.append(
            [
                p.id,
                p.state or "",
                str(p.spot_qty),
                str(p.perp_qty),
                str(p.quantity),
                _maybe(p.spot_entry_price),
                _maybe(p.perp_entry_price),
                _maybe(r.spot_price.price if r.spot_price else None),
                _maybe(r.perp_price.price if r.perp_price else None),
                _money(r.unrealised),
                f"{r.funding:+,.2f}",
                f"{r.fees:,.2f}",
                age_text(r.age_ms, seconds=True),
            ]
        )
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        parts = [
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    reasons = [f"    {r.position.id}: {r.position.reason}" for r in rows if r.position.reason]
    return [line(header), *(line(c) for c in cells), *reasons]


def _maybe(value: Decimal | None) -> str:
    return "-" if value is None else str(value)


def snapshot(run_dir: Path, *, as_json: bool) -> str:
    status = read_status(run_dir, int(time.time() * 1000))
    return json.dumps(to_json(status), indent=2) if as_json else format_status(status)


def watch(run_dir: Path, seconds: float, *, as_json: bool, out: TextIO) -> int:
    """Refresh until Ctrl-C: in place on a terminal, one snapshot after another,
    separated by a blank line, on a pipe (a log keeps each). Ctrl-C sets a flag rather
    than raising: a snapshot being written is finished, never cut."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    tty = out.isatty()
    try:
        first = True
        while True:
            text = snapshot(run_dir, as_json=as_json)
            if tty:
                out.write(CLEAR + text + "\n")
            else:
                out.write(("" if first else "\n") + text + "\n")
            out.flush()
            first = False
            if stop.wait(seconds):
                return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)


def main(args: argparse.Namespace) -> int:
    """``orchestrator status [RUN_DIR] [--runs DIR] [--json] [--watch [SECONDS]]``."""
    run_dir: Path = args.run_dir if args.run_dir is not None else latest_run(args.runs)
    if args.watch is None:
        print(snapshot(run_dir, as_json=args.json))
        return 0
    if not args.watch > 0:
        print(f"error: --watch {args.watch}: the seconds must be above 0", file=sys.stderr)
        return 2
    return watch(run_dir, args.watch, as_json=args.json, out=sys.stdout)
