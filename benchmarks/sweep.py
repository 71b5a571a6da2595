"""How fast sweep trials go: trials per second in one process, on 1 and on 2 Dask
workers, side by side, and what Dask costs per trial.

    python benchmarks/sweep.py [--sweep sweep.yaml] [--trials N] [--repeat N] [--no-run]
                               [--quick]

1. The trials of the sweep's first --trials train trials (default: all of its train
   trials, every step) run three ways, each cold (data and baselines loaded afresh):
   the plain in-process loop (``run_trial`` one after another), a local Dask cluster of
   1 worker and one of 2 workers, through the sweep's own engine (a few trials in
   flight per worker). Cluster start-up and the workers' data loading are timed apart,
   not in the rates. Dask's overhead per trial is (1 worker's wall - the loop's) / N:
   the same work one at a time, with the scheduling, pickling and transfers added.
   The figures of the three runs are compared: they must be identical. With --repeat
   the three take turns N times and each keeps its best wall time (the machine is
   shared: the best is the least disturbed).
2. Unless --no-run: ``orchestrator sweep SWEEP`` as a user runs it (its own cluster,
   one worker per core), its time and its verdict: did the search beat staying hedged
   out of sample? The sweep folder it writes is deleted afterwards.

The machine is shared (load average printed): single runs are noisy, by tens of percent.
--quick: a few trials and no end-to-end run, to check the script still works.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.sweep.engine import Dask, Engine, open_dask
from orchestrator.sweep.plan import Plan, make_plan
from orchestrator.sweep.trial import TrialResult, TrialSpec, forget, run_trial

ROOT = Path(__file__).resolve().parents[1]


def specs(plan: Plan, count: int | None) -> list[TrialSpec]:
    found = [plan.train(step, p)[1] for step in plan.steps for p in range(len(plan.sets.sets))]
    return found if count is None else found[:count]


def loop(plan: Plan, trials: list[TrialSpec]) -> tuple[float, list[TrialResult]]:
    forget()
    start = time.perf_counter()
    results = [run_trial(spec, plan.market) for spec in trials]
    return time.perf_counter() - start, results


def through(engine: Engine, trials: list[TrialSpec]) -> tuple[float, list[TrialResult]]:
    """As the sweep hands trials out: twice as many in flight as the engine runs."""
    queue = list(trials)
    done: dict[str, TrialResult] = {}
    start = time.perf_counter()
    while queue or engine.in_flight():
        while queue and engine.in_flight() < 2 * engine.slots:
            engine.submit(queue.pop(0))
        for outcome in engine.collect(0.2):
            assert outcome.result is not None, outcome.error
            done[outcome.spec.trial] = outcome.result
    wall = time.perf_counter() - start
    return wall, [done[spec.trial] for spec in trials]


def dask(plan: Plan, workers: int, trials: list[TrialSpec]) -> tuple[float, float, list[Any]]:
    start = time.perf_counter()
    engine: Dask = open_dask(None, workers, 30, plan.source, plan.market, False)
    ready = time.perf_counter() - start  # cluster up, every worker has loaded the data
    try:
        wall, results = through(engine, trials)
    finally:
        engine.close()
    return ready, wall, results


def same(*runs: list[TrialResult]) -> bool:
    encoded = [[msgspec.json.encode(r.summary) for r in run] for run in runs]
    return all(e == encoded[0] for e in encoded)


def end_to_end(sweep: Path) -> None:
    # Removed however the run ends (a Ctrl-C in the subprocess included).
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as folder:
        run_end_to_end(sweep, Path(folder))


def run_end_to_end(sweep: Path, out_dir: Path) -> None:
    text = sweep.read_text(encoding="utf-8")
    copy = out_dir / sweep.name
    base = (sweep.parent / "config.yaml").resolve()
    text = text.replace("base: config.yaml", f"base: {base}")
    copy.write_text(text.replace("output: sweeps", f"output: {out_dir / 'sweeps'}"))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    print(f"\n`orchestrator sweep {sweep.name}`: exit {proc.returncode}, {wall:.1f} s wall")
    folders = list((out_dir / "sweeps").glob("*/summary.json"))
    if not folders:
        print(proc.stderr[-2000:])
        return
    summary = json.loads(folders[0].read_text())
    print(
        f"  {summary['parameter_sets']} parameter sets, {summary['trials']['done']} trials, "
        f"{summary['engine']}, {summary['elapsed_seconds']:.1f} s in the trials"
    )
    oos = summary["out_of_sample"]
    if oos:
        for name in ("search", "base", "always_hedged"):
            leg = oos[name]
            print(
                f"  {name:14} {float(leg['return']) * 100:+.2f}%  "
                f"max DD {float(leg['max_drawdown']) * 100:.2f}%"
            )
    print(f"  {summary['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweep.yaml")
    parser.add_argument("--trials", type=int, default=None, help="train trials (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="turns each; the best counts")
    parser.add_argument("--no-run", action="store_true", help="skip the end-to-end sweep")
    parser.add_argument("--quick", action="store_true", help="a few trials, no end-to-end run")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.no_run = 8, True

    plan = make_plan(args.sweep)
    trials = specs(plan, args.trials)
    n = len(trials)
    print(
        f"{args.sweep.name}: {n} train trials ({len(plan.sets.sets)} sets x "
        f"{len(plan.steps)} windows{', the first ones' if args.trials else ''}); "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    walls: dict[str, list[float]] = {"loop": [], "one": [], "two": []}
    readies: dict[str, list[float]] = {"one": [], "two": []}
    for _ in range(max(1, args.repeat)):
        wall, base = loop(plan, trials)
        walls["loop"].append(wall)
        ready, wall, one = dask(plan, 1, trials)
        walls["one"].append(wall)
        readies["one"].append(ready)
        ready, wall, two = dask(plan, 2, trials)
        walls["two"].append(wall)
        readies["two"].append(ready)
    wall0, wall1, wall2 = (min(walls[k]) for k in ("loop", "one", "two"))
    ready1, ready2 = (min(readies[k]) for k in ("one", "two"))
    rows = [
        ("in process (loop)", wall0),
        ("Dask, 1 worker", wall1),
        ("Dask, 2 workers", wall2),
    ]
    print(f"\n{'engine':22}{'trials':>7}{'wall s':>9}{'trials/s':>10}{'vs loop':>9}")
    for name, wall in rows:
        print(f"{name:22}{n:>7}{wall:>9.2f}{n / wall:>10.1f}{wall0 / wall:>8.2f}x")
    print(
        f"cluster start and data loaded on every worker (not in the rates): "
        f"1 worker {ready1:.1f} s, 2 workers {ready2:.1f} s"
    )
    per_trial = wall0 / n * 1000
    overhead = (wall1 - wall0) / n * 1000
    print(
        f"Dask overhead per trial: ({wall1:.2f} - {wall0:.2f}) s / {n} = {overhead:.1f} ms "
        f"(a trial takes {per_trial:.1f} ms in the loop: {overhead / per_trial:+.0%})"
    )
    print(f"2 workers / 1 worker: {wall1 / wall2:.2f}x on {os.cpu_count()} cores")
    print(f"figures identical in the three runs: {'yes' if same(base, one, two) else 'NO'}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if not args.no_run:
        end_to_end(args.sweep)


if __name__ == "__main__":
    main()
