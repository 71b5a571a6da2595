"""One trial: a run config replayed on one window of the recorded data.

A trial is a pure function of (config, window, market data): it reads no global
state and writes nothing but its result, so a trial lost with its worker is run
again and gives the same figures, to the last digit, wherever it runs.

It is the replay ``orchestrator run`` does with ``data.start`` and ``data.end``
set to the window: the rows stamped inside the window, each pair closed at the
end of its own data inside it (no look-ahead: nothing after the window's end is
seen), beside the always-hedged baseline on the same rows.

Each worker process loads the data once (``market_for``: cached by the data
folder, the pairs and a hash of the files' contents) and slices it per trial.
The baseline depends only on the window and the settings a baseline uses (pairs,
balances, fees, trading, paper), not on the strategy: it is computed once per
window in each worker and reused (a memo of a pure function, same figures).
"""

from __future__ import annotations

import hashlib
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec

from orchestrator.config import Config, Pair
from orchestrator.market.recorded import (
    DataError,
    PairData,
    load_instruments,
    load_pair,
    market_id,
)
from orchestrator.models import Instrument
from orchestrator.replay.engine import Replay
from orchestrator.replay.session import turnover_of
from orchestrator.replay.window import Window as ReplayWindow
from orchestrator.replay.window import warm_up_depth
from orchestrator.strategy.funding import AlwaysHedged, Strategy, strategies
from orchestrator.sweep.windows import Window
from orchestrator.trading.figures import Summary, summarise
from orchestrator.trading.ranking import Ranking
from orchestrator.trading.run import RunResult

MARKETS_KEPT = 4  # data sets a worker keeps loaded (one per sweep, normally)
BASELINES_KEPT = 64  # baseline replays a worker keeps (one per window and cost setting)
Curve = list[tuple[int, Decimal]]


class DataSource(msgspec.Struct, frozen=True):
    """Where a worker reads the market from: a data folder every worker can read at the
    same path, what to read, and the hash of the files as the sweep's process read them."""

    data_dir: str
    venue: str
    pairs: tuple[tuple[str, str], ...]  # (spot, perp)
    start_ms: int | None
    end_ms: int | None
    fingerprint: str


class Market(msgspec.Struct, frozen=True):
    """The recorded data of a sweep, as loaded once: every trial slices it."""

    instruments: dict[str, Instrument]
    datasets: list[PairData]  # each series a list
    fingerprint: str
    # Per pair, the stamps of its spot, perp and funding rows (a candle's open time):
    # where a window starts and ends in each series.
    stamps: list[tuple[list[int], list[int], list[int]]]


def make_market(
    instruments: dict[str, Instrument], datasets: Sequence[PairData], digest: str
) -> Market:
    """The data in memory, as lists, with the stamps of every row."""
    held = [
        PairData(
            d.spot_symbol, d.perp_symbol, list(d.spot), list(d.perp), list(d.funding), d.warnings
        )
        for d in datasets
    ]
    stamps = [
        (
            [c.open_time_ms for c in d.spot],
            [c.open_time_ms for c in d.perp],
            [f.time_ms for f in d.funding],
        )
        for d in held
    ]
    return Market(instruments, held, digest, stamps)


class TrialSpec(msgspec.Struct, frozen=True):
    trial: str  # its id in trials.csv, e.g. "3-train-p0012", "3-test", "3-base"
    config: Config
    window: Window
    curve: bool = False  # keep the equity curves (the test windows, for the chart)


class TrialResult(msgspec.Struct, frozen=True):
    trial: str
    summary: Summary  # the run's summary: the strategy and the baseline, per pair and total
    equity: Curve  # hourly; only when the spec asked for the curve
    baseline_equity: Curve


def data_files(data_dir: Path, venue: str, pairs: Sequence[tuple[str, str]]) -> list[Path]:
    """The files a sweep reads: each pair's series and the instrument files."""
    names: set[Path] = set(data_dir.glob(f"{venue}_instruments_info*.json"))
    for spot, _ in pairs:
        names |= {
            p
            for p in data_dir.glob(f"{venue}_{market_id(spot)}_*")
            if p.name.endswith((".csv", ".csv.gz"))
        }
    return sorted(p for p in names if p.is_file())


def fingerprint(data_dir: Path, venue: str, pairs: Sequence[tuple[str, str]]) -> str:
    """A hash of the names and contents of the files the sweep reads."""
    digest = hashlib.sha256()
    for path in data_files(data_dir, venue, pairs):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_market(source: DataSource) -> Market:
    data_dir = Path(source.data_dir)
    if not data_dir.is_dir():
        raise DataError(f"no data folder at {data_dir}")
    found = fingerprint(data_dir, source.venue, source.pairs)
    if found != source.fingerprint:
        raise DataError(
            f"the data in {data_dir} differs from the data the sweep was planned on "
            f"(hash {found}, expected {source.fingerprint}): the workers must read the "
            "same files (or set send_data: true)"
        )
    symbols = [s for pair in source.pairs for s in pair]
    instruments = load_instruments(data_dir, symbols, venue=source.venue)
    datasets = [
        load_pair(
            data_dir, spot, perp, venue=source.venue, start_ms=source.start_ms, end_ms=source.end_ms
        )
        for spot, perp in source.pairs
    ]
    return make_market(instruments, datasets, found)


