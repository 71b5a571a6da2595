"""What a sweep says: per step the set chosen and how it did on the months it never saw;
the test windows stitched into one out-of-sample curve beside the always-hedged
baseline and the base config over the same windows; and, plainly, whether the
search beat staying hedged out of sample.

Stitching: each test window is replayed from the base config's starting balance;
the out-of-sample curve chains them, each window's equity scaled by what the
curve held when it began (returns compound across windows). Every figure of the
stitched curve is the curve's own: its return, its drawdown and its net PnL (last
equity minus the starting balance), all in the money context.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import yaml

from orchestrator.money import exact
from orchestrator.sweep.params import describe
from orchestrator.sweep.plan import Plan
from orchestrator.sweep.search import Choice, SweepRun
from orchestrator.sweep.trial import Curve
from orchestrator.sweep.windows import NEXT, WalkStep, iso
from orchestrator.trading.figures import max_drawdown

SEARCH, BASE, HEDGED = "search", "base config", "always hedged"


class Leg(msgspec.Struct, frozen=True):
    """One way of trading the test windows, stitched."""

    return_: Decimal = msgspec.field(name="return")  # of the stitched curve (compounded)
    max_drawdown: Decimal  # of the stitched curve, a fraction of its peak
    net_pnl: Decimal  # of the stitched curve: its last equity minus the starting balance
    ending_equity: Decimal  # of the stitched curve


class OutOfSample(msgspec.Struct, frozen=True):
    start: str
    end: str
    windows: int  # test windows stitched
    search: Leg
    base: Leg
    always_hedged: Leg
    excess_return: Decimal  # search - always hedged
    beats_always_hedged: bool
    beats_base: bool


class StepReport(msgspec.Struct, frozen=True):
    step: str
    train_start: str
    train_end: str
    test_start: str | None
    test_end: str | None
    chosen: dict[str, str] | None  # the set chosen on the train window
    chosen_set: int | None
    train_objective: Decimal | None
    limit_met: bool  # false: no set kept within the drawdown limit (the shallowest was taken)
    test_return: dict[str, Decimal] | None  # search, base config, always hedged


class SweepSummary(msgspec.Struct):
    sweep_id: str
    sweep_file: str
    base_config: str
    data_dir: str
    engine: str
    parameters: list[str]
    search: str
    parameter_sets: int
    refused_combinations: list[str]
    objective: str
    max_drawdown: Decimal | None
    walk_forward: str
    trials: dict[str, int]
    failures: dict[str, str]
    steps: list[StepReport]
    out_of_sample: OutOfSample | None
    verdict: str
    best: dict[str, Any] | None
    interrupted: bool
    complete: bool
    elapsed_seconds: float
    warnings: list[str]


class Stitched(msgspec.Struct, frozen=True):
    """The out-of-sample curves, for the chart."""

    search: Curve
    base: Curve
    always_hedged: Curve
    edges: list[int]  # where each stitched test window starts


def _pct(x: Decimal) -> str:
    return f"{x * 100:+.2f}%"


def stitch(windows: list[tuple[Curve, Decimal]], start: Decimal) -> Curve:
    out: Curve = []
    equity = start
    with exact():
        for curve, balance in windows:
            factor = equity / balance
            out += [(t, v * factor) for t, v in curve]
            if out:
                equity = out[-1][1]
    return out


def _leg(curve: Curve, start: Decimal) -> Leg:
    """The stitched curve's own figures: one base for the return and the PnL."""
    end = curve[-1][1] if curve else start
    with exact():
        ret = end / start - 1
        drawdown = max_drawdown([v for _, v in curve])
        pnl = end - start
    return Leg(ret, drawdown, pnl, end)


