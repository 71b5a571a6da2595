"""``orchestrator data download``: funding rates, hourly candles and instrument limits
fetched from the venue into the data folder a run reads; resumable.

The pairs: ``--pairs``, the config's, or picked from the venue's whole market now:
``--top N`` the N with the most 24 h perp turnover; ``--universe`` those the config's
``universe:`` section lets in (exclude, min_history_days, min_turnover_usd, max_pairs,
include), best expected net yield first (orchestrator/universe/rank.py), the first N
with ``--top N``."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio

from orchestrator.config import DATA_ENV, SPOT_SYMBOL, Loaded, load
from orchestrator.exceptions import OrchestratorError
from orchestrator.market import download as dl
from orchestrator.universe.facts import PairFacts
from orchestrator.universe.live import PairFailure, UniverseError, facts_now
from orchestrator.universe.rank import rank, unknown_includes


def main(args: argparse.Namespace) -> int:
    """``orchestrator data COMMAND``: only ``download`` so far."""
    return download(args)


def download(args: argparse.Namespace) -> int:
    """``orchestrator data download``."""
    if args.attempts < 1 or args.timeout_ms < 1:
        raise OrchestratorError("--attempts and --timeout-ms must be at least 1")
    config = _config_of(args)
    top, universe = getattr(args, "top", None), getattr(args, "universe", False)
    picked = top is not None or universe
    if top is not None and top < 1:
        raise OrchestratorError(f"--top: at least 1 pair, got {top}")
    if picked and args.pairs:
        raise OrchestratorError("--pairs names the pairs: not with --top or --universe")
    if universe and config is None:
        raise OrchestratorError(
            "--universe: reads the config's universe section: --config a config "
            "(or run where config.yaml is)"
        )
    if picked:
        spots: list[str] = []  # picked from the venue's market below
    elif args.pairs:
        spots = [spot.strip() for spot in ",".join(args.pairs).split(",")]
    elif config is not None and config.config.auto:
        raise OrchestratorError(
            "the config's pairs are auto: --universe downloads the pairs its universe "
            "section lets in (--top N: the best N of them), or name them with --pairs"
        )
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
    today = int(time.time() * 1000) // day * day
    until = dl.parse_date(args.until) if args.until is not None else today
    since = dl.parse_date(args.since) if args.since is not None else until - 365 * day
    dl.check_window(since, until)  # before the venue's whole market is read for --top
    # Where the run reads: the config's data.dir ($ORCHESTRATOR_DATA first, as for a run).
    if args.data_dir is not None:
        if not args.data_dir.strip():  # as the config refuses an empty data.dir
            raise OrchestratorError("--data-dir: must not be empty (write . for this folder)")
        data_dir = Path(args.data_dir)
    elif config is not None:
        data_dir = config.data_dir()
    else:
        data_dir = Path(os.environ.get(DATA_ENV) or "data")
    dl.check_data_dir(data_dir)  # before the venue's whole market is read for --top

    async def fetch() -> list[Path]:
        exchange = dl.make_public_exchange(args.url, args.timeout_ms)
        try:
            chosen = pairs
            if picked:
                chosen = await _pick(exchange, top, config if universe else None, args.attempts)
                if not chosen:
                    raise OrchestratorError("no pair of the venue's market is left to download")
            print(f"downloading into {data_dir}", file=sys.stderr)
            return await dl.download(
                exchange, chosen, since, until, data_dir, attempts=args.attempts
            )
        finally:
            await exchange.close()

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


class FactsProgress:
    """``the venue's market: 12/40 pairs (SYN11USDT)``, redrawn in place on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._open = False  # a line drawn and not ended

    def __call__(self, done: int, total: int, market: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(f"\rthe venue's market: {done}/{total} pairs ({market})".ljust(60))
        self._open = done < total
        if not self._open:
            stream.write("\n")
        stream.flush()

    def end(self) -> None:
        """Ends the line when the read stopped before the last pair: what follows (the
        error saying why) starts on its own line."""
        if self._open:
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write("\n")
            stream.flush()
            self._open = False


async def _pick(
    exchange: Any, top: int | None, config: Loaded | None, attempts: int
) -> list[tuple[str, str]]:
    """The (spot, perp) pairs to download, said on stderr: by 24 h turnover, or ranked
    by the config's universe (``config`` given)."""
    failures: list[PairFailure] = []
    days = config.config.universe.history_days if config is not None else 0
    progress = FactsProgress()
    try:
        facts, now_ms = await facts_now(
            exchange, days, attempts=attempts, progress=progress, failures=failures
        )
    except UniverseError as exc:
        raise OrchestratorError(f"the venue's market: {exc}") from None
    finally:
        progress.end()
    for failure in failures:
        print(f"warning: left out {failure}", file=sys.stderr)
    if config is None:
        chosen = top_by_turnover(facts, top or len(facts))
        print(
            f"the top {len(chosen)} of {len(facts)} pairs by 24 h perp turnover:", file=sys.stderr
        )
        for f in chosen:
            print(f"  {f.market:<16} {f.turnover_24h:>20,.0f} USDT", file=sys.stderr)
        return [(f.spot, f.perp) for f in chosen]
    c = config.config
    listed = {f.market for f in facts} | {f.market for f in failures}
    unknown = unknown_includes(c.universe, listed, "the venue's market")
    if unknown:
        print(f"warning: {unknown}", file=sys.stderr)
    ranked = rank(facts, c.universe, c.fees, c.paper.slippage, now_ms)
    considered = [r for r in ranked if r.left_out is None]
    chosen_ranked = considered[:top] if top is not None else considered
    print(
        f"{len(considered)} of {len(facts)} pairs in the universe; the "
        f"{'top ' + str(len(chosen_ranked)) if top is not None else str(len(chosen_ranked))} "
        "by expected net yield (annualised):",
        file=sys.stderr,
    )
    for r in chosen_ranked:
        net = "no history" if r.net is None else f"{r.net:+.2%}"
        print(f"  {r.facts.market:<16} {net:>10}", file=sys.stderr)
    return [(r.facts.spot, r.facts.perp) for r in chosen_ranked]


def top_by_turnover(facts: list[PairFacts], n: int) -> list[PairFacts]:
    """The ``n`` pairs with the most 24 h perp turnover (ties by market id)."""
    return sorted(facts, key=lambda f: (-f.turnover_24h, f.market))[:n]
