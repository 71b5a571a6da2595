"""``orchestrator sweep``: check everything, run the trials, write the sweep folder, report.

Exit codes:

- 0: every trial ran and every file was written.
- 1: the sweep finished but some trials failed (their errors are in summary.json
  and printed; ``--resume`` runs them again).
- 2: nothing ran: a bad sweep file or base config, data that cannot be used, an
  unreachable scheduler, workers that cannot read the data.
- 3: the trials ran but some file could not be written.
- 128 + the signal's number (130 on Ctrl-C): stopped. The first signal stops
  handing out trials, waits a few seconds for the running ones, and writes
  everything about what finished; ``--resume SWEEP_DIR`` carries on. A second
  signal stops at once (trials.csv keeps every trial finished until then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from uuid import uuid4

import msgspec

from orchestrator import files
from orchestrator.config import load
from orchestrator.exceptions import OrchestratorError
from orchestrator.output.signals import Signals, StoppedAtOnce, exit_code, stop_on_signals
from orchestrator.output.sweep_chart import chart_html
from orchestrator.sweep.connect import Stopped
from orchestrator.sweep.engine import Engine, InProcess, open_dask
from orchestrator.sweep.plan import Plan, make_plan
from orchestrator.sweep.record import (
    BASE_COPY,
    CURVES,
    SWEEP_COPY,
    Folder,
    Meta,
    Recorded,
    file_hash,
    header,
)
from orchestrator.sweep.report import (
    SweepSummary,
    best_step,
    best_yaml,
    format_report,
    out_of_sample,
    step_reports,
    verdict,
)
from orchestrator.sweep.search import GRACE_SECONDS, Counts, Progress, Search, SweepRun
from orchestrator.sweep.spec import sweep_schema
from orchestrator.sweep.spec import write_schema as write_sweep_schema
from orchestrator.sweep.yamlfile import SweepError

EXIT_FAILED_TRIALS = 1
EXIT_WRITE_FAILED = 3


class ProgressLine:
    """Trials done, running and failed, and the time left: one line on stderr, redrawn
    in place on a terminal, every 10 % otherwise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._last = -1.0
        self._decile = -1
        self._final = False

    def __call__(self, counts: Counts) -> None:
        now = time.perf_counter()
        ended = counts.done + counts.failed
        frac = ended / counts.total if counts.total else 1.0
        final = ended >= counts.total and counts.running == 0
        if final and self._final:
            return
        if self._tty:
            if not final and now - self._last < 0.2:
                return
        elif int(frac * 10) == self._decile and not final:
            return
        self._last, self._decile, self._final = now, int(frac * 10), final
        left = counts.left_seconds()
        eta = "" if left is None else f", about {left:,.0f} s left"
        line = (
            f"trials {counts.done:,}/{counts.total:,} done, {counts.running} running, "
            f"{counts.failed} failed, {now - counts.started:,.1f} s{eta}"
        )
        self._out.write(f"\r{line:<90}" if self._tty else line + "\n")
        if self._tty and final:
            self._out.write("\n")
        self._out.flush()


