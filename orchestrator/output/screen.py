"""The screen's table, JSON and CSV: one row per pair, the columns that explain its rank."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orchestrator.universe.rank import Ranked

# (key, header) in the JSON and CSV; the table shows them shorter.
COLUMNS = (
    ("rank", "rank"),
    ("pair", "pair"),
    ("interval_hours", "interval_hours"),
    ("net_annualised", "net_annualised"),
    ("gross_annualised", "gross_annualised"),
    ("cost_annualised", "cost_annualised"),
    ("last_rate", "last_rate"),
    ("predicted_rate", "predicted_rate"),
    ("next_funding", "next_funding"),
    ("settlements", "settlements"),
    ("share_positive", "share_positive"),
    ("mean_rate", "mean_rate"),
    ("deviation", "deviation"),
    ("longest_negative_run", "longest_negative_run"),
    ("turnover_24h", "turnover_24h"),
    ("spread", "spread"),
    ("basis", "basis"),
    ("left_out", "left_out"),
)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}"


def record(position: int | None, r: Ranked) -> dict[str, Any]:
    """One row, decimals as exact text (never a float)."""
    f = r.facts
    return {
        "rank": position,
        "pair": f.market,
        "interval_hours": f.interval_hours,
        "net_annualised": _text(r.net),
        "gross_annualised": _text(r.gross),
        "cost_annualised": _text(r.cost),
        "last_rate": _text(f.last_rate),
        "predicted_rate": _text(f.predicted_rate),
        "next_funding": _iso(f.next_funding_ms),
        "settlements": r.count,
        "share_positive": _text(r.share_positive),
        "mean_rate": _text(r.mean),
        "deviation": _text(r.deviation),
        "longest_negative_run": r.longest_negative,
        "turnover_24h": _text(f.turnover_24h),
        "spread": _text(f.spread),
        "basis": _text(f.basis),
        "left_out": r.left_out,
    }


def records(ranked: Sequence[Ranked]) -> list[dict[str, Any]]:
    """The rows, the considered ones numbered from 1 in rank order."""
    rows = []
    n = 0
    for r in ranked:
        if r.left_out is None:
            n += 1
        rows.append(record(n if r.left_out is None else None, r))
    return rows


def as_json(ranked: Sequence[Ranked], head: dict[str, Any]) -> str:
    return json.dumps({**head, "pairs": records(ranked)}, indent=1) + "\n"


def as_csv(ranked: Sequence[Ranked]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header for _, header in COLUMNS])
    for row in records(ranked):
        writer.writerow(["" if row[key] is None else row[key] for key, _ in COLUMNS])
    return out.getvalue()


def _pct(value: Decimal | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:.{places}%}"


def _money(value: Decimal) -> str:
    if value >= 10**6:
        return f"{value / 10**6:,.1f}M"
    if value >= 10**3:
        return f"{value / 10**3:,.1f}k"
    return f"{value:,.0f}"


def as_table(ranked: Sequence[Ranked]) -> str:
    """Aligned text: the considered pairs in rank order, then those left out and why."""
    lines = [
        f"{'#':>4} {'pair':<14}{'every':>6}{'net/y':>9}{'gross/y':>9}{'cost/y':>8}"
        f"{'last':>10}{'next':>10}{'n':>6}{'pos':>6}{'sd':>10}{'neg run':>8}"
        f"{'turnover':>10}{'spread':>8}{'basis':>8}"
    ]
    n = 0
    for r in ranked:
        f = r.facts
        if r.left_out is None:
            n += 1
            place = f"{n:>4}"
        else:
            place = f"{'-':>4}"
        lines.append(
            f"{place} {f.market:<14}{f.interval_hours:>5}h{_pct(r.net):>9}{_pct(r.gross):>9}"
            f"{_pct(r.cost):>8}{_pct(f.last_rate, 4):>10}{_pct(f.predicted_rate, 4):>10}"
            f"{r.count:>6}{_pct(r.share_positive, 0):>6}{_pct(r.deviation, 4):>10}"
            f"{r.longest_negative:>8}{_money(f.turnover_24h):>10}{_pct(f.spread, 3):>8}"
            f"{_pct(f.basis, 3):>8}" + (f"  left out: {r.left_out}" if r.left_out else "")
        )
    return "\n".join(lines) + "\n"
