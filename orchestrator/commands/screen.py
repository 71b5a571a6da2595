"""`orchestrator screen`: every spot + perp pair ranked by expected net annualised yield.

On the recorded data (a config with ``market: recorded``, the default): every pair of
the data folder, as known at ``--at`` (default: the newest settlement of a pair that can
be read).
On the live market (``market: live`` or ``mode: live``): every pair of the venue now,
read from its public data (no key needed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import msgspec

from orchestrator.bybit.client import make_exchange
from orchestrator.commands.data import FactsProgress
from orchestrator.config import Config, ConfigError, UniverseSettings, load, market_time
from orchestrator.exceptions import OrchestratorError
from orchestrator.output import screen as output
from orchestrator.universe.facts import PairFacts
from orchestrator.universe.live import PairFailure, UniverseError, facts_now
from orchestrator.universe.rank import rank, unknown_includes
from orchestrator.universe.recorded import default_instant, facts_at, pairs_in


def main(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    config = loaded.config
    universe = _universe(config.universe, args)
    warnings: list[str] = list(loaded.warnings)
    if config.on_live_market:
        if args.at is not None:
            raise ConfigError("--at: only on the recorded data (market: recorded); live is now")
        return _show(args, config, universe, *anyio.run(_live, config, universe))
    data_dir = loaded.data_dir()
    pairs = pairs_in(data_dir, config.venue)
    if not pairs:
        raise ConfigError(
            f"no pair in {data_dir}: a pair needs funding, spot and perp candle files "
            "(orchestrator data download fetches them)"
        )
    reach = max(universe.history_days, universe.min_history_days)
    notes: list[str] = []  # pairs that did not decide the default instant
    if args.at is not None:
        at_ms = _at(args.at)
    else:
        at_ms = default_instant(data_dir, pairs, reach, venue=config.venue, notes=notes)
    left_out: list[str] = []
    facts = facts_at(
        data_dir, pairs, at_ms, universe.history_days, reach_days=reach, venue=config.venue,
        warnings=left_out, progress=_progress(len(pairs)),
    )  # fmt: skip
    if not facts:
        first = left_out[0] if left_out else "no pair could be read"
        when = f"--at {_when(at_ms)}" if args.at is not None else f"at {_when(at_ms)}"
        raise ConfigError(
            f"{when}: none of the {len(pairs)} pairs has data in the {reach} days up to "
            f"it; the first: {first}"
        )
    read = {f.spot for f in facts}  # the others' left-out line says it already
    warnings += [note for note in notes if note.split(":", 1)[0] in read]
    unknown = unknown_includes(universe, {p.name for p in pairs}, str(data_dir))
    warnings += [unknown] if unknown else []
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if len(left_out) > 3:  # one line, not one per pair
        names = ", ".join(w.split(":", 1)[0] for w in left_out)
        print(
            f"warning: {len(left_out)} pairs left out ({names}); the first: {left_out[0]}",
            file=sys.stderr,
        )
    else:
        for warning in left_out:
            print(f"warning: {warning}", file=sys.stderr)
    return _show(args, config, universe, facts, at_ms, f"recorded data in {data_dir}", len(pairs))


def _show(
    args: argparse.Namespace,
    config: Config,
    universe: UniverseSettings,
    facts: list[PairFacts],
    at_ms: int,
    source: str,
    found: int,
) -> int:
    """The ranked facts, printed as asked."""
    ranked = rank(facts, universe, config.fees, config.paper.slippage, at_ms)
    considered = sum(1 for r in ranked if r.left_out is None)
    # The pairs found count those that could not be read (said in the warnings above):
    # every count below is of the found, so the header and the note agree.
    unread = found - len(ranked)
    not_read = f" ({unread} not read: see the warnings)" if unread else ""
    if not considered:
        print(
            f"note: none of the {found} pairs is considered at {_when(at_ms)}{not_read}; "
            "each row says why (the universe section's filters)",
            file=sys.stderr,
        )
    if args.top is not None:
        ranked = [r for r in ranked if r.left_out is None][: args.top]
    when = _when(at_ms)
    if args.json:
        head = {
            "at": f"{datetime.fromtimestamp(at_ms / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}",
            "source": source,
            "pairs_found": found,
            "pairs_read": len(ranked),
            "considered": considered,
            "universe": msgspec.to_builtins(universe),
        }
        sys.stdout.write(output.as_json(ranked, head))
    elif args.csv:
        sys.stdout.write(output.as_csv(ranked))
    else:
        print(
            f"screen at {when}, {source}: {found} pairs{not_read}, "
            f"{considered} considered; net/y = mean settled rate x 8760 / interval over the "
            f"last {universe.history_days} days, less the round trip over "
            f"{universe.horizon_hours} h"
        )
        sys.stdout.write(output.as_table(ranked))
    return 0


async def _live(
    config: Config, universe: UniverseSettings
) -> tuple[list[PairFacts], int, str, int]:
    """Every pair of the venue's market now (public data: no key), as facts_now reads it
    (kept to the venue's rate limits); a pair that could not be read is said and left out."""
    exchange = make_exchange(
        "", "", config.live.timing, network=config.network, url=config.live.url
    )
    failures: list[PairFailure] = []
    progress = FactsProgress()
    try:
        facts, now_ms = await facts_now(
            exchange, universe.history_days, progress=progress, failures=failures
        )
    except UniverseError as exc:
        raise OrchestratorError(f"the venue's market: {exc}") from None
    finally:
        progress.end()
        await exchange.close()
    for failure in failures:
        print(f"warning: left out {failure}", file=sys.stderr)
    listed = {f.market for f in facts} | {f.market for f in failures}
    unknown = unknown_includes(universe, listed, "the venue's market")
    if unknown:
        print(f"warning: {unknown}", file=sys.stderr)
    where = config.live.url or f"Bybit {config.network}"
    return facts, now_ms, f"the live market of {where}", len(facts) + len(failures)


def _universe(settings: UniverseSettings, args: argparse.Namespace) -> UniverseSettings:
    changes = {
        name: value
        for name, value in (
            ("history_days", args.history_days),
            ("horizon_hours", args.horizon_hours),
        )
        if value is not None
    }
    if not changes:
        return settings
    try:
        return msgspec.structs.replace(settings, **changes)
    except ValueError as exc:  # __post_init__ runs again: its bounds
        raise ConfigError(f"--{str(exc).split(':')[0].replace('_', '-')}: {exc}") from None


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"


def _at(text: str) -> int:
    # Within the years a data folder can hold (as data.start): beyond them, the history
    # span before the instant would not be a date.
    try:
        return int(market_time("--at", text).timestamp() * 1000)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _progress(total: int) -> Callable[[int, int], None] | None:
    """Progress on stderr when it is a terminal and the pairs are many."""
    if total < 20 or not sys.stderr.isatty():
        return None

    def say(done: int, of: int) -> None:
        end = "\n" if done == of else ""
        print(f"\rreading pairs: {done}/{of}", end=end, file=sys.stderr, flush=True)

    return say
