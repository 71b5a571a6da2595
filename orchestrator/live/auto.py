"""``pairs: auto`` in a live run or a dry run: the pairs chosen once, at the start.

The venue's whole market is screened as ``orchestrator screen`` screens it (its public
data, universe/live.py; the formula and the filters of universe/rank.py). The run trades
the pairs the universe considers whose expected net yield is above zero, best first, at
most ``universe.max_pairs``; inside the run, opens go to the best of them as their
settlements come in, and a held position rotates to a better one (trading/ranking.py),
as in a replay.

Once, not every cycle: each pair traded costs requests at the start (its account terms,
its leverage) and every funding time, and a pair that entered and left the set within a
run would leave positions the run no longer watches. The chosen set is journaled; a
resumed run trades that same set (the positions it holds are among them), and a new run
screens again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal

from orchestrator.config import Config, Pair
from orchestrator.live.preflight import StartupError
from orchestrator.universe.live import PairFailure, UniverseError, facts_now
from orchestrator.universe.rank import rank, unknown_includes

CHOSEN_PAIRS = "universe_pairs"  # journal meta: the market ids a run chose, as JSON


@dataclass(frozen=True)
class Chosen:
    """What ``pairs: auto`` chose: the pairs, each one's settled rates in the history span
    (the ranking's history, oldest first), and the words saying why."""

    pairs: list[Pair]
    rates: dict[str, list[tuple[int, Decimal]]]  # by perp symbol
    lines: list[str]

    def journaled(self) -> str:
        return json.dumps([pair.perp for pair in self.pairs])


def journaled_pairs(text: str | None) -> list[str] | None:
    """The perp symbols a journal's CHOSEN_PAIRS holds; None when it holds none."""
    if not text:
        return None
    found = json.loads(text)
    if not isinstance(found, list) or not all(isinstance(p, str) for p in found):
        raise StartupError(f"the journal's {CHOSEN_PAIRS} is not a list of perps: {text[:200]}")
    return found


async def choose(
    exchange: object,
    config: Config,
    *,
    keep: Collection[str] = (),
    only: Collection[str] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Chosen:
    """Screen the venue now and choose the run's pairs. ``keep``: perps the run must
    trade whatever their rank (a resumed run's positions); ``only``: the perps a resumed
    run chose at its start (none other is screened or chosen). StartupError, nothing
    sent, when the market cannot be read or no pair is worth a position."""
    u = config.universe
    failures: list[PairFailure] = []
    said = [0]

    def progress(done: int, total: int, market: str) -> None:
        # A line at each quarter: hundreds of pairs' histories take a while to page in.
        if done * 4 // total > said[0]:
            said[0] = done * 4 // total
            say(f"pairs: auto: funding histories read for {done} of {total} pairs")

    try:
        facts, now_ms = await facts_now(
            exchange,
            u.history_days,
            progress=progress,
            failures=failures,
            perps=None if only is None else {*only, *keep},
        )
    except UniverseError as exc:
        raise StartupError(f"pairs: auto: live run not started, nothing sent: {exc}") from None
    ranked = rank(facts, u, config.fees, config.paper.slippage, now_ms)
    listed = {f.market for f in facts} | {f.market for f in failures}
    unknown = unknown_includes(u, listed, "the venue's market") if only is None else None
    if unknown:  # said now: also when no pair is chosen and the run is refused
        say(f"warning: pairs: auto: {unknown}")
    wanted = set(keep)
    if only is not None:  # resumed: the set chosen at the start, whatever its rank now
        chosen = [r for r in ranked if r.facts.perp in set(only) | wanted]
    else:
        chosen = []
        for r in ranked:
            worth = r.left_out is None and r.net is not None and r.net > 0
            if r.facts.perp in wanted or (worth and len(chosen) < u.max_pairs):
                chosen.append(r)
    missing = wanted - {r.facts.perp for r in chosen}
    if missing:
        raise StartupError(
            "pairs: auto: live run not started, nothing sent: the run's journal holds "
            f"positions on {', '.join(sorted(missing))}, which the venue does not list now "
            "as a spot + perp pair trading"
        )
    gone = sorted(set(only or ()) - {r.facts.perp for r in chosen})
    if not chosen:
        best = [r for r in ranked if r.net is not None][:3]
        told = "; ".join(
            f"{r.facts.market} {r.net:.2%}/y net{f' ({r.left_out})' if r.left_out else ''}"
            for r in best
            if r.net is not None
        )
        raise StartupError(
            f"pairs: auto: live run not started, nothing sent: of {len(ranked)} pairs on "
            "the venue, none the universe section lets in is expected to earn above its "
            f"round trip{f' (the best: {told})' if told else ''}; "
            "`orchestrator screen` shows the whole table"
        )
    named = ", ".join(f"{r.facts.market} {_percent(r.net)}" for r in chosen[:10])
    more = f" and {len(chosen) - 10} more" if len(chosen) > 10 else ""
    if only is not None:
        line = f"pairs: auto kept the {len(chosen)} pairs chosen at the run's start"
    else:
        line = f"pairs: auto chose {len(chosen)} of {len(ranked)} pairs"
    lines = [f"{line}, best expected net yield first: {named}{more}"]
    if gone:
        lines.append(
            f"pairs: auto: no longer traded (not listed now, or not read): {', '.join(gone)}"
        )
    if failures:
        lines.append(
            f"pairs: auto: {len(failures)} pairs could not be read and were left out: "
            + "; ".join(str(f) for f in failures[:5])
            + (f" and {len(failures) - 5} more" if len(failures) > 5 else "")
        )
    return Chosen(
        pairs=[Pair(spot=r.facts.spot, perp=r.facts.perp) for r in chosen],
        rates={r.facts.perp: list(r.facts.rates) for r in chosen},
        lines=lines,
    )


def _percent(net: Decimal | None) -> str:
    return "no history" if net is None else f"{net:.2%}/y"
