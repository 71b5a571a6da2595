"""Every pair of a data folder, and what was known of each at an instant: from the
recorded files only, nothing stamped after that instant (no look-ahead).

A pair of the folder: a USDT market id with funding, spot and perp candle files and
both instrument entries. Known at ``at_ms``: settlements stamped at or before it,
candles closed by it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from orchestrator.config import Pair
from orchestrator.market.recorded import (
    DataError,
    DataMissing,
    PairData,
    interval_of,
    load_instruments,
    load_pair,
)
from orchestrator.market.records import iso
from orchestrator.market.series import Loader
from orchestrator.universe.facts import PairFacts

DAY_MS = 86_400_000
ZERO = Decimal(0)
_FUNDING_FILE = re.compile(
    r"^(?P<venue>[a-z0-9]+)_(?P<id>[A-Z0-9]+USDT)_funding_rates_.+\.csv(\.gz)?$"
)


def pairs_in(data_dir: Path, venue: str = "bybit") -> list[Pair]:
    """The USDT pairs whose funding, spot and perp candle files are all in the folder,
    by market id."""
    found: list[Pair] = []
    names = {p.name for p in data_dir.iterdir()} if data_dir.is_dir() else set()
    for name in sorted(names):
        match = _FUNDING_FILE.match(name)
        if match is None or match["venue"] != venue:
            continue
        market = match["id"]
        kinds = ("spot", "perp")
        if all(any(n.startswith(f"{venue}_{market}_{k}_") for n in names) for k in kinds):
            base = market[: -len("USDT")]
            found.append(Pair(f"{base}/USDT", f"{base}/USDT:USDT"))
    return list({p.spot: p for p in found}.values())


def default_instant(
    data_dir: Path,
    pairs: list[Pair],
    reach_days: int,
    *,
    venue: str = "bybit",
    notes: list[str] | None = None,
) -> int:
    """The instant a screen reads the folder at when none is given: the newest settlement
    of a pair that can be read at it (its files and instruments load over the ``reach_days``
    up to it). A pair whose files cannot be read, or whose newest settlement has no data
    around it (a row stamped past the rest), does not decide it: ``notes`` says so of the
    latter. DataError, naming the first pair's problem, when no pair can be read."""
    reach_ms = max(reach_days, 1) * DAY_MS
    newest: list[tuple[int, Pair]] = []
    first: str | None = None
    for pair in pairs:
        try:
            rates = Loader(data_dir, venue, pair.spot, None, None).funding(pair.perp)
        except DataError as exc:
            first = first or f"{pair.spot}: {exc}"
            continue
        if rates:
            newest.append((rates[-1].time_ms, pair))
    # Newest first: the first pair readable at its own newest settlement decides.
    for at_ms, pair in sorted(newest, key=lambda n: (-n[0], n[1].spot)):
        try:
            load_instruments(data_dir, [pair.spot, pair.perp], venue=venue)
            load_pair(
                data_dir, pair.spot, pair.perp, venue=venue, start_ms=at_ms - reach_ms,
                end_ms=at_ms + 1,
            )  # fmt: skip
        except DataError as exc:
            first = first or f"{pair.spot}: {exc}"
            if notes is not None:
                what = exc.what if isinstance(exc, DataMissing) else str(exc)
                notes.append(
                    f"{pair.spot}: its newest settlement, {iso(at_ms)}, cannot be read with "
                    f"the rest of its data ({what}): the instant is not taken from it"
                )
            continue
        return at_ms
    if first is None:
        raise DataError(f"no settled funding in {data_dir}")
    raise DataError(f"none of the {len(pairs)} pairs in {data_dir} can be read; the first: {first}")


def facts_at(
    data_dir: Path,
    pairs: list[Pair],
    at_ms: int,
    history_days: int,
    *,
    reach_days: int = 0,
    venue: str = "bybit",
    warnings: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PairFacts]:
    """Each pair's facts at ``at_ms``: its settled rates of the last ``history_days``,
    24 h perp turnover (volume x close of the hourly candles closed in the last day),
    basis of the last closed candles, and the earliest settlement known within
    ``reach_days`` (at least the history span) before it. A pair with no data by then,
    or no instrument entry, is left out and said in ``warnings``."""
    reach_ms = max(history_days, reach_days, 1) * DAY_MS
    found: list[PairFacts] = []
    for n, pair in enumerate(pairs, 1):
        try:
            instruments = load_instruments(data_dir, [pair.spot, pair.perp], venue=venue)
            data = load_pair(
                data_dir, pair.spot, pair.perp, venue=venue, start_ms=at_ms - reach_ms,
                end_ms=at_ms + 1,
            )  # fmt: skip
        except DataError as exc:
            if warnings is not None:
                warnings.append(f"{pair.spot}: left out: {exc}")
            continue
        finally:
            if progress is not None:
                progress(n, len(pairs))
        interval = interval_of(instruments[pair.perp], data.funding, warnings)
        interval_hours = interval.funding_interval_hours
        found.append(facts_of(data, at_ms, history_days, interval_hours))
    return found


def facts_of(data: PairData, at_ms: int, history_days: int, interval_hours: int) -> PairFacts:
    """One pair's facts at ``at_ms`` from its loaded data."""
    since = at_ms - history_days * DAY_MS
    settled = [f for f in data.funding if f.time_ms <= at_ms]
    rates = [(f.time_ms, f.rate) for f in settled if f.time_ms > since]
    day_ago = at_ms - DAY_MS
    turnover = ZERO
    last_perp: Decimal | None = None
    ends: int | None = None
    for candle in data.perp:
        closed = candle.close_time_ms
        if closed > at_ms:
            break
        last_perp, ends = candle.close, closed
        if closed > day_ago:
            turnover += candle.volume * candle.close
    last_spot = None
    for candle in data.spot:
        if candle.close_time_ms > at_ms:
            break
        last_spot = candle.close
    basis = None if last_spot is None or last_perp is None else last_perp / last_spot - 1
    market = data.spot_symbol.replace("/", "")
    return PairFacts(
        market=market,
        spot=data.spot_symbol,
        perp=data.perp_symbol,
        interval_hours=interval_hours,
        rates=rates,
        first_settled_ms=settled[0].time_ms if settled else None,
        turnover_24h=turnover,
        basis=basis,
        data_ends_ms=ends,
    )
