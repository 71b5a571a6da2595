"""The run folders as the dashboard reads them: which there are, a journal snapshot of
each (``Journal.read``: without the run's lock, changing nothing, the writer never
waits), and what is computed from it, kept until the run's files change.

A run's *signature* is the size and modification time of its journal, its WAL, its
``summary.json`` and ``INCOMPLETE``, and whether a process holds it: stat calls and
one lock probe, cheap enough to poll every half second for the live updates.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.control import running
from orchestrator.files import INCOMPLETE
from orchestrator.journal.reader import JournalView, read_journal
from orchestrator.journal.schema import DB_NAME
from orchestrator.journal.status import (
    LABEL,
    LAST_CYCLE,
    SUMMARY_FILE,
    PositionStatus,
    Price,
    RunStatus,
    last_cycle,
    last_prices,
    position_row,
    status_of,
)
from orchestrator.models import ZERO

# A run's folder name as the runs make them (20250101-120000-abcdef), or any plain
# name: never a path, so a URL cannot lead outside the runs folder.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PAGE_SIZE = 50
T = TypeVar("T")


class NotARun(LookupError):
    """The name is not a run folder under the runs folder."""


Signature = tuple[object, ...]


def valid_name(name: str) -> bool:
    """A folder name a URL may name (never a path)."""
    return _NAME.match(name) is not None


def run_names(runs_dir: Path) -> list[str]:
    """The run folders (those holding a journal), newest first."""
    if not runs_dir.is_dir():
        return []
    found = []
    for run in runs_dir.iterdir():
        if run.is_dir() and _NAME.match(run.name) and (run / DB_NAME).is_file():
            found.append((run.stat().st_mtime_ns, run.name))
    return [name for _, name in sorted(found, reverse=True)]


def run_dir(runs_dir: Path, name: str) -> Path:
    if not _NAME.match(name) or not (runs_dir / name / DB_NAME).is_file():
        raise NotARun(name)
    return runs_dir / name


def signature(run: Path) -> Signature:
    parts: list[object] = []
    for name in (DB_NAME, DB_NAME + "-wal", SUMMARY_FILE, INCOMPLETE):
        try:
            st = (run / name).stat()
        except OSError:
            parts.append(None)
        else:
            parts.append((st.st_mtime_ns, st.st_size))
    parts.append(running(run) is not None)
    return tuple(parts)


class Cache:
    """What was computed from a run's files, until its signature changes. A lock per
    (run, what): two requests never compute the same heavy thing (a replay's curves)
    twice, and one being computed holds up no other page."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[Path, str], threading.RLock] = {}
        self._values: dict[tuple[Path, str], tuple[Signature, Any]] = {}

    def get(self, run: Path, key: str, compute: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault((run, key), threading.RLock())
        with lock:
            now = signature(run)
            held = self._values.get((run, key))
            if held is not None and held[0] == now:
                value: T = held[1]
                return value
            value = compute()
            self._values[(run, key)] = (now, value)
            return value

    def view(self, run: Path) -> JournalView:
        """The run's journal as it is now (one snapshot per change of its files)."""
        return self.get(run, "view", lambda: read_journal(run))

    def page_context(self, run: Path, now_ms: int) -> PageContext:
        """What status found: its ledger label, last prices and clock."""
        status = self.status(run, now_ms)
        return PageContext(status.label, status.prices, status.as_of_ms)

    def status(self, run: Path, now_ms: int) -> RunStatus:
        """``orchestrator status``'s reading of the run, from the snapshot kept (its "ago"
        counted from when it was read: the figures are the same until the files change)."""
        return self.get(run, "status", lambda: status_of(run, self.view(run), now_ms))


@dataclass
class PositionsPage:
    total: int  # in the state asked for (all with None)
    offset: int
    limit: int
    state: str | None
    rows: list[PositionStatus]
    price_pnl: dict[str, Decimal]  # the fills' cash so far: realised once flat
    counts: dict[str, int]  # positions in each state (the whole run)
    quote: str


@dataclass(frozen=True)
class PageContext:
    """What every page of positions needs from the whole journal (read once per
    change of the run's files): the ledger's label, the last prices, the run's clock."""

    label: str
    prices: dict[str, Price]
    as_of: int


def page_context(view: JournalView) -> PageContext:
    """As ``orchestrator status`` finds them (journal/status.py)."""
    labels = view.ledger_counts()
    label = LABEL if LABEL in labels or not labels else next(iter(labels))
    problems: list[str] = []
    cycle = last_cycle(view.meta().get(LAST_CYCLE), problems)
    prices = last_prices(view.last_priced(label), cycle)
    times = [view.last_time_ms()]
    snap = view.last_balances(label)
    if snap is not None:
        times.append(snap.time_ms)
    if cycle is not None:
        times.append(int(cycle.get("market_ms", 0)))
    return PageContext(label, prices, max((t for t in times if t is not None), default=0))


def positions_page(
    view: JournalView, context: PageContext, state: str | None, offset: int, limit: int
) -> PositionsPage:
    """One page of the run's positions, each computed as ``orchestrator status``
    computes it (``position_row``), reading only that page's ledger entries."""
    label, prices, as_of = context.label, context.prices, context.as_of
    total, positions = view.positions_page(state, max(offset, 0), limit)
    money: dict[tuple[str, str], Decimal] = {}
    quote = ""
    for e in view.ledger_of(label, [p.id for p in positions]):
        key = (e.position_id, e.kind)
        money[key] = money.get(key, ZERO) + e.amount
        quote = quote or e.currency
    rows = [
        position_row(
            p, money.get((p.id, "funding"), ZERO), -money.get((p.id, "fee"), ZERO), prices, as_of
        )
        for p in positions
    ]
    counts = {str(k or "(none)"): n for k, n in view.state_counts().items()}
    if not quote and positions:
        quote = positions[0].spot_symbol.partition("/")[2]
    return PositionsPage(
        total=total,
        offset=max(offset, 0),
        limit=limit,
        state=state,
        rows=rows,
        price_pnl={p.id: money.get((p.id, "fill"), ZERO) for p in positions},
        counts=counts,
        quote=quote or "USDT",
    )
