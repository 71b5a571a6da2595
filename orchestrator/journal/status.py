"""Where a run stands, read from its folder without disturbing it (``orchestrator status``).

Everything comes from what the run leaves behind: its journal (read by
``Journal.read``: a snapshot taken without the writer's lock), its lock file (whether
a process holds the run), ``summary.json`` and ``INCOMPLETE`` (how it ended). Figures
are the ledger's, recomputed as the run computes them:

    cash   = starting balance + fills + fees + funding (the ledger's amounts)
    equity = cash + each open position's legs at their last known prices
             (spot held x spot price - perp short x perp price)

so that a finished run's equity is its summary's ``ending_equity`` to the last digit.
Allocated to positions: the spot legs at their prices plus the perp shorts' margin
(notional at entry / leverage); available: the equity less that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from machines import FINAL_STATES
from orchestrator import config_file
from orchestrator.config import Config
from orchestrator.files import INCOMPLETE
from orchestrator.journal.lock import JournalError, describe_holder
from orchestrator.journal.reader import JournalView
from orchestrator.journal.schema import DB_NAME
from orchestrator.journal.store import Journal
from orchestrator.models import ZERO, Position
from orchestrator.trading.ledger import LedgerEntry

SUMMARY_FILE = "summary.json"
LABEL = "strategy"  # the run's own ledger (a replay's baseline is not journaled)
# Meta a live run writes (orchestrator/live/run.py: START_MS, STARTING_BALANCE; the
# journal cannot import what is above it, a test checks the names agree).
START_MS = "start_ms"
STRATEGY_NOW = "strategy_now"  # a live run's thresholds after orchestrator set, as JSON
STARTING_BALANCE = "starting_balance"
# Meta a live run (and a rehearsal) rewrites after each cycle whose reads all came:
# JSON {"contact_ms", "market_ms", "prices": {symbol: [price, market ms]},
# "balance": {"currency", "total", "available"}, "equity"}. Written by live/run.py.
LAST_CYCLE = "last_cycle"
PAUSE_PREFIX = "pause "  # meta "pause <label> <n>": the lines the trader said (trader._tell)
# Meta a live run rewrites when a pair's pauses change: JSON {pair: [why it opens nothing,
# why it closes nothing]} (null where it does), the pairs paused now; a resume restores
# them. Written by live/run.py.
PAUSED = "paused_pairs"
# Meta "control <id>": "<time> UTC <request> ...": an operator's stop, pause or
# resume-trading as the run journals it (orchestrator/control.py, where it exists).
CONTROL_PREFIX = "control "
DAY_MS = 86_400_000


@dataclass
class Price:
    """A leg's last known price and where it comes from."""

    price: Decimal
    time_ms: int
    source: str  # "venue" (the run's last cycle), "mark" (valued at the run's end), "fill"


@dataclass
class PositionStatus:
    position: Position
    funding: Decimal  # received (+) or paid (-), from the ledger
    fees: Decimal  # paid, as a positive amount
    spot_price: Price | None = None
    perp_price: Price | None = None
    unrealised: Decimal | None = None  # None: flat, or a price is unknown
    age_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.position.state not in FINAL_STATES

    @property
    def pair(self) -> str:
        return self.position.spot_symbol.replace("/", "")


@dataclass
class Pause:
    label: str
    n: int
    line: str


