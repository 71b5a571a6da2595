"""Pairs ranked by expected net annualised yield, and which the universe leaves out.

The formula (docs/guides/universe.md says it in words), per pair, from its settled
rates within the history span (rates per the perp's own funding interval, h hours):

    gross   = mean(rates) * 8760 / h            funding a year, fraction of one leg
    cost    = round_trip * 8760 / horizon_hours  the round trip, spread over the horizon
    net     = gross - cost
    round_trip = 2 * (fees.spot_taker + fees.perp_taker) + 4 * paper.slippage

Decimal throughout. Ties rank by market id. A pair is left out (and said why) when
the universe excludes it, when fewer than ``min_history_days`` of settlements are
known, below ``min_turnover_usd``, or beyond ``max_pairs`` by turnover; ``include``
keeps a pair in whatever its history, turnover or rank by turnover.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from orchestrator.config import UniverseSettings
from orchestrator.settings import FeeSettings
from orchestrator.universe.facts import PairFacts

HOURS_PER_YEAR = Decimal(8760)
DAY_MS = 86_400_000
ZERO = Decimal(0)


class Ranked(msgspec.Struct, frozen=True):
    facts: PairFacts
    count: int  # settled rates in the span
    share_positive: Decimal | None  # of those, the share above zero
    mean: Decimal | None  # per funding interval
    deviation: Decimal | None  # population standard deviation, per interval
    longest_negative: int  # settlements in a row below zero
    gross: Decimal | None  # annualised funding
    cost: Decimal  # the round trip, annualised over the horizon
    net: Decimal | None  # gross - cost: what the rank is by
    left_out: str | None = None  # why the universe leaves it out; None: considered


def round_trip_cost(fees: FeeSettings, slippage: Decimal) -> Decimal:
    """Taker fees and slippage on four fills (both legs in and out), as a fraction of
    one leg's notional: the strategy's own (strategy/funding.py)."""
    return 2 * (fees.spot_taker + fees.perp_taker) + 4 * slippage


def longest_negative_run(rates: Sequence[Decimal]) -> int:
    longest = run = 0
    for rate in rates:
        run = run + 1 if rate < ZERO else 0
        longest = max(longest, run)
    return longest


def measure(facts: PairFacts, cost: Decimal) -> Ranked:
    """The pair's history figures and expected net yield (no universe filter)."""
    rates = [rate for _, rate in facts.rates]
    n = len(rates)
    if not n:
        return Ranked(facts, 0, None, None, None, 0, None, cost, None)
    mean = sum(rates, ZERO) / n
    deviation = (sum(((r - mean) ** 2 for r in rates), ZERO) / n).sqrt()
    positive = Decimal(sum(1 for r in rates if r > ZERO)) / n
    gross = mean * HOURS_PER_YEAR / facts.interval_hours
    return Ranked(
        facts, n, positive, mean, deviation, longest_negative_run(rates), gross, cost, gross - cost
    )


def rank(
    all_facts: Sequence[PairFacts],
    universe: UniverseSettings,
    fees: FeeSettings,
    slippage: Decimal,
    now_ms: int,
) -> list[Ranked]:
    """Every pair measured: those considered first, best net yield first (a pair with
    no settled rate in the span last), then those left out, each with why."""
    cost = round_trip_cost(fees, slippage) * HOURS_PER_YEAR / universe.horizon_hours
    measured = [measure(f, cost) for f in all_facts]
    included = set(universe.include)
    considered: list[Ranked] = []
    out: list[Ranked] = []
    for r in measured:
        why = _left_out(r.facts, universe, now_ms, r.facts.market in included)
        if why is None:
            considered.append(r)
        else:
            out.append(msgspec.structs.replace(r, left_out=why))
    # max_pairs: the included first, then the most turnover.
    considered.sort(key=lambda r: (r.facts.market not in included, -r.facts.turnover_24h))
    beyond = considered[universe.max_pairs :]
    considered = considered[: universe.max_pairs]
    out += [
        msgspec.structs.replace(
            r, left_out=f"beyond max_pairs {universe.max_pairs} by 24 h turnover"
        )
        for r in beyond
    ]
    considered.sort(key=_by_yield)
    out.sort(key=_by_yield)
    return considered + out


def unknown_includes(
    universe: UniverseSettings, markets: Collection[str], where: str
) -> str | None:
    """The warning for ``universe.include`` naming pairs not among ``markets`` (those
    ``where`` holds): never considered, whatever the include says; None when it names none."""
    missing = [market for market in universe.include if market not in markets]
    if not missing:
        return None
    return f"universe.include: {', '.join(missing)} not in {where}: never considered"


def _by_yield(r: Ranked) -> tuple[bool, Decimal, str]:
    return (r.net is None, -(r.net or ZERO), r.facts.market)


def _left_out(facts: PairFacts, u: UniverseSettings, now_ms: int, included: bool) -> str | None:
    if facts.market in u.exclude:
        return "excluded"
    ends = facts.data_ends_ms
    if ends is not None and now_ms - ends > DAY_MS:  # recorded data that stopped before
        when = datetime.fromtimestamp(ends / 1000, UTC)
        return f"its data ends at {when:%Y-%m-%d %H:%M} UTC, over a day before the instant"
    if included:
        return None
    first = facts.first_settled_ms
    if u.min_history_days and (first is None or now_ms - first < u.min_history_days * DAY_MS):
        known = "none" if first is None else f"{(now_ms - first) / DAY_MS:.1f} days"
        return f"funding history {known}, under min_history_days {u.min_history_days}"
    if facts.turnover_24h < u.min_turnover_usd:
        return f"24 h turnover {facts.turnover_24h:,.0f} under min_turnover_usd"
    return None
