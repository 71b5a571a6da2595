"""The ``orchestrator`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import diagrams
from orchestrator.config import (
    DATA_ENV,
    SPOT_SYMBOL,
    ConfigError,
    config_schema,
    load_config,
    write_schema,
)
from orchestrator.exceptions import OrchestratorError
from orchestrator.market.recorded import DataError

if TYPE_CHECKING:
    from orchestrator.config import Loaded
    from orchestrator.tracing import trace_file


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import main as demo

    demo(load_config(args.config), sys.stdout)
    return 0


def _run(args: argparse.Namespace) -> int:
    from orchestrator.run.app import run

    if args.resume is not None:
        if not args.resume.is_dir():
            raise OrchestratorError(f"--resume {args.resume}: not a run folder")
        return run(args.resume)
    if args.config.is_dir():
        raise OrchestratorError(f"{args.config} is a folder: to resume that run, --resume it")
    return run(args.config)


def _rehearse(args: argparse.Namespace) -> int:
    from orchestrator.run.app import RehearsalRequest, run

    request = RehearsalRequest(hours=args.hours, start=args.start, faults=args.faults)
    return run(args.config, rehearsal=request)


def _sweep(args: argparse.Namespace) -> int:
    from orchestrator.sweep import app, spec

    if args.schema:
        print(json.dumps(spec.sweep_schema(), indent=2))
        return 0
    if args.write_schema:
        spec.write_schema(args.write_schema)
        print(f"wrote {args.write_schema}")
        return 0
    options = {"scheduler": args.scheduler, "workers": args.workers, "in_process": args.in_process}
    if args.resume is not None:
        if not args.resume.is_dir():
            raise OrchestratorError(f"--resume {args.resume}: not a sweep folder")
        return app.sweep(None, resume=args.resume, **options)
    if args.sweep_file.is_dir():
        raise OrchestratorError(f"{args.sweep_file} is a folder: to resume that sweep, --resume it")
    return app.sweep(args.sweep_file, **options)


def _check(args: argparse.Namespace) -> int:
    from orchestrator.run.check import check

    return check(args.config)


def _schema(args: argparse.Namespace) -> int:
    if args.write:
        write_schema(args.write)
        print(f"wrote {args.write}")
    else:
        print(json.dumps(config_schema(), indent=2))
    return 0


def _download(args: argparse.Namespace) -> int:
    import anyio

    from orchestrator.market import download as dl

    if args.attempts < 1 or args.timeout_ms < 1:
        raise OrchestratorError("--attempts and --timeout-ms must be at least 1")
    config = _download_config(args)
    if args.pairs:
        spots = [spot.strip() for spot in ",".join(args.pairs).split(",")]
    elif config is not None:
        spots = [pair.spot for pair in config.config.pairs]
    else:
        raise OrchestratorError(
            "--pairs: name the pairs (e.g. BTC/USDT,ETH/USDT), or --config a config "
            "whose pairs to fetch"
        )
    pairs = []
    for spot in spots:
        if not re.fullmatch(SPOT_SYMBOL, spot):
            raise dl.InvalidDateError(f"--pairs: {spot!r} is not a spot symbol like 'BTC/USDT'")
        pairs.append((spot, f"{spot}:{spot.split('/')[1]}"))  # its linear perpetual
    day = 86_400_000
    until = dl.parse_date(args.until) if args.until else int(time.time() * 1000) // day * day
    since = dl.parse_date(args.since) if args.since else until - 365 * day
    # Where the run reads: the config's data.dir ($ORCHESTRATOR_DATA first, as for a run).
    if args.data_dir is not None:
        data_dir: Path = args.data_dir
    elif config is not None:
        data_dir = config.data_dir()
    else:
        data_dir = Path(os.environ.get(DATA_ENV) or "data")

    async def fetch() -> list[Path]:
        exchange = dl.make_public_exchange(args.url, args.timeout_ms)
        try:
            return await dl.download(
                exchange, pairs, since, until, data_dir, attempts=args.attempts
            )
        finally:
            await exchange.close()

    print(f"downloading into {data_dir}", file=sys.stderr)
    for path in anyio.run(fetch):
        print(f"{path}")
    return 0


def _download_config(args: argparse.Namespace) -> Loaded | None:
    """The config whose pairs and data folder a download defaults to: --config, else
    ./config.yaml when it is there and something is left to default."""
    from orchestrator.config import load

    if args.config is not None:
        return load(args.config)
    if args.pairs and args.data_dir is not None:
        return None
    default = Path("config.yaml")
    return load(default) if default.is_file() else None


def _trace_file(args: argparse.Namespace) -> Path:
    from orchestrator.tracing import trace_file

    if args.file is not None:
        path: Path = args.file
        return path
    return trace_file.latest_trace_file(args.runs)


def _read_traces(path: Path) -> list[trace_file.SpanRecord]:
    from orchestrator.tracing import trace_file

    spans, problems = trace_file.read_spans(path)
    for problem in problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    return spans


def _traces(args: argparse.Namespace) -> int:
    from orchestrator.tracing import inspect

    path = _trace_file(args)
    spans = _read_traces(path)
    if args.position:
        detail = inspect.position_detail(spans, args.position)
        if args.json:
            print(json.dumps(inspect.detail_json(detail), indent=2))
        else:
            print(inspect.format_detail(detail))
        return 0
    summaries = inspect.positions(spans)
    if args.json:
        print(json.dumps(inspect.positions_json(summaries), indent=2))
    else:
        print(f"{path}: {len(summaries)} positions")
        print(inspect.format_positions(summaries))
    return 0


def _diagrams(args: argparse.Namespace) -> int:
    if args.position:
        from orchestrator.tracing import inspect

        detail = inspect.position_detail(_read_traces(_trace_file(args)), args.position)
        steps = [(t.event, t.source, t.target) for t in detail.transitions]
        if args.svg:
            if not diagrams.has_dot():
                print(
                    "error: --svg needs Graphviz's dot: apt-get install graphviz", file=sys.stderr
                )
                return 2
            args.svg.write_bytes(diagrams.svg("position", steps))
            print(f"wrote {args.svg}")
        else:
            print(diagrams.highlighted_mermaid("position", steps), end="")
        return 0
    if args.check:
        stale = diagrams.stale(args.out)
        for name in stale:
            print(f"{args.out / name} differs from the machine: run `orchestrator diagrams`")
        return 1 if stale else 0
    for path in diagrams.write(args.out):
        print(f"wrote {path}")
    if not diagrams.has_dot():
        print("no SVG: Graphviz's dot is not installed (apt-get install graphviz)")
    return 0


def _journal(args: argparse.Namespace) -> int:
    from orchestrator.journal import show

    print(show.render(args.run_dir, as_json=args.json))
    return 0


def _venue(args: argparse.Namespace) -> int:
    from orchestrator.venue import run as venue

    return venue.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Delta-neutral funding-rate arbitrage orchestrator."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="replay the recorded data through the strategy (paper), or trade (live)"
    )
    run.add_argument(
        "config", nargs="?", type=Path, default=Path("config.yaml"), help="the run config"
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="carry on a run that was stopped or killed, from its journal",
    )
    run.set_defaults(handler=_run)

    rehearse = commands.add_parser(
        "rehearse",
        help="the live path against the loopback venue on the recorded data (no key, no money)",
        description="Runs the live code path (ccxt, the LiveExecutor, the venue's answers) "
        "against the loopback Bybit venue replaying the recorded data, one market hour per "
        "cycle, then reports as a run does, beside the always-hedged baseline on paper.",
    )
    rehearse.add_argument(
        "config", nargs="?", type=Path, default=Path("config.yaml"), help="the run config"
    )
    rehearse.add_argument("--hours", type=int, help="market hours to rehearse (default: all)")
    rehearse.add_argument("--start", help="market time to start at, e.g. 2024-06-01")
    rehearse.add_argument("--faults", type=Path, metavar="FILE", help="a venue fault spec")
    rehearse.set_defaults(handler=_rehearse)

    sweep = commands.add_parser(
        "sweep",
        help="walk-forward parameter sweep on Dask; reports only out-of-sample results",
        description="Every parameter set replays each train window; the best is replayed on "
        "the test window after it, which it never saw. Writes sweeps/<id>/ (trials.csv, "
        "summary.json, chart.html, best.yaml). Trials run on a local Dask cluster (one worker "
        "per core) unless --scheduler names an existing one.",
    )
    sweep.add_argument(
        "sweep_file", nargs="?", type=Path, default=Path("sweep.yaml"), help="the sweep file"
    )
    sweep.add_argument(
        "--resume",
        type=Path,
        metavar="SWEEP_DIR",
        help="carry on a sweep, skipping its trials done",
    )
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://HOST:8786")
    sweep.add_argument("--workers", type=int, help="the local cluster's worker processes")
    sweep.add_argument(
        "--in-process", action="store_true", help="no Dask: the trials one after another here"
    )
    sweep.add_argument("--schema", action="store_true", help="print the sweep file's JSON Schema")
    sweep.add_argument("--write-schema", type=Path, metavar="FILE", help="write it to FILE")
    sweep.set_defaults(handler=_sweep)

    check = commands.add_parser("check", help="validate the config and its data without running")
    check.add_argument(
        "config", nargs="?", type=Path, default=Path("config.yaml"), help="the run config"
    )
    check.set_defaults(handler=_check)

    schema = commands.add_parser("schema", help="print the JSON Schema of config.yaml")
    schema.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE instead")
    schema.set_defaults(handler=_schema)

    demo = commands.add_parser("demo", help="open and close one paper position on stub prices")
    demo.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=Path("config.yaml"),
        help="the run config (fees, balance, size)",
    )
    demo.set_defaults(handler=_demo)

    data = commands.add_parser("data", help="market data for replays")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    down = data_commands.add_parser(
        "download",
        help="fetch funding rates, hourly candles and instrument limits from the venue",
        description="Resumable: run it again after an interruption to continue.",
    )
    down.add_argument(
        "--pairs",
        action="append",
        help="spot symbols, e.g. BTC/USDT,ETH/USDT; default: the config's pairs",
    )
    down.add_argument("--since", help="first day (UTC), e.g. 2024-01-01; default: a year ago")
    down.add_argument("--until", help="end (exclusive), e.g. 2025-01-01; default: today")
    down.add_argument(
        "--config",
        type=Path,
        help="the run config whose pairs and data.dir to use (default: ./config.yaml if there)",
    )
    down.add_argument(
        "--data-dir",
        type=Path,
        help=f"default: ${DATA_ENV}, else the config's data.dir, else ./data",
    )
    down.add_argument(
        "--url", help="a Bybit v5 compatible venue instead of Bybit, e.g. http://127.0.0.1:8999"
    )
    down.add_argument(
        "--attempts", type=int, default=6, help="tries per request on network errors (default 6)"
    )
    down.add_argument(
        "--timeout-ms", type=int, default=10_000, help="wait per request (default 10000)"
    )
    down.set_defaults(handler=_download)

    traces = commands.add_parser("traces", help="list a run's positions from its trace file")
    traces.add_argument("file", nargs="?", type=Path, help="OTLP JSON lines (default: latest run)")
    traces.add_argument("--position", metavar="ID", help="one position's span timeline and path")
    traces.add_argument("--json", action="store_true", help="machine-readable output")
    traces.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are")
    traces.set_defaults(handler=_traces)

    journal = commands.add_parser(
        "journal",
        help="show what a run's journal holds, without changing it",
        description="Prints the run's meta, its positions with their states and quantities, "
        "the open intents (requests with no final outcome) and how many transitions and "
        "ledger entries the journal holds. Reads without the run's lock: works while the "
        "run is going on, and changes nothing.",
    )
    journal.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    journal.add_argument("--json", action="store_true", help="machine-readable output")
    journal.set_defaults(handler=_journal)

    diag = commands.add_parser("diagrams", help="write the state diagrams from the machines")
    diag.add_argument(
        "--out", type=Path, default=Path("diagrams"), help="the folder written and checked"
    )
    diag.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    diag.add_argument(
        "--position", metavar="ID", help="print the machine with this position's path marked"
    )
    diag.add_argument("--traces", dest="file", type=Path, help="trace file (default: latest run)")
    diag.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are")
    diag.add_argument("--svg", type=Path, metavar="FILE", help="with --position: write an SVG")
    diag.set_defaults(handler=_diagrams)

    from orchestrator.venue.run import add_arguments as venue_arguments

    venue = commands.add_parser(
        "venue", help="run the loopback Bybit v5 venue on 127.0.0.1 until Ctrl-C"
    )
    venue_arguments(venue)
    venue.set_defaults(handler=_venue)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigError, DataError, OrchestratorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


class _OneLine(logging.Formatter):
    """A library's log record as one line: its exception's message, not its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]}"
        return text


def run() -> None:
    """Console-script entry point.

    Exit codes: 0 done; 1 ``diagrams --check`` found stale files; 2 an error
    said before anything ran (config, data, output folder); 3 a run whose
    results could not all be written (its folder is marked INCOMPLETE);
    128 + a signal's number when stopped by SIGINT (130), SIGHUP (129) or
    SIGTERM (143): see ``orchestrator.run.app``.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # piped into `head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except KeyboardInterrupt:  # Ctrl-C outside a run's own handling (a download, a check)
        print("stopped by Ctrl-C (SIGINT)", file=sys.stderr)
        code = 128 + signal.SIGINT
    sys.exit(code)