@dataclass
class RunStatus:
    run_dir: Path
    run_id: str
    mode: str
    state: str  # "running", "stopped", "incomplete" or "died"
    state_detail: str  # one sentence: who holds it, how it ended, what to do
    writer_pid: int | None
    now_ms: int  # the machine's clock when read: what "last contact ... ago" counts from
    as_of_ms: int  # the run's clock at its last record: "today" and ages are measured there
    clock: str  # whose time as_of is: "venue" (live, rehearsal) or "data" (a replay)
    quote: str
    start_ms: int | None  # when a live run started (journaled), else None
    first_ms: int | None  # the journal's first record
    starting_balance: Decimal | None
    leverage: Decimal | None
    cash: Decimal | None
    equity: Decimal | None
    allocated: Decimal | None
    available: Decimal | None
    funding_total: Decimal
    funding_today: Decimal
    fees_total: Decimal
    positions: list[PositionStatus]
    pauses: list[Pause]
    paused_now: dict[str, str]  # a live run's pairs paused when it last said: why
    requests: list[str]  # the operator's requests the run journaled, oldest first
    last_contact_ms: int | None
    contact_note: str  # why there is none, when there is none
    account: dict[str, Any] | None  # what the account last said (venue or paper wallet)
    prices_from: str  # where unrealised PnL's prices come from, said once
    summary: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    margin: Decimal | None = None  # of allocated, what the perp shorts' margin holds
    label: str = LABEL  # the ledger's run label read
    prices: dict[str, Price] = field(default_factory=dict)  # each symbol's last known price


def latest_run(runs_dir: Path) -> Path:
    """The newest run folder under ``runs_dir`` holding a journal (by folder mtime, then
    name: as ``orchestrator traces`` finds the latest)."""
    if not runs_dir.is_dir():
        raise JournalError(f"no runs: {runs_dir} is not a folder (give RUN_DIR or --runs DIR)")
    candidates = [run for run in runs_dir.iterdir() if run.is_dir() and (run / DB_NAME).is_file()]
    if not candidates:
        raise JournalError(f"no runs: no folder under {runs_dir} holds a journal ({DB_NAME})")
    return max(candidates, key=lambda run: (run.stat().st_mtime_ns, run.name))


def read_status(run_dir: Path, now_ms: int) -> RunStatus:
    """Where the run in ``run_dir`` stands; JournalError when it is not a run's folder or
    its journal cannot be read (another version, damaged)."""
    if run_dir.name == DB_NAME and run_dir.is_file():  # the journal file itself: fine too
        run_dir = run_dir.parent
    if run_dir.is_dir() and not (run_dir / DB_NAME).exists():
        raise JournalError(f"{run_dir} is not a run folder: it holds no journal ({DB_NAME})")
    with Journal.read(run_dir) as view:
        return status_of(run_dir, view, now_ms)


