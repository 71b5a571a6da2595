"""Carrying a live run on after it stopped or crashed (``orchestrator run --resume``).

Before anything is sent, in order: every position the journal left unfinished is
restored at its recorded state; every order whose outcome the journal lacks is looked
up on the venue by its client order id (never sent again); then what the venue holds
is compared, pair by pair, with what the journal's positions hold. Where they agree,
the run carries on: positions caught mid-open, mid-rollback or mid-close are finished,
open ones keep collecting funding. Where the venue holds less of an open position than
the journal, and the venue's own record says why (trades the run did not make: by hand,
auto-deleveraging, a liquidation; or coins moved out), that is a change made while the
run was down: the run carries on and takes it in as it would have live, then closes the
rest. Any other difference stops it with both sides shown, and nothing is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from machines import FINAL_STATES
from orchestrator.exceptions import OrderOutcomeUnknown
from orchestrator.execution.live import LiveExecutor
from orchestrator.execution.paper import PaperExecutor
from orchestrator.journal.reader import Records
from orchestrator.journal.schema import Intent
from orchestrator.journal.status import PAUSED, STRATEGY_NOW, paused_pairs
from orchestrator.live.auto import CHOSEN_PAIRS, journaled_pairs
from orchestrator.live.preflight import StartupError
from orchestrator.live.run import (
    ADOPTABLE,
    RUN_STATE,
    START_MS,
    STARTING_BALANCE,
    LiveRun,
)
from orchestrator.live.words import outside as outside_words
from orchestrator.models import ZERO, Holdings, Position, Side
from orchestrator.position.outside import outside_change
from orchestrator.trading.ledger import LedgerEntry
from orchestrator.trading.run import PairRun


class Disagreement(StartupError):
    """The venue and the journal disagree after every open order was looked up: the run
    does not trade on it, and sends nothing."""


@dataclass
class Journaled:
    """What a live run's journal holds, as a resumed run needs it."""

    positions: list[Position]  # every position, in the order first recorded
    orders: dict[str, list[Intent]]  # each position's orders, in the order sent
    ledger: list[LedgerEntry]
    starting_balance: Decimal | None
    start_ms: int | None
    ledgered: set[str] = field(default_factory=set)  # client order ids the ledger has
    quotes: dict[str, Decimal] = field(default_factory=dict)  # by client order id
    # How the run being resumed ended: "running" (it died: killed, crashed, its machine
    # lost), "stopped", or None (a journal from before this was recorded).
    ended: str | None = None
    # pairs: auto: the perps the run chose at its start (live/auto.py); None: listed pairs.
    chosen: list[str] | None = None
    # The pairs paused when it stopped, and the thresholds set while it ran (steering.py).
    paused: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    strategy_now: dict[str, str] | None = None

    @classmethod
    def read(cls, journal: Records, label: str) -> Journaled:
        meta = journal.meta()
        orders: dict[str, list[Intent]] = {}
        for intent in journal.orders():
            orders.setdefault(intent.position_id, []).append(intent)
        ledger = journal.ledger_entries(label)
        balance = meta.get(STARTING_BALANCE)
        start = meta.get(START_MS)
        return cls(
            positions=journal.positions(),
            orders=orders,
            ledger=ledger,
            starting_balance=None if balance is None else Decimal(balance),
            start_ms=None if start is None else int(start),
            ledgered={e.note for e in ledger if e.kind == "fee"},
            quotes={
                cid: o.quote for o in journal.orders() if (cid := o.client_order_id) and o.quote
            },
            ended=meta.get(RUN_STATE),
            chosen=journaled_pairs(meta.get(CHOSEN_PAIRS)),
            paused=paused_pairs(meta.get(PAUSED)),
            strategy_now=_settings(meta.get(STRATEGY_NOW)),
        )

    def how(self) -> str:
        """How the run being resumed had ended, as the resumed alert says it."""
        if self.ended == "running":
            return (
                "after a crash: the run had died without stopping (killed, crashed or its "
                "machine lost)"
            )
        if self.ended == "stopped":
            return "after a stop"
        return "(how it had ended is not recorded)"

    @property
    def unfinished(self) -> list[Position]:
        return [p for p in self.positions if p.state not in FINAL_STATES]


