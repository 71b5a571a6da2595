"""``pairs: auto`` inside a run: each pair's expected net yield now and whether the
universe considers it now, from what the run has seen (the screen's formula,
universe/rank.py, kept up to date as settlements arrive, never recomputed whole).

Only what is known at the run's clock is read: the settlements the run has seen (a
replay's warm-up included), and the turnover of candles closed by then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from orchestrator.config import UniverseSettings
from orchestrator.settings import FeeSettings
from orchestrator.trading.run import PairRun
from orchestrator.universe.rank import DAY_MS, HOURS_PER_YEAR, round_trip_cost

ZERO = Decimal(0)
# A pair's 24 h turnover at an instant (ms), from what had closed by then.
Turnover = Callable[[int, int], Decimal]  # (pair index, time ms)


class _Window:
    """One pair's settled rates within the history span, summed as they arrive."""

    __slots__ = ("hi", "lo", "net", "total")

    def __init__(self) -> None:
        self.lo = 0  # the oldest rate inside the span, in run.funding_rates
        self.hi = 0  # rates taken in so far
        self.total = ZERO
        # The net yield of the rates in the span, worked out when they change (a rate in
        # or out), not at every instant the pair is looked at.
        self.net: Decimal | None = None


class Ranking:
    def __init__(
        self,
        runs: Sequence[PairRun],
        universe: UniverseSettings,
        fees: FeeSettings,
        slippage: Decimal,
        turnover: Turnover | None = None,
        *,
        chosen: bool = False,
    ) -> None:
        """``turnover``: each pair's trailing 24 h turnover (None: not filtered on).
        ``chosen``: the universe chose these pairs already (a live run, at its start:
        live/auto.py), so each is considered; a replay's are filtered at each instant."""
        self.runs = list(runs)
        self.chosen = chosen
        self.u = universe
        self.cost = round_trip_cost(fees, slippage) * HOURS_PER_YEAR / universe.horizon_hours
        self.span_ms = universe.history_days * DAY_MS
        self._windows = [_Window() for _ in runs]
        self._turnover = turnover
        self._index = {id(run): i for i, run in enumerate(runs)}
        self._considered: tuple[int, frozenset[int]] | None = None
        self._young: list[int] | None = None  # _aged: not old enough yet
        self._old: frozenset[int] = frozenset()
        self.considered_any = False  # whether considered() has given a pair yet

    def net(self, run: PairRun, now_ms: int) -> Decimal | None:
        """Expected net annualised yield of ``run`` at ``now_ms``; None without a rate in
        the span."""
        return self.net_of(self._index[id(run)], now_ms)

    def net_of(self, i: int, now_ms: int) -> Decimal | None:
        """``net`` of the i-th run."""
        w = self._windows[i]
        run = self.runs[i]
        rates = run.funding_rates
        changed = False
        while w.hi < len(rates) and rates[w.hi][0] <= now_ms:
            w.total += rates[w.hi][1]
            w.hi += 1
            changed = True
        since = now_ms - self.span_ms
        while w.lo < w.hi and rates[w.lo][0] <= since:
            w.total -= rates[w.lo][1]
            w.lo += 1
            changed = True
        if changed:
            n = w.hi - w.lo
            w.net = (
                w.total / n * HOURS_PER_YEAR / run.perp.funding_interval_hours - self.cost
                if n
                else None
            )
        return w.net

    def gross(self, run: PairRun, now_ms: int) -> Decimal | None:
        """Expected annualised funding of ``run`` at ``now_ms`` (net before the round
        trip); None without a rate in the span."""
        net = self.net(run, now_ms)
        return None if net is None else net + self.cost

    def considered(self, now_ms: int) -> frozenset[int]:
        """The indexes of the pairs the universe considers at ``now_ms`` (worked out once
        an instant)."""
        if self._considered is not None and self._considered[0] == now_ms:
            return self._considered[1]
        found = self._let_in(now_ms)
        self._considered = (now_ms, found)
        self.considered_any = self.considered_any or bool(found)
        return found

    def _let_in(self, now_ms: int) -> frozenset[int]:
        """``considered``, worked out."""
        if self.chosen:
            return frozenset(range(len(self.runs)))
        u = self.u
        need_turnover = self._turnover is not None and (
            u.min_turnover_usd > 0 or u.max_pairs < len(self.runs)
        )
        if not need_turnover:  # only the history's age: once old enough, always
            return self._aged(now_ms)
        included, excluded = set(u.include), set(u.exclude)
        passing: list[tuple[bool, Decimal, int]] = []
        for i, run in enumerate(self.runs):
            name = run.name
            if name in excluded:
                continue
            turnover = self._turnover(i, now_ms) if need_turnover and self._turnover else ZERO
            if name not in included:
                rates = run.funding_rates
                first = rates[0][0] if rates else None
                if u.min_history_days and (
                    first is None or now_ms - first < u.min_history_days * DAY_MS
                ):
                    continue
                if turnover < u.min_turnover_usd:
                    continue
            passing.append((name not in included, -turnover, i))
        passing.sort()
        return frozenset(i for _, _, i in passing[: u.max_pairs])

    def _aged(self, now_ms: int) -> frozenset[int]:
        """The pairs not excluded, included or with min_history_days of settlements
        known: a set that only grows, so only the pairs not in it yet are looked at."""
        u, days = self.u, self.u.min_history_days * DAY_MS
        if self._young is None:
            excluded = set(u.exclude)
            self._young = [i for i, run in enumerate(self.runs) if run.name not in excluded]
            self._old = frozenset(
                i for i in self._young if self.runs[i].name in u.include or not days
            )
            self._young = [i for i in self._young if i not in self._old]
        grown = []
        for i in self._young:
            rates = self.runs[i].funding_rates
            if rates and now_ms - rates[0][0] >= days:
                grown.append(i)
        if grown:
            self._old = self._old | frozenset(grown)
            self._young = [i for i in self._young if i not in self._old]
        return self._old

    def index(self, run: PairRun) -> int:
        return self._index[id(run)]

    def none_considered(self, now_ms: int) -> str | None:
        """What a run says whose universe let in no pair whenever it was asked, nor at
        ``now_ms`` (its end); None when it let one in. (Without a turnover filter the
        pairs let in only grow: none at the end is none at any instant.)"""
        if self.considered_any or self.considered(now_ms):
            return None
        u = self.u
        needs = [f"universe.min_history_days ({u.min_history_days}) of settlements known"]
        if u.min_turnover_usd > 0:
            needs.append(f"universe.min_turnover_usd ({u.min_turnover_usd:,f}) of 24 h turnover")
        return (
            f"pairs: auto: the universe let in none of the {len(self.runs)} pairs, whenever "
            f"the run asked nor at its end, so none was opened: a pair needs "
            f"{' and '.join(needs)}"
        )
