"""The replay session: the config's recorded data read and checked (``prepare``), then
the strategy's replay and the always-hedged baseline's over the same instants
(``replay_both``). What ``orchestrator run`` plays on paper and a sweep's trials read."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from decimal import Decimal

import msgspec
from opentelemetry.trace import Tracer

from orchestrator.config import ConfigError, Loaded, parse_time
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.market.recorded import (
    DataError,
    DataMissing,
    PairData,
    interval_of,
    load_instruments,
    load_pair,
)
from orchestrator.models import Instrument
from orchestrator.replay.coverage import coverage_warnings
from orchestrator.replay.engine import Replay
from orchestrator.replay.window import config_window
from orchestrator.strategy.funding import AlwaysHedged, strategies
from orchestrator.trading.ranking import Ranking, Turnover
from orchestrator.trading.run import Progress, RunResult, StopFlag
from orchestrator.universe.rank import DAY_MS
from orchestrator.universe.recorded import pairs_in

ZERO = Decimal(0)


def ms_of(text: str | None) -> int | None:
    return None if text is None else int(parse_time(text).timestamp() * 1000)


class Prepared(msgspec.Struct, frozen=True):
    loaded: Loaded  # pairs: auto resolved to the data folder's pairs
    instruments: dict[str, Instrument]
    datasets: list[PairData]
    warnings: list[str]
    auto: bool = False  # pairs: auto: the run ranks them (trading/ranking.py)


def prepare(loaded: Loaded) -> Prepared:
    """Everything a run reads, checked: instruments for every symbol, data for every pair.

    An unknown symbol is a config error at its YAML path; missing data says which
    command fetches it. The warnings: the config's (implausible settings), the
    loader's (duplicates, gaps), and where series of a pair, or pairs, do not
    cover the same time.
    """
    auto = loaded.config.auto
    if auto:
        loaded = resolve_auto(loaded)
    config, data_dir = loaded.config, loaded.data_dir()
    symbols = [s for p in config.pair_list for s in (p.spot, p.perp)]
    instrument_warnings: list[str] = []
    start, end = ms_of(config.data.start), ms_of(config.data.end)
    spots = [p.spot for p in config.pair_list]
    try:
        instruments = load_instruments(
            data_dir, symbols, venue=config.venue, warnings=instrument_warnings
        )
    except DataMissing as exc:  # no instrument file: none of the data is there
        raise DataMissing(exc.what, spots, data_dir, start, end) from None
    except DataError as exc:
        for i, pair in enumerate(config.pair_list):
            for leg, symbol in (("spot", pair.spot), ("perp", pair.perp)):
                if f"'{symbol}'" in str(exc):
                    raise ConfigError(
                        f"{loaded.path}: pairs[{i}].{leg}: unknown symbol '{symbol}' ({exc})"
                    ) from exc
        raise
    datasets, missing = [], []
    for p in config.pair_list:  # every pair, so one command fetches all that is missing
        try:
            datasets.append(
                load_pair(data_dir, p.spot, p.perp, venue=config.venue, start_ms=start, end_ms=end)
            )
        except DataMissing as exc:
            missing.append(exc)
    left_out: list[str] = []
    if missing and auto and len(missing) < len(config.pair_list):
        # The folder's pairs are what auto trades: one with no data in the window (its
        # data ended before it, or starts after) is left out, as the screen leaves it out.
        gone = {pair for exc in missing for pair in exc.pairs}
        loaded = msgspec.structs.replace(
            loaded, config=config.resolved([p for p in config.pair_list if p.spot not in gone])
        )
        left_out = auto_left_out(missing)
    elif missing:
        raise DataMissing.of_all(missing)
    for data in datasets:  # each perp's interval as its settlements keep it
        perp = instruments[data.perp_symbol]
        instruments[data.perp_symbol] = interval_of(perp, data.funding, instrument_warnings)
    warnings: list[str] = list(loaded.warnings)
    warnings += left_out
    warnings += instrument_warnings
    warnings += [w for d in datasets for w in d.warnings]
    warnings += coverage_warnings(datasets)
    return Prepared(loaded, instruments, datasets, warnings, auto)


async def replay_both(
    prepared: Prepared,
    make_progress: Callable[[str], Progress],
    stop: StopFlag,
    tracer: Tracer | None = None,
    recorder: JournalRecorder | None = None,
) -> tuple[RunResult, RunResult]:
    """The strategy's run (traced and journaled), then the always-hedged baseline on the
    same data (a comparison, recomputable: neither).

    The baseline replays exactly the instants the strategy's run replayed: all of
    them, or, when a signal stopped the run, up to the instant it stopped at (and it
    is then stopped there the same way). A signal during the baseline does not cut
    it short: it takes seconds, and a comparison over another window would mislead.
    """
    config = prepared.loaded.config
    datasets, window = config_window(
        config, prepared.loaded.data_dir(), prepared.datasets, prepared.auto
    )
    strategy = Replay(
        config,
        datasets,
        prepared.instruments,
        strategies(config),
        tracer=tracer,
        recorder=recorder,
        window=window,
    )
    if prepared.auto:
        strategy.ranking = Ranking(
            strategy.pairs, config.universe, config.fees, config.paper.slippage,
            turnover_of(datasets),
        )  # fmt: skip
    result = await strategy.run(progress=make_progress("strategy"), stop=stop)
    replay = Replay(
        config,
        datasets,
        prepared.instruments,
        [AlwaysHedged() for _ in config.pair_list],
        label="always hedged",
        window=window,
    )
    until = _ReplayedTo(replay, result.end_ms) if result.interrupted else None
    baseline = await replay.run(progress=make_progress("always hedged"), stop=until)
    return result, baseline


class _ReplayedTo:
    """A stop flag set once ``replay`` has decided the instant ``last_ms``: the replay
    checks it before each instant, so it stops where the strategy's run stopped."""

    def __init__(self, replay: Replay, last_ms: int) -> None:
        self._replay, self._last_ms = replay, last_ms

    def is_set(self) -> bool:
        return self._replay.clock_ms >= self._last_ms


