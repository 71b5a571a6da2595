"""`orchestrator run`: build the parts from the config, replay, write the run folder, report.

Exit codes of ``run``:

- 0: the run completed and every file of its folder was written.
- 2: nothing ran: a config or data error, or an output folder that cannot be
  written (said before the replay).
- 3: the run completed and its table was printed, but some of its files could
  not be written (disk full, read-only, folder deleted): the folder holds an
  ``INCOMPLETE`` file saying what is missing, when it can hold anything at all.
- 4: the run completed and wrote everything, but its ledger does not balance
  (starting balance + funding - fees + price PnL differs from the ending equity):
  both sides and the difference are printed, and said again on stderr. Its
  figures cannot be trusted.
- 5: a live run stopped because the venue refused its API key mid-run (revoked, a
  permission withdrawn, an IP no longer allowed: Bybit's 10003, 10004, 10005,
  10010...). The cause is said; positions are left as they are on the venue, the
  results are written, ``run --resume RUN_DIR`` carries it on once the key works.
- 128 + the signal's number (130 SIGINT, 143 SIGTERM, 129 SIGHUP): stopped by a
  signal. The first SIGINT, SIGTERM or SIGHUP stops the replay at the next
  instant, closes what is open on the last prices and writes everything (the
  summary says ``interrupted``). A second one stops at once: the code is that of
  the second signal, the folder keeps only whole files and is marked
  ``INCOMPLETE``. Every result file is written atomically, so none is ever half
  written.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO, cast
from uuid import uuid4

import anyio
import msgspec
from opentelemetry.trace import Tracer

from orchestrator import files
from orchestrator.bybit.client import credentials
from orchestrator.config import Config, ConfigError, Loaded, load
from orchestrator.control import ControlBox
from orchestrator.exceptions import NothingStarted, OrchestratorError
from orchestrator.files import INCOMPLETE, OutputError
from orchestrator.journal import Journal, JournalError
from orchestrator.journal.recorder import JournalRecorder, ResumingRecorder
from orchestrator.money import exact
from orchestrator.output.chart import write_chart
from orchestrator.output.progress import ProgressBar, ProgressBars
from orchestrator.output.report import (
    EQUITY_FILE,
    EquityFile,
    format_table,
    write_equity,
    write_ledgers,
    write_positions,
)
from orchestrator.output.signals import Signals, exit_code, stop_on_signals
from orchestrator.position.legs import new_run_nonce
from orchestrator.replay.engine import REPLAY_NONCE
from orchestrator.replay.session import ms_of, prepare, replay_both
from orchestrator.strategy.funding import strategies
from orchestrator.tracing.setup import TRACE_FILE, RunTracing
from orchestrator.trading.figures import (
    Summary,
    ledger_identity,
    summarise,
)
from orchestrator.trading.run import Progress, RunResult

EXIT_WRITE_FAILED = 3
EXIT_UNBALANCED = 4
EXIT_KEY_REFUSED = 5

CONFIG_FILE = "config.yaml"
CONFIG_PATH = "config_path"  # journal meta: where the run's config was (its relative paths)
DRY_RUN = "dry-run"  # the journal's mode of a paper run on the live market
RESULT_FILES = ["summary.json", "ledger.csv", "positions.csv"]
CHART_FILE = "chart.html"

HOUR_MS = 3_600_000


class RunFolder:
    """The run folder and what has been written to it, for the ways a run can end."""

    def __init__(self, path: Path, expected: list[str], *, fresh: bool = True) -> None:
        self.path = path
        self.fresh = fresh  # made by this run (not a resumed run's)
        self.tracing: RunTracing | None = None
        self.expected = expected  # every file the run writes, in order
        self.written: list[str] = []

    def write(self, name: str, write: Callable[[Path], object]) -> str | None:
        """Write one file atomically; None when written, else why not."""
        try:
            files.write_via(self.path / name, write)
        except OSError as exc:
            gone = "" if self.path.is_dir() else " (the run folder is gone)"
            return f"could not write {name}: {files.describe(exc)}{gone}"
        self.written.append(name)
        return None

    def missing(self) -> list[str]:
        return [name for name in self.expected if name not in self.written]

    def mark_incomplete(self, reasons: list[str]) -> str:
        """Write INCOMPLETE; what to tell the user about it."""
        files.remove_partials(self.path)
        problem = files.mark_incomplete(self.path, reasons)
        if problem is None:
            return f"{self.path} marked {INCOMPLETE}"
        return f"{self.path} could not even be marked {INCOMPLETE}: {problem}"


def run(
    config_path: Path,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    rehearsal: RehearsalRequest | None = None,
) -> int:
    """``orchestrator run`` (a replay, or ``mode: live``), or with ``rehearsal`` the
    live path against the loopback venue (``orchestrator rehearse``)."""
    stdout = files.PipeSafe(out or sys.stdout)  # a reader that leaves fails nothing
    out, err = cast(TextIO, stdout), err or sys.stderr
    folders: list[RunFolder] = []  # the run folder, once made
    with stop_on_signals(close_all=True) as signals:
        try:
            code = _run(config_path, out, err, signals, folders, rehearsal)
            stdout.flush()
            return code
        except BaseException as exc:
            if signals.second is None:
                if folders and isinstance(exc, NothingStarted) and folders[0].fresh:
                    _discard(folders[0])  # nothing was sent: no folder to be the latest run
                elif folders:  # an unexpected error mid-run: flush, say the folder is partial
                    _failed(folders[0], exc)
                raise
            return _stopped_at_once(signals.second, folders[0] if folders else None, err)


def _failed(folder: RunFolder, exc: BaseException) -> None:
    if isinstance(exc, OutputError):
        return  # said, and marked, where it was raised
    if folder.tracing is not None:
        folder.tracing.shutdown()
    folder.mark_incomplete([f"the run failed: {type(exc).__name__}: {exc}"])


def _stopped_at_once(signum: int, folder: RunFolder | None, err: TextIO) -> int:
    name = signal.Signals(signum).name
    message = f"stopped at once on a second signal ({name})"
    if folder is None:
        print(f"{message}; nothing was written", file=err)
        return exit_code(signum)
    if folder.tracing is not None:
        folder.tracing.close_now()  # whole lines only; the last spans are dropped
    missing = folder.missing()
    reason = message
    if [name for name in missing if name != TRACE_FILE]:
        reason += f"; not written: {', '.join(name for name in missing if name != TRACE_FILE)}"
    if TRACE_FILE in missing:
        reason += f"; {TRACE_FILE} lacks the last spans"
    print(f"{reason}; {folder.mark_incomplete([reason])}", file=err)
    return exit_code(signum)


class RehearsalRequest(msgspec.Struct, frozen=True):
    """``orchestrator rehearse``: how much of the recorded data, from when, with which faults."""

    hours: int | None = None  # None: to the end of the data
    start: str | None = None  # None: the config's data.start, else the data's start
    faults: Path | None = None


Played = tuple[RunResult, RunResult | None]  # the run, and its baseline if it has one
# What a run plays, given its stop signals, tracer, journal and folder.
Play = Callable[[Signals, Tracer | None, JournalRecorder | None, Path], Awaitable[Played]]


def _session(
    loaded: Loaded,
    rehearsal: RehearsalRequest | None,
    progress: Callable[[str], Progress],
    err: TextIO,
) -> tuple[str, str, list[str], Play]:
    """What the run plays: (mode, client order id nonce, warnings, the coroutine)."""
    config = loaded.config
    if config.auto and rehearsal is not None:
        raise ConfigError(
            f"{loaded.path}: pairs: auto: a rehearsal trades the pairs listed in pairs: "
            "(a replay, a dry run or a live run ranks them with pairs: auto); "
            "orchestrator screen ranks them to choose"
        )
    if rehearsal is None and config.on_live_market:
        # The live and rehearsal sessions are imported only when a run is one: they
        # load ccxt and aiohttp (about 0.7 s), which a paper run never needs.
        from orchestrator.live.session import alerts_for, live_session

        # Read once, here: a missing or unusable key is said now, before anything else.
        keys = None if config.dry_run else credentials()
        alerts = alerts_for(config, err)  # as is an alert URL that cannot be used
        nonce = new_run_nonce()
        say = _teller(err)

        async def live(
            signals: Signals, tracer: Tracer | None, recorder: JournalRecorder | None, folder: Path
        ) -> Played:
            if alerts is not None:
                alerts.label = folder.name
            result = await live_session(
                config,
                strategies,
                signals,
                tracer,
                keys=keys,
                recorder=recorder,
                run_nonce=nonce,
                say=say,
                control=ControlBox(folder),
                close_on_stop=lambda: signals.close_all,
                alerts=alerts,
                on_equity=equity_file(folder, err),
            )
            return result, None

        mode = DRY_RUN if config.dry_run else "live"
        return mode, nonce, list(loaded.warnings), live
    prepared = prepare(loaded)
    if rehearsal is None:

        async def replay(
            signals: Signals, tracer: Tracer | None, recorder: JournalRecorder | None, folder: Path
        ) -> Played:
            return await replay_both(prepared, progress, signals, tracer, recorder)

        return config.mode, REPLAY_NONCE, prepared.warnings, replay
    from orchestrator.live.session import alerts_for  # (as live_session above)
    from orchestrator.rehearsal import plan as rehearsal_plan
    from orchestrator.rehearsal import rehearse
    from orchestrator.venue.faults import load_faults
    from orchestrator.venue.market import require_hourly

    for data in prepared.datasets:  # said now, before the run's folder is made
        require_hourly(data, f"{loaded.data_dir()}: {data.spot_symbol.replace('/', '')}")
    start = ms_of(rehearsal.start) if rehearsal.start else ms_of(config.data.start)
    # Read now: a fault file that cannot be used stops the rehearsal before its folder.
    faults = load_faults(rehearsal.faults) if rehearsal.faults is not None else None
    plan, notes = rehearsal_plan(prepared.datasets, start, rehearsal.hours, faults)
    for note in notes:
        print(f"note: {note}", file=err)
    rehearsal_alerts = alerts_for(config, err)

    nonce = new_run_nonce()

    async def rehearse_it(
        signals: Signals, tracer: Tracer | None, recorder: JournalRecorder | None, folder: Path
    ) -> Played:
        if rehearsal_alerts is not None:
            rehearsal_alerts.label = folder.name
        return await rehearse(
            config,
            prepared.loaded.data_dir(),
            prepared.datasets,
            prepared.instruments,
            strategies,
            plan,
            signals,
            tracer,
            recorder=recorder,
            run_nonce=nonce,
            progress=ProgressBar("rehearsal", err, unit="hours", pipe=False),
            control=ControlBox(folder),
            close_on_stop=lambda: signals.close_all,
            alerts=rehearsal_alerts,
        )

    return "rehearsal", nonce, prepared.warnings, rehearse_it


def _run(
    config_path: Path,
    out: TextIO,
    err: TextIO,
    signals: Signals,
    folders: list[RunFolder],
    rehearsal: RehearsalRequest | None = None,
) -> int:
    if rehearsal is None and config_path.is_dir():
        return _resume(config_path, out, err, signals, folders)
    loaded = load(config_path)
    bars = _bars(err)
    mode, nonce, warnings, play = _session(loaded, rehearsal, bars, err)
    for warning in warnings:
        print(f"warning: {warning}", file=err)
    output = loaded.output_dir()
    files.ensure_writable(output, create=True)
    if signals.first is not None:  # during the loading: nothing has run
        print(f"stopped by {signal.Signals(signals.first).name} before the replay", file=err)
        return exit_code(signals.first)
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid4().hex[:6]}"
    try:
        (output / run_id).mkdir()
    except OSError as exc:
        raise OutputError(f"run folder {output / run_id}: {files.describe(exc)}") from None
    config = loaded.config
    results = _results(config, mode)
    traces = [TRACE_FILE] if config.tracing.enabled else []
    folder = RunFolder(output / run_id, [CONFIG_FILE, *results, *traces])
    folders.append(folder)
    problem = folder.write(CONFIG_FILE, lambda temp: shutil.copyfile(loaded.path, temp))
    if problem is None and traces:
        try:
            folder.tracing = RunTracing(
                run_id, mode, folder.path / TRACE_FILE, config.tracing.otlp_endpoint
            )
        except OSError as exc:
            problem = f"could not open {TRACE_FILE}: {files.describe(exc)}"
    journal: Journal | None = None
    if problem is None:
        try:
            journal = Journal.create(
                folder.path,
                run_id=run_id,
                mode=mode,
                run_nonce=nonce,
                config_text=loaded.path.read_text(encoding="utf-8"),
            )
            journal.set_meta(CONFIG_PATH, str(loaded.path))
        except (JournalError, OSError) as exc:
            problem = f"could not create the journal: {exc}"
    if problem is not None:
        raise OutputError(f"{problem}; nothing ran; {_discard(folder)}")
    assert journal is not None
    return _play(out, err, signals, folder, warnings, play, JournalRecorder(journal), bars)


def _bars(err: TextIO) -> ProgressBars:
    # ProgressBar looked up here at each bar: tests replace it to act mid-run.
    return ProgressBars(lambda label: ProgressBar(label, err))


def _discard(folder: RunFolder) -> str:
    """A run that could not start leaves no folder behind (it would be the "latest run",
    holding nothing): what was made is removed; what to tell the user about it."""
    if folder.tracing is not None:
        folder.tracing.close_now()
    try:
        shutil.rmtree(folder.path)
    except OSError as exc:
        marked = folder.mark_incomplete(["the run could not start; nothing ran"])
        return f"its folder could not be removed ({files.describe(exc)}): {marked}"
    return f"its folder {folder.path} was removed"


def _resume(
    run_dir: Path, out: TextIO, err: TextIO, signals: Signals, folders: list[RunFolder]
) -> int:
    """``run --resume RUN_DIR``, with the run's own config (its folder's config.yaml;
    relative paths resolved where the original config was).

    A paper run on recorded data replays again from the start, every write checked
    against its journal up to where the journal ends (the replay is deterministic),
    then goes on: it ends as the run left uninterrupted would have. A live run takes
    back its journal's positions, reconciles them with the venue (live/resume.py) and
    carries on trading."""
    copy = run_dir / CONFIG_FILE
    bars = _bars(err)
    journal = Journal.open(run_dir)  # the version, the file, and one writer at a time
    try:
        try:  # the results go there: refused now, not as a traceback half way
            files.ensure_writable(run_dir, create=False)
        except OutputError as exc:
            raise OutputError(
                f"{run_dir}: the run folder cannot be written, so it cannot be resumed "
                f"({exc}); nothing was done"
            ) from None
        meta = journal.meta()
        if not copy.is_file():
            raise OrchestratorError(
                f"{run_dir}: the run folder lacks its config ({CONFIG_FILE}); nothing was done"
            )
        mode = meta.get("mode")
        if mode not in ("paper", "live", DRY_RUN):
            why = (
                "a rehearsal's venue ran inside its process and ended with it; rehearse again"
                if mode == "rehearsal"
                else f"runs of mode {mode!r} cannot be resumed"
            )
            raise OrchestratorError(
                f"{run_dir}: {why}; `orchestrator journal {run_dir}` shows what it holds; "
                "nothing was sent"
            )
        loaded = load(copy)
        original = Path(meta.get(CONFIG_PATH, str(copy)))
        loaded = msgspec.structs.replace(loaded, path=original)
        configured = DRY_RUN if loaded.config.dry_run else loaded.config.mode
        if configured != mode:
            raise OrchestratorError(
                f"{run_dir}: its {CONFIG_FILE} says {configured}, its journal "
                f"{mode}; nothing was done"
            )
        if mode in ("live", DRY_RUN):
            nonce, warnings, play = _resumed_live(loaded, journal, meta, err)
            recorder = JournalRecorder(journal)
        else:
            mode, nonce, warnings, play = _session(loaded, None, bars, err)
            recorder = ResumingRecorder(journal)
        if nonce != meta.get("run_nonce"):
            raise OrchestratorError(f"{run_dir}: the journal's client order id nonce differs")
        try:
            (run_dir / INCOMPLETE).unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{run_dir}: its {INCOMPLETE} file cannot be removed, so the run cannot be "
                f"resumed ({files.describe(exc)}); nothing was done"
            ) from None
    except BaseException:
        journal.close()
        raise
    for warning in warnings:
        print(f"warning: {warning}", file=err)
    config = loaded.config
    results = _results(config, mode)
    traces = [TRACE_FILE] if config.tracing.enabled else []
    folder = RunFolder(run_dir, [*results, *traces], fresh=False)
    folders.append(folder)
    if traces:
        try:
            if mode == "paper":
                # The replay derives every position again: its traces replace the first
                # attempt's. A live run's traces are history: the resumed run's follow.
                (run_dir / TRACE_FILE).unlink(missing_ok=True)
            folder.tracing = RunTracing(
                run_dir.name, mode, run_dir / TRACE_FILE, config.tracing.otlp_endpoint
            )
        except OSError as exc:
            recorder.journal.close()
            raise OutputError(
                f"{run_dir / TRACE_FILE} cannot be written: {files.describe(exc)}; nothing was done"
            ) from None
    how = "replaying it against its journal" if mode == "paper" else "reconciling with the venue"
    print(f"resuming {run_dir}: {how}", file=err)
    return _play(out, err, signals, folder, warnings, play, recorder, bars)


def _results(config: Config, mode: str) -> list[str]:
    """The result files written at the end: a live run's or dry run's equity.csv is
    written as it goes instead (equity_file)."""
    equity = [] if mode in ("live", DRY_RUN) else [EQUITY_FILE]
    return [*RESULT_FILES, *equity, *([CHART_FILE] if config.output.chart else [])]


def equity_file(folder: Path, err: TextIO) -> Callable[[int, Decimal], None]:
    """A live run's equity.csv, a row appended at each hourly sample; a write that fails
    is said once and the run goes on (its summary still has the figures)."""
    file = EquityFile(folder / EQUITY_FILE)

    def append(time_ms: int, value: Decimal) -> None:
        told = file.problem
        file.append(time_ms, value)
        if file.problem is not None and told is None:
            print(f"warning: {file.problem}; the run goes on without it", file=err)

    return append


def _teller(err: TextIO) -> Callable[[str], None]:
    """A live run's status lines, on stderr."""

    def say(line: str) -> None:
        print(f"live: {line}", file=err, flush=True)

    return say


