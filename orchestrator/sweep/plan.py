"""A sweep, checked whole before anything starts: its file, its base config, the
parameter sets, the data and the walk-forward windows.

Every problem is a SweepError (or the run config's ConfigError, the data's
DataError) naming the file and the YAML path: the command exits 2 and nothing
has been started, no folder made, no worker asked.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.config import Loaded, load, parse_time
from orchestrator.money import exact
from orchestrator.replay.session import Prepared, prepare
from orchestrator.sweep.params import ParameterSets, expand, text
from orchestrator.sweep.record import TrialInfo
from orchestrator.sweep.spec import MAX_WORKERS, SCHEDULER, LoadedSweep, Objective, load_sweep
from orchestrator.sweep.trial import DataSource, Market, TrialSpec, fingerprint, make_market
from orchestrator.sweep.windows import WalkStep, data_span, plan
from orchestrator.sweep.yamlfile import Invalid, SweepError
from orchestrator.trading.figures import Summary, annualise


class Plan(msgspec.Struct, frozen=True):
    loaded: LoadedSweep
    base: Loaded  # the run config swept over
    prepared: Prepared  # its data, checked; the warnings a run would print
    sets: ParameterSets
    steps: list[WalkStep]
    source: DataSource
    market: Market

    @property
    def pairs(self) -> list[str]:
        return [p.name for p in self.prepared.loaded.config.pair_list]  # auto: resolved

    @property
    def evaluated(self) -> list[WalkStep]:
        """The steps with a test window (all but ``next``)."""
        return [s for s in self.steps if s.test is not None]

    def base_values(self) -> tuple[str, ...]:
        """The swept settings' values in the base config, as text."""
        data = msgspec.to_builtins(self.base.config)
        found = []
        for axis in self.sets.axes:
            node: Any = data
            for key in axis.setting.keys:
                node = node[key]
            found.append(repr(node) if isinstance(node, float) else str(node))
        return tuple(found)

    def train(self, step: WalkStep, p: int) -> tuple[TrialInfo, TrialSpec]:
        trial = f"{step.name}-train-p{p:04d}"
        info = TrialInfo(trial, "train", step.name, p, step.train, self.set_text(p))
        return info, TrialSpec(trial, self.sets.configs[p], step.train)

    def test(self, step: WalkStep, p: int) -> tuple[TrialInfo, TrialSpec]:
        assert step.test is not None
        trial = f"{step.name}-test"
        info = TrialInfo(trial, "test", step.name, p, step.test, self.set_text(p))
        return info, TrialSpec(trial, self.sets.configs[p], step.test, curve=True)

    def base_trial(self, step: WalkStep) -> tuple[TrialInfo, TrialSpec]:
        assert step.test is not None
        trial = f"{step.name}-base"
        info = TrialInfo(trial, "base", step.name, None, step.test, self.base_values())
        return info, TrialSpec(trial, self.base.config, step.test, curve=True)

    def set_text(self, p: int) -> tuple[str, ...]:
        return tuple(text(v) for v in self.sets.sets[p])

    def order(self) -> dict[str, int]:
        """Every trial id in the order trials.csv lists them."""
        ids: list[str] = []
        for step in self.steps:
            ids += [f"{step.name}-train-p{p:04d}" for p in range(len(self.sets.sets))]
            if step.test is not None:
                ids += [f"{step.name}-test", f"{step.name}-base"]
        return {trial: i for i, trial in enumerate(ids)}

    def total(self) -> int:
        return len(self.steps) * len(self.sets.sets) + 2 * len(self.evaluated)


def score(summary: Summary, objective: Objective) -> tuple[Decimal, Decimal, bool]:
    """(the objective's value, the excess return over always hedged, drawdown within
    the limit) of a trial's summary."""
    total, baseline = summary.total, summary.baseline_total
    assert baseline is not None
    with exact():
        excess = total.return_ - baseline.return_
        annualised = total.annualised_return
        if annualised is None:  # a window under a day: not shown, but trials still rank
            span = (summary.end - summary.start) // timedelta(milliseconds=1)
            annualised = annualise(total.return_, max(span, 1))
        value = {
            "excess_return": excess,
            "return": total.return_,
            "annualised_return": annualised,
            "net_pnl": total.net_pnl,
        }[objective.metric]
    limit = objective.max_drawdown
    return value, excess, limit is None or total.max_drawdown <= limit


def make_plan(
    path: Path,
    *,
    base_override: Loaded | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> Plan:
    """Read and check everything; SweepError / ConfigError / DataError otherwise."""
    loaded = load_sweep(path)
    sweep = loaded.sweep
    if scheduler is not None:
        if not re.fullmatch(SCHEDULER, scheduler):
            raise SweepError(
                f"--scheduler: {scheduler!r} is not a Dask scheduler address like "
                "'tcp://127.0.0.1:8786'"
            )
        sweep = msgspec.structs.replace(sweep, scheduler=scheduler)
    if workers is not None:
        if not 1 <= workers <= MAX_WORKERS:
            raise SweepError(f"--workers: must be between 1 and {MAX_WORKERS}, got {workers}")
        sweep = msgspec.structs.replace(sweep, workers=workers)
    loaded = msgspec.structs.replace(loaded, sweep=sweep)
    base_path = loaded.base_path()
    if base_override is None and not base_path.is_file():
        raise SweepError(f"{path}: base: no run config at {base_path}")
    base = base_override or load(base_path)
    if base.config.mode != "paper" or base.config.dry_run:
        kind = "dry run" if base.config.dry_run else base.config.mode
        raise SweepError(
            f"{path}: base: {base_path.name} is a {kind} config; a sweep replays "
            "the recorded data (mode: paper, market: recorded)"
        )
    idle = [name for name in sweep.parameters if name.split(".")[0] == "universe"]
    if idle and not base.config.auto:
        raise SweepError(
            f"{path}: parameters.{idle[0]}: {base_path.name} lists its pairs (pairs:); the "
            "universe settings choose pairs only under pairs: auto, so varying them would "
            "change nothing"
        )
    try:
        sets = expand(
            sweep.parameters,
            base.config,
            sweep.search.method,
            sweep.search.trials,
            sweep.search.seed,
            loaded.float_text,
        )
    except Invalid as exc:
        raise SweepError(f"{path}: {exc}") from None
    prepared = prepare(base)  # pairs: auto: the data folder's pairs (each trial ranks them)
    try:
        steps = plan(sweep.walk_forward, data_span(prepared.datasets))
    except Invalid as exc:
        raise SweepError(f"{path}: {exc}") from None
    config = prepared.loaded.config
    pairs = tuple((p.spot, p.perp) for p in config.pair_list)
    data_dir = base.data_dir()
    digest = fingerprint(data_dir, config.venue, pairs)
    source = DataSource(
        str(data_dir),
        config.venue,
        pairs,
        _ms(config.data.start),
        _ms(config.data.end),
        digest,
    )
    market = make_market(prepared.instruments, prepared.datasets, digest)
    return Plan(loaded, base, prepared, sets, steps, source, market)


def _ms(text: str | None) -> int | None:
    return None if text is None else int(parse_time(text).timestamp() * 1000)