def status_of(run_dir: Path, view: JournalView, now_ms: int) -> RunStatus:
    """As ``read_status``, from a snapshot already taken (the dashboard keeps one)."""
    meta = view.meta()
    mode = meta.get("mode", "?")
    problems: list[str] = []
    config = _config(meta.get("config", ""), problems)
    labels = view.ledger_counts()
    label = LABEL if LABEL in labels or not labels else next(iter(labels))
    # The ledger's money only (not whole entries): a run of 10,000 positions has 100,000
    # entries and more, and status is read at every refresh of a watch or a dashboard.
    money = [
        (time_ms, position_id, kind, Decimal(amount))
        for time_ms, position_id, kind, amount in view.amounts(label, tuple(CASH_KINDS))
    ]
    positions = view.positions()
    cycle = last_cycle(meta.get(LAST_CYCLE), problems)

    currency, *ledger_span = view.ledger_bounds(label)
    quote = _quote(positions, currency, config)
    times = [t for t in (*ledger_span, *view.transition_bounds()) if t is not None]
    snap = view.last_balances(label)
    if snap is not None and snap.time_ms is not None:
        times.append(snap.time_ms)
    if cycle is not None:
        times.append(int(cycle.get("market_ms", 0)))
    # Ages and "today" are on the run's own clock, as its records are: the venue's time
    # (live: Bybit's clock; against a recorded venue, its data's) or a replay's data's.
    as_of = max(times, default=now_ms)
    # A run that journals its cycles reads a venue (live, a dry run, a rehearsal).
    clock = "data" if mode == "paper" and cycle is None else "venue"

    state, detail = _run_state(run_dir, view, mode)
    summary = _summary(run_dir, problems) if state != "running" else None

    starting = _decimal(meta.get(STARTING_BALANCE))
    if starting is None and config is not None and mode != "live":
        starting = config.balances.get(quote)
    leverage = None
    if config is not None:
        leverage = config.live.leverage if mode == "live" else config.paper.leverage

    # Of the fills and marks, only each symbol's latest is ever used.
    prices = last_prices(view.last_priced(label), cycle)
    funding_by: dict[str, Decimal] = {}
    fees_by: dict[str, Decimal] = {}
    for _, position_id, kind, amount in money:
        if kind == "funding":
            funding_by[position_id] = funding_by.get(position_id, ZERO) + amount
        elif kind == "fee":
            fees_by[position_id] = fees_by.get(position_id, ZERO) - amount
    rows = []
    held_value = allocated = margins = ZERO
    priced = True
    for p in positions:
        row = position_row(p, funding_by.get(p.id, ZERO), fees_by.get(p.id, ZERO), prices, as_of)
        if p.spot_qty or p.perp_qty:
            if row.spot_price is None or row.perp_price is None:
                priced = False
            else:
                spot, perp = row.spot_price.price, row.perp_price.price
                held_value += p.spot_qty * spot - p.perp_qty * perp
                margin = ZERO
                if leverage:
                    margin = p.perp_qty * (p.perp_entry_price or perp) / leverage
                allocated += p.spot_qty * spot + margin
                margins += margin
        rows.append(row)

    cash = equity = available = None
    if starting is not None:
        cash = starting + sum((amount for *_, amount in money), ZERO)
        if priced:
            equity = cash + held_value
            available = equity - allocated
    funding = [(time_ms, amount) for time_ms, _, kind, amount in money if kind == "funding"]
    day = as_of - as_of % DAY_MS
    contact_ms, contact_note = None, ""
    if cycle is not None and "contact_ms" in cycle:
        contact_ms = int(cycle["contact_ms"])
    elif clock == "data":
        contact_note = "none: a paper replay reads recorded data, it never contacts a venue"
    else:
        contact_note = "not recorded in this journal (written by live runs from this version on)"
    return RunStatus(
        run_dir=run_dir,
        run_id=meta.get("run_id", run_dir.name),
        mode=mode,
        state=state,
        state_detail=detail,
        writer_pid=view.writer[0] if view.writer else None,
        now_ms=now_ms,
        as_of_ms=as_of,
        clock=clock,
        quote=quote,
        start_ms=_int(meta.get(START_MS)),
        first_ms=min(times, default=None),
        starting_balance=starting,
        leverage=leverage,
        cash=cash,
        equity=equity,
        allocated=allocated if priced else None,
        available=available,
        margin=margins if priced else None,
        funding_total=sum((amount for _, amount in funding), ZERO),
        funding_today=sum((a for t, a in funding if day <= t < day + DAY_MS), ZERO),
        fees_total=-sum((amount for _, _, kind, amount in money if kind == "fee"), ZERO),
        positions=rows,
        pauses=_pauses(meta),
        paused_now={
            pair: "; ".join(why for why in whys if why)
            for pair, whys in paused_pairs(meta.get(PAUSED)).items()
        },
        requests=sorted(v for k, v in meta.items() if k.startswith(CONTROL_PREFIX)),
        last_contact_ms=contact_ms,
        contact_note=contact_note,
        account=_account(cycle, snap, quote, leverage),
        prices_from=_prices_from(prices, rows),
        summary=summary,
        problems=problems,
        label=label,
        prices=prices,
    )


CASH_KINDS = frozenset({"fill", "fee", "funding"})  # slippage is inside the fills already