def _resumed_live(
    loaded: Loaded, journal: Journal, meta: dict[str, str], err: TextIO
) -> tuple[str, list[str], Play]:
    """A live run carried on: same nonce, the journal's positions and ledger."""
    from orchestrator.live.resume import Journaled  # (as in _session: ccxt only if live)
    from orchestrator.live.session import alerts_for, live_session

    config, nonce = loaded.config, meta.get("run_nonce", "")
    keys = None if config.dry_run else credentials()  # (as in _session)
    alerts = alerts_for(config, err)
    journaled = Journaled.read(journal, "strategy")
    say = _teller(err)

    async def live(
        signals: Signals, tracer: Tracer | None, recorder: JournalRecorder | None, folder: Path
    ) -> Played:
        if alerts is not None:
            alerts.label = folder.name
        result = await live_session(
            config,
            strategies,
            signals,
            tracer,
            keys=keys,
            recorder=recorder,
            run_nonce=nonce,
            resumed=journaled,
            control=ControlBox(folder),
            close_on_stop=lambda: signals.close_all,
            say=say,
            alerts=alerts,
            on_equity=equity_file(folder, err),
        )
        return result, None

    return nonce, list(loaded.warnings), live


def _play(
    out: TextIO,
    err: TextIO,
    signals: Signals,
    folder: RunFolder,
    warnings: list[str],
    play: Play,
    recorder: JournalRecorder,
    bars: ProgressBars,
) -> int:
    journal = recorder.journal
    recorder.on_failure = signals.stop_for  # a journal that cannot be written stops the run
    signals.when_stopping(recorder.stopping)
    started = time.perf_counter()
    try:
        result, baseline = anyio.run(
            play,
            signals,
            folder.tracing.tracer() if folder.tracing else None,
            recorder,
            folder.path,
        )
        recorder.flush()
    finally:
        journal.close()
        bars.end()  # a bar stopped short of 100 % ends its line before anything prints
    elapsed = time.perf_counter() - started

    # The results first, then the traces: a slow or unreachable collector delays
    # nothing that matters.
    interrupted = result.interrupted or (baseline is not None and baseline.interrupted)
    summary = summarise(folder.path.name, result, baseline, warnings)
    problems = _write_results(folder, summary, result, baseline)
    if recorder.problems:
        problems += [f"journal: {p}" for p in recorder.problems]
    unbalanced = _print_results(out, summary, result, baseline, elapsed, interrupted, signals.cause)
    if folder.tracing is not None:
        trace_problems = folder.tracing.shutdown()
        if not trace_problems and not (folder.path / TRACE_FILE).is_file():  # deleted
            trace_problems.append("the file is gone (deleted during the run?)")
        if folder.tracing.otlp_warning:
            print(f"warning: {folder.tracing.otlp_warning}", file=err)
        if trace_problems:
            problems += [f"{TRACE_FILE}: {p}" for p in trace_problems]
        else:
            folder.written.append(TRACE_FILE)
            print(f"traces: orchestrator traces {folder.path / TRACE_FILE}", file=out)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=err)
        print(f"error: the run is incomplete: {folder.mark_incomplete(problems)}", file=err)
        return EXIT_WRITE_FAILED
    print(f"written to {folder.path}", file=out)
    return _exit(err, unbalanced, signals.first, result.refused)