def out_of_sample(plan: Plan, run: SweepRun) -> tuple[OutOfSample | None, Stitched]:
    rows, curves = run.rows, run.curves
    start_balance = plan.base.config.balances.get(_quote(plan), Decimal(0))
    legs: dict[str, list[tuple[Curve, Decimal]]] = {SEARCH: [], BASE: [], HEDGED: []}
    used: list[WalkStep] = []
    edges: list[int] = []
    for step in plan.evaluated:
        test, base = rows.get(f"{step.name}-test"), rows.get(f"{step.name}-base")
        test_curve, base_curve = curves.get(f"{step.name}-test"), curves.get(f"{step.name}-base")
        if test is None or base is None or test_curve is None or base_curve is None:
            continue
        used.append(step)
        assert step.test is not None
        edges.append(step.test.start_ms)
        legs[SEARCH].append((test_curve.equity, Decimal(test["starting_balance"])))
        legs[HEDGED].append((test_curve.baseline, Decimal(test["starting_balance"])))
        legs[BASE].append((base_curve.equity, Decimal(base["starting_balance"])))
    stitched = {name: stitch(windows, start_balance) for name, windows in legs.items()}
    chart = Stitched(stitched[SEARCH], stitched[BASE], stitched[HEDGED], edges)
    if not used:
        return None, chart
    made = {name: _leg(stitched[name], start_balance) for name in legs}
    first, last = used[0].test, used[-1].test
    assert first is not None
    assert last is not None
    with exact():
        excess = made[SEARCH].return_ - made[HEDGED].return_
    return (
        OutOfSample(
            start=iso(first.start_ms),
            end=iso(last.end_ms),
            windows=len(used),
            search=made[SEARCH],
            base=made[BASE],
            always_hedged=made[HEDGED],
            excess_return=excess,
            beats_always_hedged=made[SEARCH].return_ > made[HEDGED].return_,
            beats_base=made[SEARCH].return_ > made[BASE].return_,
        ),
        chart,
    )


def _quote(plan: Plan) -> str:
    return plan.prepared.loaded.config.pair_list[0].spot.split("/")[1]


def verdict(oos: OutOfSample | None, planned: int) -> str:
    if oos is None:
        return "No test window finished: nothing can be said out of sample."
    span = f"{oos.start[:10]} to {oos.end[:10]}"
    partial = "" if oos.windows == planned else f" (only {oos.windows} of {planned} test windows)"
    points = f"{oos.excess_return * 100:+.2f} points"
    if oos.beats_always_hedged:
        head = "The search BEAT staying hedged out of sample"
    else:
        head = "The search did NOT beat staying hedged out of sample"
    return (
        f"{head}: {_pct(oos.search.return_)} against {_pct(oos.always_hedged.return_)} "
        f"({points}) over {oos.windows} test windows, {span}{partial}; the base config "
        f"made {_pct(oos.base.return_)}."
    )


def step_reports(plan: Plan, run: SweepRun) -> list[StepReport]:
    found = []
    for step in plan.steps:
        choice = run.choices.get(step.name, Choice(step.name, None, None, False))
        chosen = None
        if choice.set is not None:
            chosen = dict(zip(plan.sets.paths, plan.set_text(choice.set), strict=True))
        tested = None
        test, base = run.rows.get(f"{step.name}-test"), run.rows.get(f"{step.name}-base")
        if test is not None and base is not None:
            tested = {
                SEARCH: Decimal(test["total.return"]),
                BASE: Decimal(base["total.return"]),
                HEDGED: Decimal(test["baseline.total.return"]),
            }
        found.append(
            StepReport(
                step=step.name,
                train_start=iso(step.train.start_ms),
                train_end=iso(step.train.end_ms),
                test_start=None if step.test is None else iso(step.test.start_ms),
                test_end=None if step.test is None else iso(step.test.end_ms),
                chosen=chosen,
                chosen_set=choice.set,
                train_objective=choice.objective,
                limit_met=choice.limit_met,
                test_return=tested,
            )
        )
    return found


def best_step(plan: Plan, run: SweepRun) -> WalkStep | None:
    """The step whose choice becomes best.yaml: ``next`` (trained up to the end of the
    data), else the last listed step."""
    named = {s.name: s for s in plan.steps}
    step = named.get(NEXT) or plan.steps[-1]
    choice = run.choices.get(step.name)
    return step if choice is not None and choice.set is not None else None