def sweep(
    path: Path | None,
    *,
    resume: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    in_process: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    progress: Progress | None = None,
    grace: float = GRACE_SECONDS,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    with stop_on_signals() as signals:
        folder: Folder | None = None
        engine: Engine | None = None
        try:
            if resume is not None:
                folder = Folder(resume)
                folder.meta()  # a sweep folder, before anything is written to it
                folder.lock()
                plan = _resume_plan(folder, scheduler, workers)
            else:
                assert path is not None
                plan = make_plan(path, scheduler=scheduler, workers=workers)
            for warning in plan.prepared.warnings:
                print(f"warning: {warning}", file=err)
            if resume is None:
                files.ensure_writable(plan.loaded.output_dir(), create=False)
            search = Search(
                plan,
                signals,
                progress or ProgressLine(err),
                grace=grace,
                # on a terminal, below the progress line it redraws, not over it
                notify=lambda message: print(
                    f"{chr(10) * err.isatty()}warning: {message}", file=err
                ),
            )
            columns = header(plan.sets.paths, plan.pairs)
            recorded = Recorded([], {}, [])
            if folder is not None:  # resumed: the record checked whole before anything starts
                recorded = folder.recorded(columns, folder.meta().inputs())
                search.take_recorded(recorded.rows, folder.path)
            if signals.first is None:
                with contextlib.suppress(Stopped):  # a signal while connecting: said below
                    engine = _engine(plan, in_process, signals)
            if signals.first is not None:
                print("stopped before the first trial; nothing was written", file=err)
                return exit_code(signals.first)
            if folder is None:
                folder = _new_folder(plan)
            assert engine is not None
            if recorded.rerun:
                print(
                    f"note: {CURVES} lacks the curves of {', '.join(recorded.rerun)}: they run "
                    "again",
                    file=err,
                )
            folder.open(columns, folder.meta().inputs(), recorded)
            started = time.perf_counter()
            run = search.run(engine, folder, recorded.curves)
            description = engine.description
            engine.close()
            engine = None
            elapsed = time.perf_counter() - started
            return _finish(plan, run, folder, description, elapsed, out, err, signals.first)
        except StoppedAtOnce as stopped:
            where = (
                ""
                if folder is None
                else f"; {folder.path / 'trials.csv'} keeps every trial finished"
            )
            print(f"stopped at once on a second signal{where}", file=err)
            return exit_code(stopped.signum)
        finally:
            if engine is not None:
                engine.close()
            if folder is not None:
                folder.close()


def _engine(plan: Plan, in_process: bool, stop: Signals) -> Engine:
    if in_process:
        return InProcess(plan.market)
    sweep = plan.loaded.sweep
    return open_dask(
        sweep.scheduler,
        sweep.workers,
        sweep.connect_timeout_seconds,
        plan.source,
        plan.market,
        sweep.send_data,
        stop,
    )


def _new_folder(plan: Plan) -> Folder:
    sweep_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid4().hex[:6]}"
    meta = Meta(
        id=sweep_id,
        sweep_file=str(plan.loaded.path),
        base_config=str(plan.base.path),
        data_dir=plan.source.data_dir,
        data_hash=plan.source.fingerprint,
        created=datetime.now(UTC).isoformat(),
    )
    return Folder.create(
        plan.loaded.output_dir() / sweep_id,
        meta,
        plan.loaded.text,
        plan.base.path.read_text(encoding="utf-8"),
    )


def _resume_plan(folder: Folder, scheduler: str | None, workers: int | None) -> Plan:
    """The folder's own sweep file and base config; data.dir and output.dir resolved where
    the base config was. The data must be what the sweep started on."""
    meta = folder.meta()
    recorded = {SWEEP_COPY: meta.sweep_hash, BASE_COPY: meta.base_hash}
    for name, digest in recorded.items():
        if not (folder.path / name).is_file():
            raise SweepError(f"{folder.path}: the sweep folder lacks its {name}; nothing was done")
        if digest is None:
            raise SweepError(
                f"{folder.path}: meta.json records no hash of {name} (a folder from an older "
                "version): its record cannot be checked; start a new sweep; nothing was run"
            )
        if file_hash(folder.path / name) != digest:
            raise SweepError(
                f"{folder.path / name} changed since the sweep started (hash "
                f"{file_hash(folder.path / name)}, recorded {digest}): its trials were run on "
                "the file as it was, and one report never mixes the two; start a new sweep "
                "for the new file; nothing was run"
            )
    base = load(folder.path / BASE_COPY)
    base = msgspec.structs.replace(base, path=Path(meta.base_config))
    plan = make_plan(
        folder.path / SWEEP_COPY, base_override=base, scheduler=scheduler, workers=workers
    )
    if plan.source.fingerprint != meta.data_hash:
        raise SweepError(
            f"{folder.path}: the data in {plan.source.data_dir} is not the data this sweep "
            f"started on (hash {plan.source.fingerprint}, recorded {meta.data_hash}); "
            "start a new sweep; nothing was run"
        )
    return plan