def _exit(
    err: TextIO, unbalanced: list[str], signum: int | None, refused: str | None = None
) -> int:
    """The exit code of a run whose files were all written: a signal's, else 5 when the
    venue refused the key, else 4 when a ledger does not balance (each said on stderr),
    else 0."""
    for line in unbalanced:
        print(f"error: {line}", file=err)
    if refused is not None:
        print(f"error: stopped: {refused}; positions left as they are", file=err)
    if signum is not None:
        return exit_code(signum)
    if refused is not None:
        return EXIT_KEY_REFUSED
    return EXIT_UNBALANCED if unbalanced else 0


def _write_results(
    folder: RunFolder, summary: Summary, result: RunResult, baseline: RunResult | None
) -> list[str]:
    """Every result file, each atomically; what could not be written."""
    summary_json = msgspec.json.format(msgspec.json.encode(summary))
    runs = [result] if baseline is None else [result, baseline]
    writes: dict[str, Callable[[Path], object]] = {
        "summary.json": lambda path: path.write_bytes(summary_json),
        "ledger.csv": lambda path: write_ledgers(path, [(r.label, r.ledger) for r in runs]),
        "positions.csv": lambda path: write_positions(path, runs),
        EQUITY_FILE: lambda path: write_equity(path, result, baseline),
        CHART_FILE: lambda path: write_chart(path, result, baseline),
    }
    problems = [folder.write(name, writes[name]) for name in folder.expected if name in writes]
    return [p for p in problems if p is not None]


