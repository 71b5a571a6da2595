"""The ``orchestrator`` command line: every command's arguments, and the dispatch to
the command, one module each in orchestrator/commands/ (``main(args)``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from orchestrator.config import DATA_ENV, ConfigError
from orchestrator.exceptions import OrchestratorError
from orchestrator.market.recorded import DataError
from orchestrator.venue import options as venue_options

WAIT_HELP = "how long to wait for the run's answer (default 30)"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not 0 < value <= 3600:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text[:40]} is not from above 0 to 3600 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not from 1 to 1,000,000")
    return value


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

    check = commands.add_parser("check", help="validate the config and its data without running")
    check.add_argument(
        "config", nargs="?", type=Path, default=Path("config.yaml"), help="the run config"
    )

    screen = commands.add_parser(
        "screen", help="every spot + perp pair ranked by expected net annualised yield"
    )
    screen.add_argument(
        "config", nargs="?", type=Path, default=Path("config.yaml"), help="the run config"
    )
    screen.add_argument(
        "--at",
        metavar="TIME",
        help="recorded data: as known then, 1970 to 2099 (default: the newest settlement of "
        "a pair that can be read)",
    )
    screen.add_argument("--top", type=_count, metavar="N", help="only the N best-ranked pairs")
    screen.add_argument(
        "--history-days",
        type=_count,
        metavar="D",
        help="settled rates read (universe.history_days)",
    )
    screen.add_argument(
        "--horizon-hours", type=_count, metavar="H", help="holding horizon (universe.horizon_hours)"
    )
    shape = screen.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="JSON on stdout")
    shape.add_argument("--csv", action="store_true", help="CSV on stdout")

    schema = commands.add_parser("schema", help="print the JSON Schema of config.yaml")
    schema.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE instead")

    demo = commands.add_parser("demo", help="open and close one paper position on stub prices")
    demo.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=Path("config.yaml"),
        help="the run config (fees, balance, size)",
    )

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
        help="spot symbols, e.g. BTC/USDT,ETH/USDT; default: the config's pairs (or --top, "
        "--universe)",
    )
    down.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="the N pairs of the venue's whole market (a linear USDT perp and its spot, both "
        "trading) with the most 24 h perp turnover; with --universe, the N best by expected "
        "net yield of those the universe lets in",
    )
    down.add_argument(
        "--universe",
        action="store_true",
        help="the pairs the config's universe section lets in (turnover, history, include, "
        "exclude, max_pairs), ranked by expected net yield from the venue's funding history",
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

    traces = commands.add_parser("traces", help="list a run's positions from its trace file")
    traces.add_argument("file", nargs="?", type=Path, help="OTLP JSON lines (default: latest run)")
    traces.add_argument("--position", metavar="ID", help="one position's span timeline and path")
    traces.add_argument("--json", action="store_true", help="machine-readable output")
    traces.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are")

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

    status = commands.add_parser(
        "status",
        help="where a run stands: running, stopped or died; positions, equity, funding",
        description="Reads a run's folder (the latest run by default), running or stopped, "
        "without disturbing it: whether a process runs it, stopped it cleanly or died; each "
        "position's state, legs, entry prices, unrealised PnL, funding and fees; the equity "
        "and its parts; funding today (UTC) and in total; pauses; the last venue contact.",
    )
    status.add_argument(
        "run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a run folder (default: latest)"
    )
    status.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C; on a pipe, one snapshot after "
        "another, separated by a blank line",
    )

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

    # Steering a running live run or rehearsal from another terminal (commands/control.py).
    def steering(
        name: str,
        options: Callable[[argparse.ArgumentParser], object],
        help: str,
        description: str | None = None,
    ) -> None:
        """A steering command: RUN_DIR, its own ``options``, then --wait."""
        command = commands.add_parser(name, help=help, description=description)
        command.add_argument(
            "run_dir", type=Path, metavar="RUN_DIR", help="the running run's folder"
        )
        options(command)
        command.add_argument(
            "--wait", type=_seconds, default=30.0, metavar="SECONDS", help=WAIT_HELP
        )
        command.set_defaults(module="control")

    def one_pair_or_all(command: argparse.ArgumentParser) -> None:
        command.add_argument("--pair", metavar="PAIR", help="one pair, e.g. BTCUSDT (default: all)")

    def close_options(command: argparse.ArgumentParser) -> None:
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--pair", metavar="PAIR", help="one pair, e.g. BTCUSDT")
        which.add_argument("--all", action="store_true", help="every pair")

    steering(
        "stop",
        lambda c: c.add_argument(
            "--close-all", action="store_true", help="close every position first"
        ),
        help="stop a running live run: no more opens, then exit with its summary",
        description="The run stops at its next cycle, as on SIGTERM: positions are closed "
        "or left as live.on_stop says; with --close-all every position is closed (both legs "
        "together, as any close). SIGUSR1 to the run's process does the same as --close-all.",
    )
    steering(
        "pause",
        one_pair_or_all,
        help="a running live run opens nothing more (what it holds it keeps)",
    )
    steering(
        "resume-trading",
        one_pair_or_all,
        help="a paused live run opens again (a pause by the breaker too)",
    )
    steering(
        "close",
        close_options,
        help="a running live run closes a pair's position (or all) now and opens nothing "
        "more there until resume-trading",
    )
    steering(
        "set",
        lambda c: c.add_argument(
            "settings", nargs="+", metavar="NAME=VALUE", help="e.g. entry_annualised=0.15"
        ),
        help="a running live run decides with new strategy thresholds from its next cycle",
        description="NAME=VALUE for strategy.entry_annualised, exit_annualised, max_basis or "
        "min_hold_hours: checked by the config's own rules, journaled, applied from the next "
        "decision (the run's config.yaml keeps what it started with).",
    )

    dashboard = commands.add_parser(
        "dashboard",
        help="a local web app over the runs and sweeps, on 127.0.0.1 until Ctrl-C",
        description="Every run (replay, dry run, live, rehearsal; running or finished): its "
        "status, positions and their paths on the position machine, money and analytics, "
        "updated as its journal changes. Read-only unless started with --controls or "
        "$ORCHESTRATOR_DASHBOARD_TOKEN: then a running run can be paused, resumed or "
        "closed from it, with the token.",
    )
    dashboard.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        metavar="FILE",
        help="the config whose runs folder, data and universe to show (default config.yaml)",
    )
    dashboard.add_argument(
        "--runs",
        type=Path,
        metavar="DIR",
        help="where runs are (default: the config's output.dir, or runs)",
    )
    dashboard.add_argument(
        "--sweeps",
        type=Path,
        metavar="DIR",
        help="where sweeps are (default: sweep.yaml's output, or sweeps)",
    )
    dashboard.add_argument(
        "--host", default="127.0.0.1", metavar="HOST", help="address to bind (127.0.0.1)"
    )
    dashboard.add_argument(
        "--port", type=int, default=8050, metavar="N", help="port (default 8050; 0: any free port)"
    )
    dashboard.add_argument(
        "--controls", action="store_true", help="turn the controls on with a new token, printed"
    )

    venue = commands.add_parser(
        "venue", help="run the loopback Bybit v5 venue on 127.0.0.1 until Ctrl-C"
    )
    venue_options.add_arguments(venue)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The command's module is imported when it runs, by its name, not before: the parser
    # above is all `orchestrator --help` needs, and a paper run never pays for ccxt,
    # aiohttp, Dask or OpenTelemetry's SDK. The one import not at the top, on purpose.
    module = getattr(args, "module", args.command)  # stop, pause, ...: control
    command = importlib.import_module(f"orchestrator.commands.{module}")
    try:
        code: int = command.main(args)
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

    Exit codes: 0 done; 1 ``diagrams --check`` found stale files, or ``stop``,
    ``pause``, ``resume-trading``, ``close`` or ``set`` had no answer from the run in time (the
    request waits for its next cycle); 2 an error said before anything ran
    (config, data, output folder; a run that is not running or refused the
    request); 3 a run whose results could not all be written (its folder is
    marked INCOMPLETE); 128 + a signal's number when stopped by SIGINT (130),
    SIGHUP (129) or SIGTERM (143), or a live run by SIGUSR1 (138: every
    position closed first): see ``orchestrator.commands.run``.
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