def position_row(
    p: Position, funding: Decimal, fees: Decimal, prices: dict[str, Price], as_of: int
) -> PositionStatus:
    """One position as status shows it: its age on the run's clock and, while it holds
    anything, its legs' last prices and its unrealised PnL (None when a price is
    unknown). The dashboard computes its rows with this too, a page at a time."""
    row = PositionStatus(p, funding, fees)
    began = p.opened_at or p.created_at
    if began is not None:
        ended = int(p.closed_at.timestamp() * 1000) if p.closed_at else as_of
        row.age_ms = max(ended - int(began.timestamp() * 1000), 0)
    if p.spot_qty or p.perp_qty:
        row.spot_price = prices.get(p.spot_symbol)
        row.perp_price = prices.get(p.perp_symbol)
        if row.spot_price is not None and row.perp_price is not None:
            spot, perp = row.spot_price.price, row.perp_price.price
            row.unrealised = p.spot_qty * (spot - (p.spot_entry_price or spot)) - (
                p.perp_qty * (perp - (p.perp_entry_price or perp))
            )
    return row


def _run_state(run_dir: Path, view: JournalView, mode: str) -> tuple[str, str]:
    """Running (a live process holds the lock), stopped (its summary is newer than its
    journal), incomplete (marked so) or died (none of these)."""
    if view.writer is not None:
        pid, command = view.writer
        return "running", f"{describe_holder(pid, command)} holds it"
    incomplete = run_dir / INCOMPLETE
    if incomplete.is_file():
        try:
            why = incomplete.read_text(encoding="utf-8", errors="replace").strip()
        except OSError as exc:
            why = f"(cannot read {INCOMPLETE}: {exc.strerror})"
        first = why.splitlines()[0] if why else "no reason given"
        return "incomplete", f"it ended without writing all its files: {first}"
    summary = run_dir / SUMMARY_FILE
    # A summary older than the journal's last write is a stop's that was resumed since:
    # the resumed run did not end cleanly (the journal is closed before the summary).
    files = (view.path, view.path.with_name(DB_NAME + "-wal"))
    journal_ms = max((p.stat().st_mtime_ns for p in files if p.exists()), default=0)
    if summary.is_file() and summary.stat().st_mtime_ns >= journal_ms:
        return "stopped", f"it ended and wrote {SUMMARY_FILE}"
    then = (
        "a rehearsal cannot be resumed (its venue ended with it): rehearse again"
        if mode == "rehearsal"
        else f"`orchestrator run --resume {run_dir}` carries it on"
    )
    return "died", (
        f"no process holds it and it wrote no {SUMMARY_FILE} after its last journal write "
        f"(killed, crashed, or the machine stopped); {then}"
    )


def _config(text: str, problems: list[str]) -> Config | None:
    if not text:
        return None
    try:
        return config_file.decode(text, Config)
    except config_file.Invalid as exc:
        problems.append(
            f"the journal's config cannot be read ({exc}): figures that need it omitted"
        )
        return None


def last_cycle(text: str | None, problems: list[str]) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        problems.append(f"the journal's {LAST_CYCLE} cannot be read")
        return None
    return value


def _summary(run_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path} cannot be read: {exc}")
        return None
    if not isinstance(value, dict):
        return None
    keep = ("interrupted", "ending_equity", "ledger_balances", "end")
    return {k: value[k] for k in keep if k in value}


def _quote(positions: list[Position], currency: str | None, config: Config | None) -> str:
    if currency is not None:
        return currency
    if positions:
        return positions[0].spot_symbol.partition("/")[2] or "USDT"
    if config is not None and config.pair_list:
        return config.pair_list[0].spot.partition("/")[2] or "USDT"
    return "USDT"