def _print_results(
    out: TextIO,
    summary: Summary,
    result: RunResult,
    baseline: RunResult | None,
    elapsed: float,
    interrupted: bool,
    cause: str | None = None,
) -> list[str]:
    """The table and the ledger's balance line; returns a line for each run whose
    ledger does not balance."""
    span = f"{summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC"
    status = ""
    if interrupted and cause is not None:  # the run stopped itself: no close was journaled
        status = f"INTERRUPTED: stopped early ({cause}); "
    elif interrupted:
        # What the stop did to the positions open then (trading/holding.py), as it happened.
        stopped = result.stopped if result.interrupted else "the always-hedged baseline cut short"
        why = f" ({result.refused})" if result.refused else ""
        status = f"INTERRUPTED: stopped early{why}, {stopped}; "
    print(
        f"run {summary.run_id}: {status}{span}, {result.events:,} events in {elapsed:.1f} s",
        file=out,
    )
    print(format_table(summary), file=out)
    unbalanced: list[str] = []
    for run in [result] if baseline is None else [result, baseline]:
        line, balances = balance_line(run)
        print(line, file=out)
        if not balances:
            unbalanced.append(f"{run.label}: {line}")
    print(
        f"positions by state: {summary.positions}, always hedged: {summary.baseline_positions}",
        file=out,
    )
    if summary.rotations:
        print(f"rotations: {len(summary.rotations)} (each in summary.json)", file=out)
    return unbalanced


def balance_line(result: RunResult) -> tuple[str, bool]:
    """Whether a run's ledger balances, with both sides (and the difference when not)."""
    ledger, equity = ledger_identity(result)
    quote, start = result.quote, result.starting_balance
    if ledger == equity:
        return (
            f"{result.label} ledger balances: {start} + funding - fees + price PnL = "
            f"{ledger} {quote} = ending equity",
            True,
        )
    with exact():
        difference = ledger - equity
    return (
        f"{result.label} ledger DOES NOT BALANCE: {start} + funding - fees + price PnL = "
        f"{ledger} {quote}, ending equity {equity} {quote}, difference {difference} {quote}",
        False,
    )


def main(args: argparse.Namespace) -> int:
    """``orchestrator run [CONFIG]`` or ``orchestrator run --resume RUN_DIR``."""
    if args.resume is not None:
        if not args.resume.is_dir():
            raise OrchestratorError(f"--resume {args.resume}: not a run folder")
        return run(args.resume)
    if args.config.is_dir():
        raise OrchestratorError(f"{args.config} is a folder: to resume that run, --resume it")
    return run(args.config)