def resolve_auto(loaded: Loaded) -> Loaded:
    """``pairs: auto`` on the recorded data: every pair of the data folder the universe
    does not exclude (its other filters are applied at each instant, as known then)."""
    config = loaded.config
    data_dir = loaded.data_dir()
    found = pairs_in(data_dir, config.venue)
    names = {p.name for p in found}
    missing = [m for m in config.universe.include if m not in names]
    if missing:
        raise ConfigError(
            f"{loaded.path}: universe.include: {', '.join(missing)} not in {data_dir} "
            "(a pair needs funding, spot and perp candle files)"
        )
    pairs = [p for p in found if p.name not in config.universe.exclude]
    if found and not pairs:
        raise ConfigError(
            f"{loaded.path}: pairs: auto: universe.exclude names every pair in {data_dir} "
            f"({len(found)}): nothing is left to trade"
        )
    if not pairs:
        raise ConfigError(
            f"{loaded.path}: pairs: auto: no pair in {data_dir} (a pair needs funding, spot "
            "and perp candle files; orchestrator data download fetches them)"
        )
    return msgspec.structs.replace(loaded, config=config.resolved(pairs))


def auto_left_out(missing: Sequence[DataMissing]) -> list[str]:
    """The warning for the pairs ``pairs: auto`` leaves out for want of data in the
    window: one line each, or one line for all when they are many."""
    lines = [f"pairs: auto: {', '.join(exc.pairs)} left out: {exc.what}" for exc in missing]
    if len(lines) <= 3:
        return lines
    names = ", ".join(pair for exc in missing for pair in exc.pairs)
    return [
        f"pairs: auto: {len(missing)} pairs left out with no data in the window ({names}); "
        f"the first: {missing[0].what}"
    ]


def turnover_of(datasets: Sequence[PairData]) -> Turnover:
    """Each pair's 24 h perp turnover at an instant: volume x close of the candles
    closed in the day before it (as the screen counts it); a pair's sums are made the
    first time it is asked (only a universe filtering on turnover asks)."""
    made: dict[int, tuple[list[int], list[Decimal]]] = {}

    def sums(i: int) -> tuple[list[int], list[Decimal]]:
        if i not in made:
            times, running, total = [], [ZERO], ZERO
            for candle in datasets[i].perp:
                total += candle.volume * candle.close
                times.append(candle.close_time_ms)
                running.append(total)
            made[i] = (times, running)
        return made[i]

    def turnover(i: int, now_ms: int) -> Decimal:
        times, running = sums(i)
        return running[bisect_right(times, now_ms)] - running[bisect_right(times, now_ms - DAY_MS)]

    return turnover
