"""What a live run says of itself: to its operator (the heartbeat, the line when it
starts trading), in its alerts (how it stopped, the daily summary), and of what changed
outside it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from machines import FINAL_STATES
from orchestrator.live.contact import VenueContact
from orchestrator.models import OUTSIDE_KINDS, Category, OrderResult
from orchestrator.trading.run import PairRun, RunResult


def utc(ms: float) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"


def outside(result: OrderResult) -> str:
    """What an outside change was, as the venue recorded it."""
    leg = "spot" if result.category is Category.SPOT else "perp"
    if result.order_id == "moved-out":
        return f"{result.filled_qty} of the spot moved out of the account (no trade)"
    what = OUTSIDE_KINDS.get(result.exec_type, result.exec_type or "a trade")
    return (
        f"{what}: {leg} {result.side.value} {result.filled_qty} at {result.avg_price} "
        f"(execution {result.order_id}, fee {result.fee} {result.fee_currency})"
    )


def trading(pairs: Sequence[PairRun]) -> str:
    """The pairs traded and the positions held."""
    names = ", ".join(run.name for run in pairs if not run.ended) or "no pair"
    held = [f"{run.position.id} {run.position.state}" for run in pairs if run.position]
    return f"trading {names}" + (f"; holding {', '.join(held)}" if held else "")


def stopped(result: RunResult) -> str:
    """How the run ended, and what it leaves (the last alert)."""
    if result.interrupted:
        what = f"Stopped: {result.stopped or 'asked to stop'}"
        if result.refused:
            what = f"Stopped: {result.refused}; {result.stopped}"
    else:
        what = "Ended: the end of its window; what was held is closed"
    funding = result.ledger.totals()["funding"]
    left = [f"{p.id} {p.state}" for p in result.positions if p.state not in FINAL_STATES]
    return (
        f"{what}. Equity {result.ending_equity:,.2f} {result.quote} (from "
        f"{result.starting_balance:,.2f}); funding {funding:+,.2f}; positions left: "
        f"{', '.join(left) or 'none'}"
    )


def heartbeat(
    pairs: Sequence[PairRun],
    venue_ms: int,
    equity: Decimal,
    funding: Decimal,
    quote: str,
    contact: VenueContact,
) -> str:
    """Where the run stands, in one line."""
    venue = datetime.fromtimestamp(venue_ms / 1000, UTC)
    states = Counter(run.position.state for run in pairs if run.position is not None)
    held = ", ".join(f"{state} {n}" for state, n in sorted(states.items())) or "none"
    line = (
        f"heartbeat: venue time {venue:%Y-%m-%d %H:%M:%S} UTC; equity {equity:,.2f} {quote}; "
        f"positions: {held}; funding {funding:+,.2f} {quote}; last venue contact "
        f"{contact.last_contact()}"
    )
    if contact.down:
        line += f"; the venue is unreachable: {contact.cause}"
    waiting = []
    for run in pairs:
        reason = run.open_paused or (run.ended and "not traded") or None
        ask = getattr(run.strategy, "waiting", None)
        if reason is None and ask is not None:
            reason = ask(run.position is not None)
        if reason:
            waiting.append(f"{run.name}: {reason}")
    return line + (f"; waiting: {'; '.join(waiting)}" if waiting else "")


def daily_summary(
    pairs: Sequence[PairRun],
    now: tuple[Decimal, Decimal],
    then: tuple[int, Decimal, Decimal],
    quote: str,
    opening_stopped: str | None,
) -> str:
    """The day's summary: equity and funding ``now`` (each), against ``then`` (when,
    equity, funding: the last summary's, or the start's), the positions, what is paused."""
    equity, funding = now
    since_ms, equity_then, funding_then = then
    held = [
        f"{run.position.id} {run.position.state} ({run.position.spot_qty} {run.spot.base})"
        for run in pairs
        if run.position is not None
    ]
    paused = [f"{run.name}: {run.open_paused}" for run in pairs if run.open_paused]
    if opening_stopped:
        paused.append(f"all opening: {opening_stopped}")
    return (
        f"equity {equity:,.2f} {quote} ({equity - equity_then:+,.2f} since "
        f"{utc(since_ms)}); funding {funding - funding_then:+,.2f} since then, "
        f"{funding:+,.2f} in all; positions: {', '.join(held) or 'none'}"
        + (f"; paused: {'; '.join(paused)}" if paused else "")
    )