def _settings(text: str | None) -> dict[str, str] | None:
    """The STRATEGY_NOW meta (None when absent or unreadable)."""
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    return {str(k): str(v) for k, v in found.items()}


def take_back_paper(paper: PaperExecutor, journaled: Journaled) -> None:
    """A dry run's venue lived in the process that stopped: its wallet and perps are
    made again from what the journal says it filled and paid, in the order recorded.
    An order the journal has no answer for never reached it (it died with it)."""
    for position in journaled.positions:
        for intent in journaled.orders.get(position.id, []):
            if intent.result is not None:
                paper.take_back(intent.request, intent.result)
    for entry in journaled.ledger:
        if entry.kind == "funding":
            paper.take_back_funding(entry.symbol, entry.amount)


def pair_of(run: LiveRun, position: Position) -> PairRun | None:
    for pair in run.pairs:
        if (pair.spot.symbol, pair.perp.symbol) == (position.spot_symbol, position.perp_symbol):
            return pair
    return None


async def reconcile(run: LiveRun, journaled: Journaled) -> None:
    """Restore, look up, compare; then the run holds what the journal held and carries
    the restored positions on once it starts. Disagreement if they cannot be squared:
    nothing sent. (The lookups cancel an order found still working, as a run does when
    an open or close ends: the only request that may leave before the comparison.)"""
    restored: list[tuple[PairRun, Position]] = []
    for position in journaled.unfinished:
        pair = pair_of(run, position)
        if pair is None:
            raise Disagreement(
                f"position {position.id} ({position.spot_symbol}/{position.perp_symbol}, "
                f"{position.state}) is on a pair the config no longer trades; nothing was sent"
            )
        orders = [(o.request, o.result, o.is_final) for o in journaled.orders.get(position.id, [])]
        run.manager.restore(position, pair.spot, pair.perp, orders)
        restored.append((pair, position))
        # The pair holds it from now on: valued and marked even if the run stops
        # before its first cycle carries it on.
        pair.position = position
    if run.paper is not None:
        take_back_paper(run.paper, journaled)
    unknown = await run.manager.settle_restored()
    if unknown:
        ids = ", ".join(r.client_order_id for r in unknown)
        raise Disagreement(
            f"the venue could not tell what became of {ids} (asked until it could no longer "
            "accept them); the journal cannot be squared with the venue: nothing was sent. "
            "Resume again once the venue answers."
        )
    await run.live_account.refresh()
    rows = compare(run, restored)
    changed = await changed_outside(run, restored, {name for name, *_, agree in rows if not agree})
    if any(not agree and name not in changed for name, *_, agree in rows):
        raise Disagreement("the venue and the journal disagree; nothing was sent:\n" + table(rows))
    for name, what in changed.items():
        run.say(f"resume: {name}: changed outside the run while it was stopped: {what}")
    run.take_back(journaled.positions, journaled.ledger)
    for line in run.restore(journaled.paused, journaled.strategy_now):
        run.say(f"resume: {line}")
    if journaled.starting_balance is not None:
        run.starting_balance = journaled.starting_balance
    run.start_ms = journaled.start_ms
    # Finished positions whose last fills the ledger missed (the run stopped between
    # the two): their rows are written when the run carries on, as the others'.
    for position in journaled.positions:
        if position.state in FINAL_STATES and any(
            r.client_order_id not in journaled.ledgered and r.filled_qty for r in position.orders
        ):
            pair = pair_of(run, position)
            if pair is not None:
                restored.append((pair, position))
    run.restored, run.ledgered, run.quotes = restored, journaled.ledgered, journaled.quotes


