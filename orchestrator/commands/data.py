"""``orchestrator data download``: funding rates, hourly candles and instrument limits
fetched from the venue into the data folder a run reads; resumable."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import anyio

from orchestrator.config import DATA_ENV, SPOT_SYMBOL, Loaded, load
from orchestrator.exceptions import OrchestratorError
from orchestrator.market import download as dl


def main(args: argparse.Namespace) -> int:
    """``orchestrator data COMMAND``: only ``download`` so far."""
    return download(args)


def download(args: argparse.Namespace) -> int:
    """``orchestrator data download``."""
    if args.attempts < 1 or args.timeout_ms < 1:
        raise OrchestratorError("--attempts and --timeout-ms must be at least 1")
    config = _config_of(args)
    if args.pairs:
        spots = [spot.strip() for spot in ",".join(args.pairs).split(",")]
    elif config is not None:
        spots = [pair.spot for pair in config.config.pair_list]
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


def _config_of(args: argparse.Namespace) -> Loaded | None:
    """The config whose pairs and data folder a download defaults to: --config, else
    ./config.yaml when it is there and something is left to default."""
    if args.config is not None:
        return load(args.config)
    if args.pairs and args.data_dir is not None:
        return None
    default = Path("config.yaml")
    return load(default) if default.is_file() else None