def _summary(
    plan: Plan, run: SweepRun, folder: Folder, engine: str, elapsed: float
) -> SweepSummary:
    sweep = plan.loaded.sweep
    walk = sweep.walk_forward
    if walk.windows is not None:
        scheme = f"{len(walk.windows)} walk-forward steps listed"
    else:
        scheme = (
            f"{walk.window} {walk.train_months}-month train, {walk.test_months}-month test, "
            f"step {walk.step} months: {len(plan.evaluated)} steps and the next"
        )
    method = sweep.search.method
    search = "grid search" if method == "grid" else f"random search (seed {sweep.search.seed})"
    oos, _ = out_of_sample(plan, run)
    counts = run.counts
    step = best_step(plan, run)
    best = None
    if step is not None and (choice := run.choices[step.name]).set is not None:
        best = {
            "file": "best.yaml",
            "step": step.name,
            "train_start": step.train.start.isoformat(),
            "train_end": step.train.end.isoformat(),
            "parameters": dict(zip(plan.sets.paths, plan.set_text(choice.set), strict=True)),
        }
    return SweepSummary(
        sweep_id=folder.path.name,
        sweep_file=str(plan.loaded.path),
        base_config=str(plan.base.path),
        data_dir=plan.source.data_dir,
        engine=engine,
        parameters=plan.sets.paths,
        search=search,
        parameter_sets=len(plan.sets.sets),
        refused_combinations=plan.sets.refused,
        objective=sweep.objective.metric,
        max_drawdown=sweep.objective.max_drawdown,
        walk_forward=scheme,
        trials={
            "total": counts.total,
            "done": counts.done,
            "failed": counts.failed,
            "recorded_before": counts.recorded_before,
        },
        failures=run.failures,
        steps=step_reports(plan, run),
        out_of_sample=oos,
        verdict=verdict(oos, len(plan.evaluated)),
        best=best,
        interrupted=run.interrupted,
        complete=counts.done == counts.total,
        elapsed_seconds=round(elapsed, 3),
        warnings=list(plan.prepared.warnings),
    )


def _finish(
    plan: Plan,
    run: SweepRun,
    folder: Folder,
    engine: str,
    elapsed: float,
    out: TextIO,
    err: TextIO,
    signal_first: int | None,
) -> int:
    order = plan.order()
    rows = sorted(run.rows.values(), key=lambda r: order.get(r["trial"], len(order)))
    curves = sorted(run.curves.values(), key=lambda c: order.get(c.trial, len(order)))
    problems = folder.finish(rows, curves)
    summary = _summary(plan, run, folder, engine, elapsed)
    oos, stitched = out_of_sample(plan, run)
    best = best_yaml(plan, run, folder.path, oos)
    writes: list[tuple[str, bytes | None]] = [
        ("summary.json", msgspec.json.format(msgspec.json.encode(summary))),
        ("chart.html", chart_html(plan, run, summary, stitched).encode()),
        ("best.yaml", best),
    ]
    for name, data in writes:
        if data is not None:
            problem = folder.write(name, data)
            if problem is not None:
                problems.append(problem)
    print(format_report(summary, plan.sets.paths), file=out)
    if best is None:
        print("best.yaml not written: the latest train window did not finish", file=out)
    else:
        print(f"best.yaml: orchestrator run {folder.path / 'best.yaml'}", file=out)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=err)
        return EXIT_WRITE_FAILED
    print(f"written to {folder.path}", file=out)
    if run.interrupted:
        print(
            f"interrupted: {summary.trials['done']} of {summary.trials['total']} trials done; "
            f"carry on with: orchestrator sweep --resume {folder.path}",
            file=err,
        )
        return exit_code(signal_first) if signal_first is not None else 130
    if run.failures:
        print(
            f"{len(run.failures)} trials failed; run them again with: orchestrator sweep "
            f"--resume {folder.path}",
            file=err,
        )
        return EXIT_FAILED_TRIALS
    return 0


def main(args: argparse.Namespace) -> int:
    """``orchestrator sweep [SWEEP_FILE]``, ``--resume SWEEP_DIR``, or its schema."""
    if args.schema:
        print(json.dumps(sweep_schema(), indent=2))
        return 0
    if args.write_schema:
        write_sweep_schema(args.write_schema)
        print(f"wrote {args.write_schema}")
        return 0
    options = {"scheduler": args.scheduler, "workers": args.workers, "in_process": args.in_process}
    if args.resume is not None:
        if not args.resume.is_dir():
            raise OrchestratorError(f"--resume {args.resume}: not a sweep folder")
        return sweep(None, resume=args.resume, **options)
    if args.sweep_file.is_dir():
        raise OrchestratorError(f"{args.sweep_file} is a folder: to resume that sweep, --resume it")
    return sweep(args.sweep_file, **options)