def best_yaml(plan: Plan, run: SweepRun, folder: Path, oos: OutOfSample | None) -> bytes | None:
    """A run config for ``orchestrator run``: the base config with the chosen set, its
    data and output folders written relative to the sweep folder."""
    step = best_step(plan, run)
    if step is None:
        return None
    p = run.choices[step.name].set
    assert p is not None
    data = msgspec.to_builtins(plan.sets.configs[p])
    data["data"]["dir"] = os.path.relpath(plan.base.data_dir(), folder)
    data["output"]["dir"] = os.path.relpath(plan.base.output_dir(), folder)
    base_values = plan.base_values()
    changes = [
        f"#   {path}: {value}" + ("" if value == was else f"   (base config: {was})")
        for path, value, was in zip(plan.sets.paths, plan.set_text(p), base_values, strict=True)
    ]
    if oos is None:
        record = "# No test window finished: how this search does out of sample is unknown."
    else:
        record = (
            f"# Out of sample ({oos.windows} test windows, {oos.start[:10]} to {oos.end[:10]}) "
            f"this search made {_pct(oos.search.return_)},\n# always hedged "
            f"{_pct(oos.always_hedged.return_)}, the base config {_pct(oos.base.return_)}."
        )
    head = "\n".join(
        [
            f"# best.yaml of sweep {folder.name}: the base config {plan.base.path}",
            f"# with the set chosen by {plan.loaded.sweep.objective.metric} on the train window "
            f"{step.train.label()}:",
            *changes,
            record,
            "# What it does next is not in the data. Run it: orchestrator run best.yaml",
            "",
        ]
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return (head + body).encode()


def format_report(summary: SweepSummary, paths: list[str]) -> str:
    lines = [
        f"sweep {summary.sweep_id}: {summary.search}, {summary.parameter_sets} parameter sets, "
        f"{summary.walk_forward}; objective {summary.objective}"
        + (
            ""
            if summary.max_drawdown is None
            else f" within a max drawdown of {summary.max_drawdown * 100:g}%"
        ),
        f"trials: {summary.trials['done']} of {summary.trials['total']} done"
        + (f", {summary.trials['failed']} failed" if summary.trials["failed"] else "")
        + (
            f" ({summary.trials['recorded_before']} recorded before this session)"
            if summary.trials["recorded_before"]
            else ""
        )
        + f", {summary.engine}, {summary.elapsed_seconds:.1f} s",
        f"{'step':6}{'train':26}{'test':26}{'train obj':>10}  {'search':>8}{'base':>8}"
        f"{'hedged':>8}  chosen",
    ]
    for step in summary.steps:
        train = f"{step.train_start[:10]} to {step.train_end[:10]}"
        test = (
            "(the future)"
            if step.test_start is None
            else (f"{step.test_start[:10]} to {(step.test_end or '')[:10]}")
        )
        objective = "" if step.train_objective is None else _pct(step.train_objective)
        if step.train_objective is not None and summary.objective == "net_pnl":
            objective = f"{step.train_objective:,.0f}"
        tested = step.test_return
        figures = (
            f"{'':>8}{'':>8}{'':>8}"
            if tested is None
            else f"{_pct(tested[SEARCH]):>8}{_pct(tested[BASE]):>8}{_pct(tested[HEDGED]):>8}"
        )
        chosen = "none" if step.chosen is None else describe(paths, list(step.chosen.values()))
        if step.chosen is not None and not step.limit_met:
            chosen += " (no set within the drawdown limit: the shallowest)"
        lines.append(f"{step.step:6}{train:26}{test:26}{objective:>10}  {figures}  {chosen}")
    oos = summary.out_of_sample
    if oos is not None:
        lines.append(
            f"out of sample, {oos.start[:10]} to {oos.end[:10]}: {oos.windows} test windows "
            "stitched into one curve (each window scaled to the equity the last one ended "
            "with); return, drawdown and net PnL are that curve's:"
        )
        for name, leg in ((SEARCH, oos.search), (BASE, oos.base), (HEDGED, oos.always_hedged)):
            lines.append(
                f"  {name:15}{_pct(leg.return_):>9}   max DD {leg.max_drawdown * 100:.2f}%   "
                f"net PnL {leg.net_pnl:,.2f}"
            )
    lines.append(summary.verdict)
    for trial, error in summary.failures.items():
        lines.append(f"failed: {trial}: {error}")
    if summary.refused_combinations:
        lines.append(
            f"note: {len(summary.refused_combinations)} combinations skipped, the run config "
            f"refuses them (e.g. {summary.refused_combinations[0]})"
        )
    return "\n".join(lines)
