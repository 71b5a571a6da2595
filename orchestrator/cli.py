"""The ``orchestrator`` command."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

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


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import main as demo

    demo(load_config(args.config), sys.stdout)
    return 0


def _run(args: argparse.Namespace) -> int:
    from orchestrator.run.app import run

    return run(args.config)


def _check(args: argparse.Namespace) -> int:
    from orchestrator.run.app import check

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

    pairs = []
    for spot in ",".join(args.pairs).split(","):
        spot = spot.strip()
        if not re.fullmatch(SPOT_SYMBOL, spot):
            raise dl.InvalidDateError(f"--pairs: {spot!r} is not a spot symbol like 'BTC/USDT'")
        pairs.append((spot, f"{spot}:{spot.split('/')[1]}"))  # its linear perpetual
    day = 86_400_000
    until = dl.parse_date(args.until) if args.until else int(time.time() * 1000) // day * day
    since = dl.parse_date(args.since) if args.since else until - 365 * day
    data_dir = args.data_dir or Path(os.environ.get(DATA_ENV) or "data")
    data_dir.mkdir(parents=True, exist_ok=True)

    async def fetch() -> list[Path]:
        exchange = dl.make_public_exchange()
        try:
            return await dl.download(exchange, pairs, since, until, data_dir)
        finally:
            await exchange.close()

    for path in anyio.run(fetch):
        print(f"{path}")
    return 0


def _diagrams(args: argparse.Namespace) -> int:
    if args.check:
        stale = diagrams.stale(args.out)
        for name in stale:
            print(f"{args.out / name} differs from the machine: run `orchestrator diagrams`")
        return 1 if stale else 0
    for path in diagrams.write(args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Delta-neutral funding-rate arbitrage orchestrator."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="replay the recorded data through the strategy (paper)")
    run.add_argument("config", nargs="?", type=Path, default=Path("config.yaml"))
    run.set_defaults(handler=_run)

    check = commands.add_parser("check", help="validate the config and its data without running")
    check.add_argument("config", nargs="?", type=Path, default=Path("config.yaml"))
    check.set_defaults(handler=_check)

    schema = commands.add_parser("schema", help="print the JSON Schema of config.yaml")
    schema.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE instead")
    schema.set_defaults(handler=_schema)

    demo = commands.add_parser("demo", help="open and close one paper position on stub prices")
    demo.add_argument("config", nargs="?", type=Path, default=Path("config.yaml"))
    demo.set_defaults(handler=_demo)

    data = commands.add_parser("data", help="market data for replays")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    down = data_commands.add_parser(
        "download",
        help="fetch funding rates, hourly candles and instrument limits from the venue",
        description="Resumable: run it again after an interruption to continue.",
    )
    down.add_argument(
        "--pairs", action="append", required=True, help="spot symbols, e.g. BTC/USDT,ETH/USDT"
    )
    down.add_argument("--since", help="first day (UTC), e.g. 2024-01-01; default: a year ago")
    down.add_argument("--until", help="end (exclusive), e.g. 2025-01-01; default: today")
    down.add_argument("--data-dir", type=Path, help=f"default: ${DATA_ENV}, else ./data")
    down.set_defaults(handler=_download)

    diag = commands.add_parser("diagrams", help="write the state diagrams from the machines")
    diag.add_argument("--out", type=Path, default=Path("diagrams"))
    diag.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    diag.set_defaults(handler=_diagrams)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigError, DataError, OrchestratorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
