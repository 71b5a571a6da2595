"""What the trader's alerts say of a position (only a run with alerts asks): each an
(event, text) pair for orchestrator/alerts, or None when there is nothing to say."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from orchestrator.models import ZERO, Position
from orchestrator.trading.ledger import LedgerEntry
from orchestrator.trading.run import PairRun

Alert = tuple[str, str]  # (event, text)


def opened(run: PairRun, position: Position, reason: str, quote: str) -> Alert:
    qty = position.quantity
    spot, perp = position.spot_entry_price or ZERO, position.perp_entry_price or ZERO
    return (
        "opened",
        f"{run.name}: {position.id} opened: long {position.spot_qty} {run.spot.symbol} at "
        f"{spot}, short {position.perp_qty} {run.perp.symbol} at {perp} (about "
        f"{qty * spot:,.2f} {quote} a leg)" + (f"; why: {reason}" if reason else ""),
    )


def failed_open(run: PairRun, position: Position, cost: Decimal, quote: str) -> Alert | None:
    """An open that did not happen: unwound to flat at ``cost``, or left exposure."""
    if position.state == "rolled_back":
        return (
            "rolled_back",
            f"{run.name}: {position.id} did not open and was unwound to flat, at a cost "
            f"of {cost:,.2f} {quote}: {position.reason}",
        )
    if position.state == "needs_attention":
        return (
            "needs_attention",
            f"{run.name}: {position.id} did not open and could not be unwound: "
            f"{exposure(position)} left: {position.reason}; the exit rules will try to close it",
        )
    return None


def closed(
    run: PairRun, position: Position, entries: Sequence[LedgerEntry], quote: str
) -> Alert | None:
    """A close tried: done (with the position's PnL from ``entries``, the ledger's), or
    failed with exposure left."""
    why = run.exits[-1][1] if run.exits else "asked"
    if position.state == "closed":
        pnl = sum(
            (
                e.amount
                for e in entries
                if e.position_id == position.id and e.kind in ("fill", "fee", "funding")
            ),
            ZERO,
        )
        return (
            "closed",
            f"{run.name}: {position.id} closed ({why}); its PnL {pnl:+,.2f} {quote} "
            "(fills, fees and funding)",
        )
    if position.state == "needs_attention":
        return (
            "needs_attention",
            f"{run.name}: {position.id}'s close ({why}) failed: {exposure(position)} "
            f"left: {position.reason}",
        )
    return None


def exposure(position: Position) -> str:
    return f"spot {position.spot_qty} {position.spot_symbol}, perp short {position.perp_qty}"
