"""The walk-forward search: every set on each train window, the best on the test window.

Trials are handed to the engine a few at a time (twice what it runs at once), so
the engine is never idle and a stop takes effect at once: on the first Ctrl-C
nothing more is handed out, the running trials get a short grace to finish and
be recorded, the rest are dropped. As soon as every set of a step has run on its
train window, the best by the objective (within the drawdown limit) is chosen
and replayed on the step's test window, which it has never seen. Beside it, the
base config replays the same test window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from orchestrator.sweep.engine import Engine, Outcome
from orchestrator.sweep.plan import Plan, score
from orchestrator.sweep.record import CurveLine, Folder, TrialInfo, needs_curve, row_of
from orchestrator.sweep.trial import TrialSpec
from orchestrator.sweep.windows import iso
from orchestrator.sweep.yamlfile import SweepError
from orchestrator.trading.run import StopFlag

GRACE_SECONDS = 10.0  # how long a stop waits for the running trials
POLL_SECONDS = 0.2


class Choice(msgspec.Struct, frozen=True):
    """A step's choice: the set with the best objective on the train window."""

    step: str
    set: int | None  # None: no set finished on the train window
    objective: Decimal | None
    limit_met: bool  # False: no set kept within the drawdown limit; the shallowest was taken


class Counts(msgspec.Struct):
    total: int
    done: int = 0  # recorded, this session or before
    failed: int = 0
    running: int = 0
    recorded_before: int = 0  # found in trials.csv on --resume
    started: float = 0.0

    def left_seconds(self) -> float | None:
        """An estimate from this session's pace; None before the first trial ends."""
        ran = self.done - self.recorded_before
        if ran <= 0:
            return None
        pace = (time.perf_counter() - self.started) / ran
        return pace * max(self.total - self.done - self.failed, 0)


Progress = Callable[[Counts], None]


class SweepRun(msgspec.Struct):
    rows: dict[str, dict[str, str]]
    curves: dict[str, CurveLine]
    failures: dict[str, str]
    choices: dict[str, Choice]
    interrupted: bool
    counts: Counts


def choose(step: str, rows: list[dict[str, str]]) -> Choice:
    """The best by the objective among the sets within the drawdown limit (the first
    listed on a tie); when none is, the one with the smallest drawdown."""
    if not rows:
        return Choice(step, None, None, False)
    ok = [r for r in rows if r["drawdown_ok"] == "true"]
    if ok:
        best = max(ok, key=lambda r: (Decimal(r["objective"]), -int(r["set"])))
        return Choice(step, int(best["set"]), Decimal(best["objective"]), True)
    best = min(rows, key=lambda r: (Decimal(r["total.max_drawdown"]), int(r["set"])))
    return Choice(step, int(best["set"]), Decimal(best["objective"]), False)