def last_prices(ledger: list[LedgerEntry], cycle: dict[str, Any] | None) -> dict[str, Price]:
    """Each symbol's last price the journal holds: a mark (what was left open, valued at
    a run's end) not older than the last cycle's; else the last cycle's (the venue's
    prices, journaled after the cycle's fills: never older than them, whatever their
    times say, as a live run's clock is set again from the venue's at every cycle);
    else the last fill."""
    marks: dict[str, Price] = {}
    fills: dict[str, Price] = {}
    for e in ledger:
        if e.price and e.kind in ("fill", "mark"):
            latest = marks if e.kind == "mark" else fills
            was = latest.get(e.symbol)
            if was is None or e.time_ms >= was.time_ms:
                latest[e.symbol] = Price(e.price, e.time_ms, e.kind)
    found: dict[str, Price] = {}
    if cycle is not None:
        for symbol, (price, time_ms) in dict(cycle.get("prices", {})).items():
            value = _decimal(price)
            if value is not None:
                found[symbol] = Price(value, int(time_ms), "venue")
    for symbol, mark in marks.items():
        was = found.get(symbol)
        if was is None or mark.time_ms >= was.time_ms:
            found[symbol] = mark
    for symbol, fill in fills.items():
        was = found.get(symbol)
        if was is None or (was.source == "mark" and fill.time_ms > was.time_ms):
            found[symbol] = fill
    return found


def _prices_from(prices: dict[str, Price], rows: list[PositionStatus]) -> str:
    used = {
        price.source
        for row in rows
        for price in (row.spot_price, row.perp_price)
        if price is not None and row.unrealised is not None
    }
    words = {
        "venue": "the venue's prices at the run's last cycle",
        "mark": "the marks at the run's end",
        "fill": "the last fill prices (the journal has no later price)",
    }
    return "; ".join(words[s] for s in ("venue", "mark", "fill") if s in used)


def _account(
    cycle: dict[str, Any] | None,
    snap: Any,
    quote: str,
    leverage: Decimal | None,
) -> dict[str, Any] | None:
    """What the account itself last said: the venue's quote balance at the last cycle,
    or the paper executor's wallet."""
    if cycle is not None and isinstance(cycle.get("balance"), dict):
        balance = cycle["balance"]
        return {
            "source": "venue",
            "time_ms": _int(cycle.get("contact_ms")),
            "currency": balance.get("currency", quote),
            "total": _decimal(balance.get("total")),
            "available": _decimal(balance.get("available")),
            "equity": _decimal(cycle.get("equity")),
        }
    if snap is not None:
        wallet = snap.wallet.get(quote, ZERO)
        margin = ZERO
        if leverage:
            margin = sum((abs(s) * e / leverage for s, e in snap.perps.values()), ZERO)
        return {
            "source": "paper wallet",
            "time_ms": snap.time_ms,
            "currency": quote,
            "total": wallet,
            "available": wallet - margin,
            "coins": {k: v for k, v in snap.wallet.items() if k != quote and v},
        }
    return None


def paused_pairs(text: str | None) -> dict[str, tuple[str | None, str | None]]:
    """The PAUSED meta: per pair, (why it opens nothing, why it closes nothing); what
    cannot be read is left out."""
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    paused: dict[str, tuple[str | None, str | None]] = {}
    for pair, whys in found.items():
        if isinstance(whys, list) and len(whys) == 2:
            opens, closes = (w if isinstance(w, str) and w else None for w in whys)
            if opens or closes:
                paused[str(pair)] = (opens, closes)
    return paused


def _pauses(meta: dict[str, str]) -> list[Pause]:
    found = []
    for key, line in meta.items():
        if not key.startswith(PAUSE_PREFIX):
            continue
        label, _, n = key[len(PAUSE_PREFIX) :].rpartition(" ")
        found.append(Pause(label, _int(n) or 0, line))
    return sorted(found, key=lambda p: (p.label, p.n))


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def age_text(ms: int | None, *, seconds: bool = False) -> str:
    """A duration as a person reads it: 2d 5h, 3h 07m, 12m (with ``seconds``: 12m 04s)."""
    if ms is None:
        return "-"
    minutes = ms // 60_000
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {ms // 1000 % 60:02d}s" if seconds else f"{minutes}m"


def time_text(time_ms: int | None) -> str:
    if time_ms is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return str(time_ms)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