async def changed_outside(
    run: LiveRun, restored: list[tuple[PairRun, Position]], differing: set[str]
) -> dict[str, str]:
    """Of the ``differing`` pairs, those whose one open position the venue holds less of
    because of what its own record shows (trades the run did not send, coins moved out),
    or more perp short sold by trades the run did not send (the owner's own): pair -> what
    changed. The first cycle takes a change in, as a live run does."""
    changed: dict[str, str] = {}
    if not isinstance(run.executor, LiveExecutor):
        return changed  # a dry run's paper account changes by its own orders only
    for pair in run.pairs:
        held = [p for other, p in restored if other is pair]
        if pair.name not in differing or len(held) != 1 or held[0].state not in ADOPTABLE:
            continue
        position = held[0]
        perp = run.live_account.get_perp_position(pair.perp.symbol)
        now = Holdings(
            spot=run.live_account.available_balance(pair.spot.base),
            perp_short=-perp.size if perp.size < 0 else ZERO,
        )
        if perp.size > 0:
            continue  # long: nothing this run could have left
        began = position.created_at or position.opened_at
        since = int(began.timestamp() * 1000) if began else run.start_ms or 0
        try:
            trades = await run.executor.outside_trades(
                (pair.spot, pair.perp), since, {r.order_id for r in position.orders}
            )
        except OrderOutcomeUnknown as exc:
            raise Disagreement(
                f"{pair.name}: the venue holds less than the journal, and its executions, "
                f"which would say why, could not be read: {exc}; nothing was sent. Resume "
                "again once the venue answers."
            ) from None
        more = now.perp_short - position.perp_qty
        if more > 0:
            # A short the owner added by hand is theirs, as a live run leaves it.
            added = sum(
                (
                    t.filled_qty
                    for t in trades
                    if t.category is pair.perp.category and t.side is Side.SELL
                ),
                ZERO,
            )
            if added >= more and now.spot >= position.spot_qty:
                changed[pair.name] = (
                    f"the venue holds {more} more perp short than the journal, sold by trades "
                    "the run did not make: the owner's own, left alone"
                )
            continue
        change = outside_change(position, trades, now)
        if change.any and change.unexplained == 0:
            words = [outside_words(t) for t in change.trades]
            if change.moved_out:
                words.append(f"{change.moved_out} of the spot moved out of the account")
            changed[pair.name] = (
                "; ".join(words) + "; taken into the record and the rest closed once the run starts"
            )
    return changed


Row = tuple[str, str, Decimal, Decimal, bool]  # pair, what, journal, venue, agree


def compare(run: LiveRun, restored: list[tuple[PairRun, Position]]) -> list[Row]:
    """Per pair with a restored position: the perp short must be what the journal's
    positions hold, exactly; the spot coin at least that (the account may hold more of
    it than the run bought: not the run's)."""
    rows: list[Row] = []
    for pair in run.pairs:
        held = [p for other, p in restored if other is pair]
        if not held:
            continue
        perp = sum((p.perp_qty for p in held), ZERO)
        spot = sum((p.spot_qty for p in held), ZERO)
        venue_perp = -run.live_account.get_perp_position(pair.perp.symbol).size
        venue_spot = run.live_account.balance(pair.spot.base)
        rows.append(
            (pair.name, f"perp {pair.perp.symbol} short", perp, venue_perp, venue_perp == perp)
        )
        rows.append(
            (pair.name, f"spot {pair.spot.base} held", spot, venue_spot, venue_spot >= spot)
        )
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"  {'pair':10} {'what':28} {'journal':>18} {'venue':>18}"]
    for pair, what, journal, venue, agree in rows:
        mark = "" if agree else "   <- differs"
        lines.append(f"  {pair:10} {what:28} {journal!s:>18} {venue!s:>18}{mark}")
    return "\n".join(lines)
