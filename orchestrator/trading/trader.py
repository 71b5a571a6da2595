"""What a run does with its market, whatever feeds it: per pair, the strategy's
decisions (and under pairs: auto, the ranking's: the best pairs first, rotation), one
position at a time through the PositionManager (holding.py), and the money (books.py).

The replay (replay/engine.py) feeds it recorded data on the data's clock; a live run
(orchestrator/live) feeds it the venue's prices on the wall clock. Both use these
same lines: the strategy, the manager and the accounting are the same objects in
paper and live mode; only the executor and the market source differ.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property

from orchestrator.trading.holding import Holder
from orchestrator.trading.ranking import Ranking
from orchestrator.trading.run import HOUR_MS, PairRun

Rule = Callable[[Decimal, Decimal], str | None]  # (spot, perp) -> a reason, or None
# A pair's decision, looked up once: (run, quiet(holding) or None, entry, exit, spot, perp)
Decider = tuple[PairRun, Callable[[bool], bool] | None, Rule, Rule, str, str]


def ranked(reason: str, net: Decimal) -> str:
    """An open's reason under pairs: auto."""
    return f"{reason}; ranked at {net:.2%}/y net"


class _Wanting:
    """The entries of an iterator, taken from it only as far as they are asked for."""

    def __init__(self, source: Iterator[tuple[PairRun, str]]) -> None:
        self._source = source
        self._taken: list[tuple[PairRun, str]] = []

    def count(self, most: int | None = None) -> int:
        """How many there are, counting no further than ``most`` (None: all)."""
        taken = self._taken
        while most is None or len(taken) < most:
            found = next(self._source, None)
            if found is None:
                break
            taken.append(found)
        return len(taken) if most is None else min(len(taken), most)

    def entry(self, k: int) -> tuple[PairRun, str]:
        """The k-th (count(k + 1) > k first)."""
        return self._taken[k]