_lock = threading.Lock()
_markets: OrderedDict[DataSource, Market] = OrderedDict()
_baselines: OrderedDict[tuple[str, Window, bytes], RunResult] = OrderedDict()
_loads = 0


def market_for(source: DataSource) -> Market:
    """This process's copy of the data: loaded on first use, then kept."""
    global _loads
    with _lock:
        market = _markets.get(source)
        if market is not None:
            _markets.move_to_end(source)
            return market
        market = load_market(source)
        _loads += 1
        _markets[source] = market
        while len(_markets) > MARKETS_KEPT:
            _markets.popitem(last=False)
        return market


def forget() -> None:
    """Drop this process's loaded data and baselines (benchmarks start each engine cold)."""
    with _lock:
        _markets.clear()
        _baselines.clear()


def loads() -> int:
    """How many times this process has loaded a market (tests: once per worker)."""
    return _loads


def check_worker(source: DataSource) -> str | None:
    """Load the data here (a worker, before any trial); why not, if it cannot be read."""
    try:
        market_for(source)
    except (DataError, OSError) as exc:
        return str(exc)
    return None


def window_slice(market: Market, window: Window, depth: int) -> tuple[list[PairData], ReplayWindow]:
    """Each pair's rows in the window as `orchestrator run` takes them for data.start and
    data.end (orchestrator/replay/window.py): rows stamped in [start, end) (a candle by its
    open time), and the ``depth`` rates settled before the start to warm up on."""

    def cut(stamps: list[int]) -> slice:
        return slice(bisect_left(stamps, window.start_ms), bisect_left(stamps, window.end_ms))

    sliced = []
    warm = []
    for data, (spot, perp, funding) in zip(market.datasets, market.stamps, strict=True):
        settled = bisect_left(funding, window.start_ms)
        sliced.append(
            PairData(
                data.spot_symbol,
                data.perp_symbol,
                data.spot[cut(spot)],  # lists (make_market): a slice is a list
                data.perp[cut(perp)],
                data.funding[cut(funding)],
                [],
            )
        )
        warm.append(data.funding[max(settled - depth, 0) : settled] if depth > 0 else [])
    return sliced, ReplayWindow(window.start_ms, warm)


async def _replay(
    config: Config,
    datasets: list[PairData],
    instruments: dict[str, Instrument],
    plays: list[Strategy],
    label: str,
    window: ReplayWindow,
    auto: bool = False,
) -> RunResult:
    replay = Replay(config, datasets, instruments, plays, label=label, window=window)
    if auto:  # pairs: auto: opens ranked, rotations (trading/ranking.py)
        replay.ranking = Ranking(
            replay.pairs, config.universe, config.fees, config.paper.slippage,
            turnover_of(datasets),
        )  # fmt: skip
    return await replay.run()


def _baseline_key(config: Config) -> bytes:
    """What the always-hedged baseline depends on: not the strategy's settings."""
    return msgspec.json.encode(
        [
            config.pair_list,
            config.balances,
            config.trading,
            config.fees,
            config.paper,
            config.data.stale_after_seconds,
        ]
    )


def _baseline(
    config: Config,
    window: Window,
    market: Market,
    datasets: list[PairData],
    replay_window: ReplayWindow,
) -> RunResult:
    key = (market.fingerprint, window, _baseline_key(config))
    with _lock:
        found = _baselines.get(key)
        if found is not None:
            _baselines.move_to_end(key)
            return found
    plays: list[Strategy] = [AlwaysHedged() for _ in config.pair_list]
    baseline = anyio.run(
        _replay, config, datasets, market.instruments, plays, "always hedged", replay_window
    )
    with _lock:
        _baselines[key] = baseline
        while len(_baselines) > BASELINES_KEPT:
            _baselines.popitem(last=False)
    return baseline


def run_trial(spec: TrialSpec, data: DataSource | Market) -> TrialResult:
    """Replay the trial's config on its window, and the baseline; their summary."""
    market = data if isinstance(data, Market) else market_for(data)
    config = spec.config
    auto = config.auto
    if auto:  # the market holds the data folder's pairs, as the plan resolved them
        config = config.resolved([Pair(d.spot_symbol, d.perp_symbol) for d in market.datasets])
    datasets, replay_window = window_slice(market, spec.window, warm_up_depth(config, auto))
    result = anyio.run(
        _replay,
        config,
        datasets,
        market.instruments,
        strategies(config),
        "strategy",
        replay_window,
        auto,
    )
    baseline = _baseline(config, spec.window, market, datasets, replay_window)
    summary = summarise(spec.trial, result, baseline, [])
    return TrialResult(
        spec.trial,
        summary,
        list(result.equity) if spec.curve else [],
        list(baseline.equity) if spec.curve else [],
    )
