"""`orchestrator run`: build the parts from the config, replay, write the run folder, report."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from uuid import uuid4

import anyio
import msgspec
from opentelemetry.trace import Tracer

from orchestrator.config import Config, ConfigError, Loaded, load, parse_time
from orchestrator.market.recorded import DataError, PairData, load_instruments, load_pair
from orchestrator.models import Instrument
from orchestrator.run.chart import write_chart
from orchestrator.run.engine import Progress, Replay, RunResult, StopFlag
from orchestrator.run.report import format_table, summarise, write_positions
from orchestrator.strategy.funding import AlwaysHedged, FundingStrategy, Strategy
from orchestrator.tracing.position import TRACER_NAME
from orchestrator.tracing.setup import TRACE_FILE, make_provider

EXIT_INTERRUPTED = 130


def _ms(text: str | None) -> int | None:
    return None if text is None else int(parse_time(text).timestamp() * 1000)


class Prepared(msgspec.Struct, frozen=True):
    loaded: Loaded
    instruments: dict[str, Instrument]
    datasets: list[PairData]
    warnings: list[str]


def prepare(loaded: Loaded) -> Prepared:
    """Everything a run reads, checked: instruments for every symbol, data for every pair.

    An unknown symbol is a config error at its YAML path; missing data says which
    command fetches it.
    """
    config, data_dir = loaded.config, loaded.data_dir()
    symbols = [s for p in config.pairs for s in (p.spot, p.perp)]
    try:
        instruments = load_instruments(data_dir, symbols, venue=config.venue)
    except DataError as exc:
        for i, pair in enumerate(config.pairs):
            for leg, symbol in (("spot", pair.spot), ("perp", pair.perp)):
                if f"'{symbol}'" in str(exc):
                    raise ConfigError(
                        f"{loaded.path}: pairs[{i}].{leg}: unknown symbol '{symbol}' ({exc})"
                    ) from exc
        raise
    start, end = _ms(config.data.start), _ms(config.data.end)
    datasets = [
        load_pair(data_dir, p.spot, p.perp, venue=config.venue, start_ms=start, end_ms=end)
        for p in config.pairs
    ]
    warnings = [w for d in datasets for w in d.warnings]
    return Prepared(loaded, instruments, datasets, warnings)


def strategies(config: Config) -> list[Strategy]:
    return [
        FundingStrategy(config.strategy, config.fees, config.paper.slippage) for _ in config.pairs
    ]


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, label: str, out: TextIO) -> None:
        self._label, self._out = label, out
        self._tty = out.isatty()
        self._last_decile = -1
        self._started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        decile = int(frac * 10)
        if not self._tty and decile == self._last_decile:
            return
        self._last_decile = decile
        bar = "#" * int(frac * 30)
        elapsed = time.perf_counter() - self._started
        line = (
            f"{self._label:14} [{bar:<30}] {frac:6.1%}  {done:,}/{total:,} events  {elapsed:5.1f} s"
        )
        self._out.write(("\r" + line) if self._tty else line + "\n")
        if self._tty and done >= total:
            self._out.write("\n")
        self._out.flush()


async def replay_both(
    prepared: Prepared,
    make_progress: Callable[[str], Progress],
    stop: StopFlag,
    tracer: Tracer | None = None,
) -> tuple[RunResult, RunResult]:
    """The strategy's run (traced), then the always-hedged baseline on the same data."""
    config = prepared.loaded.config
    result = await Replay(
        config, prepared.datasets, prepared.instruments, strategies(config), tracer=tracer
    ).run(progress=make_progress("strategy"), stop=stop)
    baseline = await Replay(
        config,
        prepared.datasets,
        prepared.instruments,
        [AlwaysHedged() for _ in config.pairs],
        label="always hedged",
    ).run(progress=make_progress("always hedged"), stop=stop)
    return result, baseline


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C (or SIGTERM) asks the replay to stop at the next instant: no new
    positions, open ones closed on the last prices, everything written. A second
    Ctrl-C interrupts at once."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(config_path: Path, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    with stop_on_signals() as stop:
        return _run(config_path, out, err, stop)


def _run(config_path: Path, out: TextIO, err: TextIO, stop: threading.Event) -> int:
    loaded = load(config_path)
    prepared = prepare(loaded)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=err)
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid4().hex[:6]}"
    folder = loaded.output_dir() / run_id
    folder.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(loaded.path, folder / "config.yaml")

    tracing = loaded.config.tracing
    provider = (
        make_provider(run_id, loaded.config.mode, folder / TRACE_FILE, tracing.otlp_endpoint)
        if tracing.enabled
        else None
    )
    started = time.perf_counter()
    try:
        result, baseline = anyio.run(
            replay_both,
            prepared,
            lambda label: ProgressBar(label, err),
            stop,
            provider.get_tracer(TRACER_NAME) if provider else None,
        )
    finally:
        if provider is not None:
            provider.shutdown()  # flushes every span, whichever way the run ended
    elapsed = time.perf_counter() - started

    interrupted = result.interrupted or baseline.interrupted
    summary = summarise(run_id, result, baseline, prepared.warnings)
    (folder / "summary.json").write_bytes(msgspec.json.format(msgspec.json.encode(summary)))
    result.ledger.write_csv(folder / "ledger.csv")
    write_positions(folder / "positions.csv", result.positions)
    if loaded.config.output.chart:
        write_chart(folder / "chart.html", result, baseline)

    span = f"{summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC"
    status = (
        "INTERRUPTED: stopped early, open positions closed at the last prices; "
        if interrupted
        else ""
    )
    print(
        f"run {run_id}: {status}{span}, {result.events:,} events in {elapsed:.1f} s",
        file=out,
    )
    print(format_table(summary), file=out)
    check = "balances" if summary.ledger_balances else "DOES NOT BALANCE"
    print(
        f"ledger {check}: {summary.starting_balance} + funding - fees + price PnL = "
        f"{summary.ending_balance} {summary.quote}; positions by state: {summary.positions}",
        file=out,
    )
    if provider is not None:
        print(f"traces: orchestrator traces {folder / TRACE_FILE}", file=out)
    print(f"written to {folder}", file=out)
    return EXIT_INTERRUPTED if interrupted else 0


def check(config_path: Path, out: TextIO = sys.stdout) -> int:
    prepared = prepare(load(config_path))
    config = prepared.loaded.config
    rows = sum(len(d.spot) + len(d.perp) + len(d.funding) for d in prepared.datasets)
    print(
        f"{config_path}: OK: {config.mode} on {config.venue}, "
        f"{len(config.pairs)} pairs, {rows:,} market events in {prepared.loaded.data_dir()}",
        file=out,
    )
    return 0