class Search:
    def __init__(
        self,
        plan: Plan,
        stop: StopFlag,
        progress: Progress,
        *,
        grace: float = GRACE_SECONDS,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.plan = plan
        self.stop = stop
        self.progress = progress
        self.grace = grace
        self.notify = notify
        self.infos: dict[str, TrialInfo] = {}
        self._queue: deque[TrialSpec] = deque()
        for step in plan.steps:
            if step.test is not None:
                self._plan(*plan.base_trial(step), self._queue)
            for p in range(len(plan.sets.sets)):
                self._plan(*plan.train(step, p), self._queue)
        self._recorded: dict[str, dict[str, str]] = {}

    def run(self, engine: Engine, folder: Folder, curves: dict[str, CurveLine]) -> SweepRun:
        """Run every trial not taken from the record (``take_recorded``) and choose,
        recording each in ``folder`` as it finishes."""
        self.engine, self.folder = engine, folder
        plan = self.plan
        state = SweepRun(
            rows=dict(self._recorded),
            curves=dict(curves),
            failures={},
            choices={},
            interrupted=False,
            counts=Counts(plan.total(), started=time.perf_counter()),
        )
        state.counts.done = state.counts.recorded_before = len(state.rows)
        queue = deque(spec for spec in self._queue if spec.trial not in state.rows)
        self._choose_ready(state, queue)
        stopping_since: float | None = None
        while True:
            if stopping_since is None and self.stop.is_set():
                stopping_since = time.perf_counter()
                state.interrupted = True
                queue.clear()
            if stopping_since is None:
                while queue and self.engine.in_flight() < 2 * self.engine.slots:
                    self.engine.submit(queue.popleft())
            if self.engine.in_flight() == 0 and not queue:
                break
            if stopping_since is not None and time.perf_counter() - stopping_since > self.grace:
                self.engine.cancel()
                break
            for outcome in self.engine.collect(POLL_SECONDS):
                self._record(outcome, state)
            for notice in self.engine.notices():
                self.notify(notice)
            if stopping_since is None:
                self._choose_ready(state, queue)
            state.counts.running = min(self.engine.in_flight(), self.engine.slots)
            self.progress(state.counts)
        state.counts.running = 0
        self.progress(state.counts)
        return state

    def _plan(self, info: TrialInfo, spec: TrialSpec, queue: deque[TrialSpec]) -> None:
        self.infos[info.trial] = info
        queue.append(spec)

    def take_recorded(self, recorded: list[dict[str, str]], where: Path) -> None:
        """Rows from an earlier session: each must be the trial this plan would run
        (SweepError, before anything is written, when one is not)."""
        for row in recorded:
            trial = row["trial"]
            info = self.infos.get(trial)
            if info is None and row["kind"] == "test":
                step = next((s for s in self.plan.steps if s.name == row["step"]), None)
                if step is not None and step.test is not None and row["set"].isdigit():
                    info = self.plan.test(step, int(row["set"]))[0]
                    self.infos[trial] = info
            if info is None or not _matches(row, info, self.plan.sets.paths):
                raise SweepError(
                    f"{where}: trials.csv row {trial!r} is not a trial of this "
                    "sweep (its file or the data changed?); nothing was started"
                )
            self._recorded[trial] = row

    def _record(self, outcome: Outcome, state: SweepRun) -> None:
        trial = outcome.spec.trial
        if trial in state.rows:  # reported twice (a worker lost after finishing): once only
            return
        if outcome.result is None:
            state.failures[trial] = outcome.error or "failed"
            state.counts.failed += 1
            return
        info = self.infos[trial]
        value, excess, ok = score(outcome.result.summary, self.plan.loaded.sweep.objective)
        row = row_of(info, outcome.result.summary, value, excess, ok)
        row.update(zip(self.plan.sets.paths, info.params, strict=True))
        curve = None
        if needs_curve(info.kind):
            curve = CurveLine(trial, outcome.result.equity, outcome.result.baseline_equity)
            state.curves[trial] = curve
        self.folder.append(row, curve)
        state.rows[trial] = row
        state.counts.done += 1

    def _choose_ready(self, state: SweepRun, queue: deque[TrialSpec]) -> None:
        """Choose for every step whose train trials have all ended; queue its test."""
        count = len(self.plan.sets.sets)
        for step in self.plan.steps:
            if step.name in state.choices:
                continue
            ids = [f"{step.name}-train-p{p:04d}" for p in range(count)]
            if any(t not in state.rows and t not in state.failures for t in ids):
                continue
            choice = choose(step.name, [state.rows[t] for t in ids if t in state.rows])
            state.choices[step.name] = choice
            if step.test is None or choice.set is None:
                continue
            info, spec = self.plan.test(step, choice.set)
            recorded = state.rows.get(info.trial)
            if recorded is not None:
                if recorded["set"] != str(choice.set):
                    raise SweepError(
                        f"{self.folder.path}: trials.csv holds set {recorded['set']} as step "
                        f"{step.name}'s choice, the recorded train trials choose set "
                        f"{choice.set}; nothing more was run"
                    )
                continue
            self.infos[info.trial] = info
            queue.appendleft(spec)  # before the remaining train trials: the report needs it


def _matches(row: dict[str, str], info: TrialInfo, paths: list[str]) -> bool:
    return (
        row["kind"] == info.kind
        and row["step"] == info.step
        and row["set"] == ("" if info.set is None else str(info.set))
        and row["window_start"] == iso(info.window.start_ms)
        and row["window_end"] == iso(info.window.end_ms)
        and tuple(row[p] for p in paths) == info.params
    )
