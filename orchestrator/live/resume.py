"""Carrying a live run on after it stopped or crashed (``orchestrator run --resume``).

Before anything is sent, in order: every position the journal left unfinished is
restored at its recorded state; every order whose outcome the journal lacks is looked
up on the venue by its client order id (never sent again); then what the venue holds
is compared, pair by pair, with what the journal's positions hold. Where they agree,
the run carries on: positions caught mid-open, mid-rollback or mid-close are finished,
open ones keep collecting funding. Where they do not, it stops with both sides shown
and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from machines import FINAL_STATES
from orchestrator.journal.reader import Records
from orchestrator.journal.schema import Intent
from orchestrator.live.preflight import StartupError
from orchestrator.live.run import START_MS, STARTING_BALANCE, LiveRun
from orchestrator.models import ZERO, Position
from orchestrator.run.ledger import LedgerEntry
from orchestrator.run.trader import PairRun


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
        )

    @property
    def unfinished(self) -> list[Position]:
        return [p for p in self.positions if p.state not in FINAL_STATES]


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
    if any(not agree for *_, agree in rows):
        raise Disagreement("the venue and the journal disagree; nothing was sent:\n" + table(rows))
    run.take_back(journaled.positions, journaled.ledger)
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