class Trader(Holder):
    """The pairs' decisions: a driver feeds it prices and time (``clock_ms``), asks
    ``would_act`` and calls ``decide``; what it decides, Holder carries out."""

    @cached_property
    def _names(self) -> list[str]:
        return [run.name for run in self.pairs]

    @cached_property
    def _deciders(self) -> list[Decider]:
        """Per pair, looked up once (a replay asks at every instant): its strategy's
        quiet(holding) when it has one (strategy/funding.py), entry and exit rules, and
        its symbols."""
        return [
            (
                run,
                getattr(run.strategy, "quiet", None),
                run.strategy.entry_reason,
                run.strategy.exit_reason,
                run.spot.symbol,
                run.perp.symbol,
            )
            for run in self.pairs
        ]

    # -- decisions

    def would_act(self, touched: Sequence[int]) -> bool:
        """Whether ``decide(touched)`` could do anything: some pair not ended whose
        strategy, asked about its usable prices, gives a reason. Changes nothing; a
        replay asks it at every instant and calls decide only then."""
        deciders, prices = self._deciders, self.ticker.get_prices
        for i in touched:
            run, quiet, enter, leave, spot, perp = deciders[i]
            if run.ended:
                continue
            position = run.position
            if position is not None and position.state == "needs_attention":
                if not (run.busy or run.close_paused):
                    return True  # its exposure is closed, whatever the rules say
                continue
            holding = position is not None
            if quiet is not None and quiet(holding):
                continue
            if not holding and self._limited(run):
                continue  # decide would find no room for it
            found = prices(spot, perp)
            if found is None:
                continue
            margin = run.margin_line
            if holding and margin is not None and margin.due(found[1], run.margin_warned):
                return True  # the margin guard acts, or warns
            if (leave if holding else enter)(*found) is not None:
                return True
        return False

    async def decide(self, touched: Collection[int]) -> None:
        if self.ranking is not None:
            await self._decide_ranked(touched, self.ranking)
            return
        for i in sorted(touched):
            run = self.pairs[i]
            if run.ended or run.busy:
                continue
            if run.position is None and self._limited(run):
                continue  # (as _no_room below would say, without a price looked up)
            spot = self.ticker.get_price(run.spot.symbol)
            perp = self.ticker.get_price(run.perp.symbol)
            if spot is None or perp is None:
                continue  # missing or stale: no decision on prices that are not there
            if run.position is None:
                if run.open_paused or self.opening_stopped:
                    continue
                reason = run.strategy.entry_reason(spot, perp)
                if reason is None or self._starved(run) or self._no_room(run):
                    continue
                if not self._occupied(run) and await self._listed(run):
                    await self._act(run, self._open(run, reason))
            elif not run.close_paused:
                reason = (
                    self._stranded(run)
                    or self._margin_guard(run, perp)
                    or run.strategy.exit_reason(spot, perp)
                )
                if reason is not None:
                    await self._act(run, self._close(run, reason))

    async def _decide_ranked(self, touched: Collection[int], ranking: Ranking) -> None:
        """pairs: auto: the exits first (they free capital), then the opens the universe
        considers now, best expected net yield first."""
        candidates: list[tuple[Decimal, str, int]] = []  # (-net, name, index): unique names
        now = self.clock_ms
        deciders, names = self._deciders, self._names
        for i in sorted(touched):
            run, quiet = deciders[i][0], deciders[i][1]
            if run.ended or run.busy:
                continue
            if run.position is None:
                if quiet is not None and quiet(False):
                    continue  # no price could make it open: not even looked up
                if run.open_paused or self.opening_stopped or i not in ranking.considered(now):
                    continue
                net = ranking.net_of(i, now)
                if net is not None and net > 0:
                    candidates.append((-net, names[i], i))
                continue
            spot = self.ticker.get_price(run.spot.symbol)
            perp = self.ticker.get_price(run.perp.symbol)
            if spot is None or perp is None or run.close_paused:
                continue
            reason = (
                self._stranded(run)
                or self._margin_guard(run, perp)
                or run.strategy.exit_reason(spot, perp)
            )
            if reason is not None:
                await self._act(run, self._close(run, reason))
        candidates.sort()
        # The candidates whose strategy would open at the prices now, in rank order, asked
        # only as far as the opens and the rotation need: at a universe's cap, the best
        # one or two, not every pair (in a replay the prices cannot move meanwhile).
        wanting = _Wanting(self._would_open(candidates))
        cap = self.risk.max_open_positions
        if self.concurrent:
            # The opens go out together (live): each takes an equal share of the balance
            # as it is now, none spent yet; only as many as risk.max_open_positions has room for.
            if cap is None:
                slots = wanting.count()
            else:
                room = cap - self._open_exposure()[0]
                slots = min(wanting.count(max(room, 0)), room)
            for k in range(max(slots, 0)):
                if self.opening_stopped:
                    break
                run, reason = wanting.entry(k)
                await self._open_ranked(run, reason, slots)
        else:
            k = 0
            while wanting.count(k + 1) > k:
                # One after another: what is left, shared.
                if cap is None:
                    share = wanting.count() - k
                else:
                    room = cap - self._open_exposure()[0]
                    share = min(wanting.count(k + max(room, 0)) - k, room)
                if share < 1 or self.opening_stopped:
                    break
                run, reason = wanting.entry(k)
                await self._open_ranked(run, reason, share)
                k += 1
        k = 0
        while wanting.count(k + 1) > k:
            run, reason = wanting.entry(k)
            if run.position is None and not run.busy:
                # One change at a time: no rotation while an open or close is under way.
                if not self.acting() and not self.opening_stopped:
                    await self._rotate(run, reason, ranking)
                break
            k += 1

    def _would_open(
        self, candidates: Sequence[tuple[Decimal, str, int]]
    ) -> Iterator[tuple[PairRun, str]]:
        """Each candidate whose strategy gives a reason to open at the prices now, with
        the reason (its rank written in)."""
        price = self.ticker.get_price
        for net, _, i in candidates:
            run = self.pairs[i]
            spot, perp = price(run.spot.symbol), price(run.perp.symbol)
            if spot is None or perp is None:
                continue
            reason = run.strategy.entry_reason(spot, perp)
            if reason is not None:
                yield run, ranked(reason, -net)

    async def _open_ranked(self, run: PairRun, reason: str, share: int) -> None:
        self._share = share
        try:
            if self._starved(run) or self._no_room(run) or self._occupied(run):
                return
            if not await self._listed(run):
                return
            budget = self._budget()
            if not self.manager.can_size(run.spot, run.perp, budget):
                # Said once; no rejected open now, nor on every balance change after.
                self._starve(
                    run,
                    f"no quantity within {budget:.2f} {self.quote} meets both instruments' "
                    "minimums",
                    "one does",
                )
                return
            # An open the limits would refuse is not sent: the next best may fit.
            if self.manager.can_size(run.spot, run.perp, budget, limits=True):
                await self._act(run, self._open(run, reason))
        finally:
            self._share = None

    async def _rotate(self, better: PairRun, reason: str, ranking: Ranking) -> None:
        """Close the held position expected to earn least for ``better``, when the
        funding ``better`` is expected to earn beats it by both round trips and
        universe.rotate_margin (annualised), and it has been held the cool-down."""
        now, u = self.clock_ms, ranking.u
        expected = ranking.gross(better, now)
        if expected is None:
            return
        held_since = now - u.rotate_cooldown_hours * HOUR_MS
        worst: tuple[Decimal, PairRun] | None = None
        for run in self.pairs:
            position = run.position
            if (
                position is None
                or run.busy
                or run.close_paused
                or position.state != "validated"
                or position.opened_at is None
                or position.opened_at.timestamp() * 1000 > held_since
            ):
                continue
            gross = ranking.gross(run, now)
            if gross is not None and (worst is None or gross < worst[0]):
                worst = (gross, run)
        if worst is None:
            return
        gross, victim = worst
        costs = 2 * ranking.cost
        gain = expected - gross
        if gain <= costs + u.rotate_margin:
            return
        assert victim.position is not None
        line = (
            f"rotation: {victim.name} closed for {better.name}: funding expected "
            f"{expected:.2%}/y against {gross:.2%}/y, a gain of {gain:.2%}/y beyond both round "
            f"trips' {costs:.2%}/y and universe.rotate_margin {u.rotate_margin:.2%}/y"
        )
        when = datetime.fromtimestamp(now / 1000, UTC)
        self.rotations.append(f"{when:%Y-%m-%d %H:%M} UTC: {line}")
        if self.journal is not None:
            self.journal.record_meta(f"rotation {self.label} {len(self.rotations)}", line)
        facts = {
            "fo.rotation.closed": victim.name,
            "fo.rotation.opened": better.name,
            "fo.rotation.closed_expected": str(gross),
            "fo.rotation.opened_expected": str(expected),
            "fo.rotation.costs": str(costs),
            "fo.rotation.margin": str(u.rotate_margin),
        }
        self.manager.explain(victim.position, "rotation", facts)
        self.say(line)
        await self._act(victim, self._close(victim, f"rotation: for {better.name}"))
        if victim.position is None:  # closed: its capital goes to the better pair
            await self._open_ranked(better, f"{reason}; rotated in for {victim.name}", 1)
            if better.position is not None:
                self.manager.explain(better.position, "rotation", facts)
