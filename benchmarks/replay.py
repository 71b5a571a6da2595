"""How fast the replay goes, and in how much memory: market events per second through
Replay.run, on the recorded data and on a generated series written to disk.

    python benchmarks/replay.py [--quick] [--config PATH] [--pairs N] [--days D,D]
                                [--seed N] [--repeat N] [--cli-repeat N] [--top N]

Prints, in order:
1. `orchestrator run config.yaml` end to end as a subprocess (interpreter start,
   imports, loading, both replays, reports, chart): wall time, best of --cli-repeat;
   beside it the import time alone and the replay time the command reports. The
   run folder each writes is deleted afterwards.
2. On the recorded data (prepare(load(config))): loading time (each load dropped
   before the next, so that each holds the data in memory as the command does);
   loading the pairs' series alone (load_pair) beside one bare pass of
   csv.reader over the same files (gzip.open(..., "rt"), nothing parsed), as a ratio
   beside its target (issue 23: at most 1.5x), best of --repeat each;
   market events per second through the strategy's Replay(...).run() (no progress
   callback; timed around anyio.run, as the command pays it) and the always-hedged
   baseline's, best of --repeat each, on one more load; reading every event's columns
   alone (no engine work); then the memory the loaded data holds and the replay's
   peak above it (tracemalloc, a separate pass: tracemalloc slows the run).
3. A cProfile of that replay: the --top functions by own time (tottime).
4. A generated series of --pairs pairs of 1-minute spot and perp candles plus funding
   every 8 h, for each length in --days (50 pairs x 365 days: about 53 million
   events), written in the recorded format (plain CSV, the loader's own
   file names, an instruments file and a config) to a temporary folder as it is
   generated (a day of one pair at a time: bounded memory), then loaded and replayed
   by `prepare(load(config))` and the strategy's Replay in a child process of its own,
   so that its peak RSS (VmHWM) is that run's alone: after loading, and
   at the end of the replay; before that, in the same child, a bare csv.reader pass
   over the series' files, beside which the loading time is a ratio (its target
   1.5x). The folder is deleted afterwards.
5. Every figure beside its target and its baseline (before issue 11).

--quick is the profile CI runs (tests/test_benchmarks_quick.py): every section on
small sizes in a few seconds, so the benchmark cannot rot. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import gzip
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import msgspec

from orchestrator.config import Config, Loaded, load
from orchestrator.market.columns import columns_of
from orchestrator.market.recorded import PairData, load_pair, market_id
from orchestrator.models import Instrument
from orchestrator.replay.engine import Replay
from orchestrator.replay.session import Prepared, ms_of, prepare
from orchestrator.strategy.funding import AlwaysHedged, Strategy, strategies
from orchestrator.trading.run import RunResult

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1_000_000  # events per second on one core
LOAD_TARGET = 1.5  # loading the series / one bare csv.reader pass over their files
# Before issue 23's loader (this machine, 2 cores): loading the recorded data's series.
BASELINE_LOAD = "2.6-4.5x"
RSS_TARGET_MIB = 1024
# Before issue 11 (commit 2836eb4, this machine, best of 3): the recorded data; the
# issue's own figures for a generated 10-million-event hourly series held in memory.
BASELINE_RECORDED = 517_392
BASELINE_GENERATED = 375_000
BASELINE_RSS_MIB = 2048
MINUTE_MS = 60_000
FUNDING_MINUTES = 8 * 60
START = datetime(2024, 1, 1, tzinfo=UTC)
MIB = 2**20
T = TypeVar("T")
Figures = dict[str, Any]


def best_of(n: int, work: Callable[[], T]) -> tuple[float, T]:
    """The shortest wall time of n calls, and that call's result."""
    timed: list[tuple[float, T]] = []
    for _ in range(n):
        gc.collect()
        t0 = time.perf_counter()
        result = work()
        timed.append((time.perf_counter() - t0, result))
    return min(timed, key=lambda pair: pair[0])


def row(label: str, seconds: float, rest: str = "") -> None:
    print(f"  {label:38}{seconds:8.3f} s   {rest}".rstrip())


def max_rss_mib() -> float:
    """This process's peak RSS. Linux: VmHWM, which a new program starts afresh (maxrss
    would carry the parent's peak across exec); elsewhere getrusage's maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def replay(
    config: Config,
    datasets: Sequence[PairData],
    inst: dict[str, Instrument],
    plays: Sequence[Strategy] | None = None,
) -> RunResult:
    """The strategy's replay (or ``plays``) as `orchestrator run` does it, without the
    progress bar."""

    async def main() -> RunResult:
        chosen = strategies(config) if plays is None else plays
        return await Replay(config, datasets, inst, chosen).run()

    return anyio.run(main)


def events_in(datasets: Sequence[PairData]) -> int:
    return sum(len(d.spot) + len(d.perp) + len(d.funding) for d in datasets)


def read_columns(datasets: Sequence[PairData]) -> int:
    """Every event's time and value, as the replay reads them, and nothing else."""
    n = 0
    for data in datasets:
        for series, candles in ((data.spot, True), (data.perp, True), (data.funding, False)):
            reader = columns_of(series, candles=candles).reader()
            while reader.peek() is not None:
                n += len(reader.take(2**62)[0])
    return n


def series_files(loaded: Loaded) -> list[Path]:
    """The files load_pair reads for the config's pairs (spot and perp candles, funding)."""
    config, folder = loaded.config, loaded.data_dir()
    found: list[Path] = []
    for pair in config.pairs:
        for symbol, kind in (
            (pair.spot, "spot"),
            (pair.perp, "perp"),
            (pair.perp, "funding_rates"),
        ):
            found += sorted(
                path
                for path in folder.glob(f"{config.venue}_{market_id(symbol)}_{kind}_*")
                if path.name.endswith((".csv", ".csv.gz"))
            )
    return found


def bare_pass(paths: Sequence[Path]) -> int:
    """One csv.reader pass over the files, opened as the loader opens them; the rows."""
    n = 0
    for path in paths:
        with open_text(path) as handle:
            for _ in csv.reader(handle):
                n += 1
    return n


def open_text(path: Path) -> IO[str]:
    """A file as gzip.open(..., "rt") or open() gives it, as the loader reads it."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def load_series(loaded: Loaded) -> list[PairData]:
    """Every pair's series as a replay loads them (load_pair), and nothing else."""
    config, folder = loaded.config, loaded.data_dir()
    start, end = ms_of(config.data.start), ms_of(config.data.end)
    return [
        load_pair(folder, p.spot, p.perp, venue=config.venue, start_ms=start, end_ms=end)
        for p in config.pairs
    ]


def load_row(label: str, load_s: float, bare_s: float, rest: str) -> float:
    ratio = load_s / bare_s
    row(
        label,
        load_s,
        f"{ratio:.2f}x a bare csv.reader pass ({bare_s:.3f} s); target <= {LOAD_TARGET}x; {rest}",
    )
    return ratio


# -- 1. the command, end to end


def run_command(config: Path, repeat: int) -> float:
    output_dir = load(config).output_dir().resolve()
    walls: list[float] = []
    reported: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines or not lines[-1].startswith("written to "):
            print(f"  `orchestrator run` exited {done.returncode}; stderr ends:")
            print("  " + "\n  ".join(done.stderr.strip().splitlines()[-5:]))
            return math.nan
        folder = Path(lines[-1].removeprefix("written to ").strip()).resolve()
        if folder.parent == output_dir and folder.is_dir():
            shutil.rmtree(folder)
        else:
            print(f"  not deleting {folder}: not a run folder in {output_dir}")
        found = re.search(r"([\d,]+) events in ([\d.]+) s", lines[0])
        if found:
            reported.append(float(found[2]))
    imports, _ = best_of(
        repeat,
        lambda: subprocess.run(
            [sys.executable, "-c", "import orchestrator.cli, orchestrator.commands.run"],
            cwd=ROOT,
            check=True,
        ),
    )
    runs = ", ".join(f"{w:.2f}" for w in walls)
    row(f"wall time, best of {repeat}", min(walls), f"(runs: {runs} s)")
    row("of which interpreter + imports", imports, "(python -c 'import orchestrator.cli, ...')")
    if reported:
        row("of which both replays", min(reported), "(as the command reports it)")
    return min(walls)


# -- 2 and 3. the recorded data


def run_recorded(config_path: Path, repeat: int, top: int) -> Figures:
    def load_alone() -> None:
        # Dropped at once: a load still held counts against the rows a process holds in
        # memory (series.py, KEEP_ROWS), and the later ones would stream their series
        # from spill files, neither as `orchestrator run` loads them nor alike.
        prepare(load(config_path))

    load_s, _ = best_of(repeat, load_alone)
    loaded_config = load(config_path)
    files = series_files(loaded_config)
    ratios: list[float] = []
    for _ in range(repeat):  # interleaved: the machine's load moves both alike
        bare_s, _ = best_of(1, lambda: bare_pass(files))
        series_s, _ = best_of(1, lambda: load_series(loaded_config))
        ratios.append(series_s / bare_s)
    bare_s, _ = best_of(repeat, lambda: bare_pass(files))
    series_s, _ = best_of(repeat, lambda: load_series(loaded_config))
    prepared = prepare(load(config_path))
    config, datasets, inst = prepared.loaded.config, prepared.datasets, prepared.instruments
    n = events_in(datasets)
    replay(config, datasets, inst)  # the columns of the loaded data are made once, here
    replay_s, result = best_of(repeat, lambda: replay(config, datasets, inst))
    hedged = [AlwaysHedged() for _ in config.pair_list]
    base_s, _ = best_of(repeat, lambda: replay(config, datasets, inst, hedged))
    read_s, _ = best_of(repeat, lambda: read_columns(datasets))
    rate = result.events / replay_s
    pairs = ", ".join(p.name for p in config.pair_list)
    print(f"  {n:,} market events ({pairs}), {len(result.positions)} positions")
    row("loading (prepare(load(config)))", load_s, f"best of {repeat}")
    load_ratio = load_row(
        "loading the series (load_pair)",
        series_s,
        bare_s,
        f"best of {repeat} each; interleaved runs {min(ratios):.2f}-{max(ratios):.2f}x "
        f"({len(files)} files)",
    )
    row("Replay.run, the strategy", replay_s, f"{rate:12,.0f} events/s, best of {repeat}")
    row("Replay.run, always hedged", base_s, f"{n / base_s:12,.0f} events/s, best of {repeat}")
    row("reading the columns alone", read_s, f"{n / read_s:12,.0f} events/s, no engine work")

    del prepared, datasets, result
    gc.collect()
    tracemalloc.start()
    prepared = prepare(load(config_path))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    config, datasets, inst = prepared.loaded.config, prepared.datasets, prepared.instruments
    replay(config, datasets, inst)
    peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    print(f"  {'data held (tracemalloc)':38}{held / MIB:8.1f} MiB   separate pass")
    print(f"  {'replay peak above it (tracemalloc)':38}{peak / MIB:8.1f} MiB   same pass")

    print(f"\n3. profile of Replay.run on the recorded data (cProfile, top {top} by own time)")
    profile(prepared, top)
    return {"rate": rate, "load_s": load_s, "load_ratio": load_ratio}


def profile(prepared: Prepared, top: int) -> None:
    config = prepared.loaded.config
    runner = Replay(config, prepared.datasets, prepared.instruments, strategies(config)).run
    profiler = cProfile.Profile()
    gc.collect()
    profiler.enable()
    anyio.run(runner)
    profiler.disable()
    entries = profiler.getstats()
    total = sum(e.inlinetime for e in entries)
    print(f"  {total:.2f} s of own time in all (profiled; unprofiled it is a few times less)")
    print(f"  {'tottime':>8} {'share':>6} {'cumtime':>8} {'calls':>10}  function")
    for e in sorted(entries, key=lambda e: e.inlinetime, reverse=True)[:top]:
        share = e.inlinetime / total if total else 0.0
        print(
            f"  {e.inlinetime:8.3f} {share:6.1%} {e.totaltime:8.3f} {e.callcount:10,}  "
            f"{where(e.code)}"
        )


def where(code: object) -> str:
    """A profiled function as `name (file:line)`, the file shortened."""
    name = getattr(code, "co_qualname", None) or getattr(code, "co_name", None)
    if name is None:
        return str(code)  # a builtin: "<built-in method ...>"
    path = str(getattr(code, "co_filename", "?"))
    for marker in (str(ROOT) + "/", "site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path}:{getattr(code, 'co_firstlineno', 0)})"


# -- 4. a generated series, on disk

KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover\n"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source\n"
# Funding regimes per 8 h, in millionths: (lowest, highest, next regimes). High clears
# the 10 %/y entry (0.0000913 per 8 h), low sits around the 2 %/y exit, negative
# leaves. Negative spells follow low ones, as on a real market (a sudden turn from
# high to negative makes the strategy enter and leave at every instant until the
# average falls: a run of position lifecycles, not of the replay).
REGIMES = {
    "high": (80, 300, ("low",)),
    "low": (-5, 25, ("high", "negative")),
    "negative": (-100, -5, ("low",)),
}
VOLUMES = [f"{1 + i * 37 % 5000}.{i % 100:02d}" for i in range(1024)]
MINUTES = [f"{m // 60:02d}:{m % 60:02d}:00Z" for m in range(1440)]


def instruments_file(n_pairs: int) -> dict[str, dict[str, Any]]:
    spot: dict[str, Any] = {}
    linear: dict[str, Any] = {}
    for k in range(n_pairs):
        base = f"SYN{k}"
        spot[f"{base}USDT"] = {
            "baseCoin": base,
            "quoteCoin": "USDT",
            "lotSizeFilter": {"basePrecision": "0.01", "minOrderQty": "0.01", "minOrderAmt": "5"},
            "priceFilter": {"tickSize": "0.01"},
        }
        linear[f"{base}USDT"] = {
            "baseCoin": base,
            "quoteCoin": "USDT",
            "settleCoin": "USDT",
            "contractType": "LinearPerpetual",
            "lotSizeFilter": {"qtyStep": "0.01", "minOrderQty": "0.01", "minNotionalValue": "5"},
            "priceFilter": {"tickSize": "0.01"},
        }
    return {"spot": spot, "linear": linear}


class Prices(dict[int, str]):
    """Price ticks (hundredths) to their text, each made once."""

    def __missing__(self, n: int) -> str:
        text = self[n] = f"{n // 100}.{n % 100:02d}"
        return text


def pair_days(rng: random.Random, k: int, days: int) -> Iterator[tuple[list[str], list[str]]]:
    """Per day, the spot and perp rows of pair k: a mean-reverting random walk around its
    level (in ticks of 0.01), 0.05 % a minute; the perp's close within 5 bps of the spot's."""
    level = 1000 + 700 * k
    sigma, wick, floor = level * 0.0005, level * 0.0003, max(level // 4, 10)
    gauss, rand, bits = rng.gauss, rng.random, rng.getrandbits
    text = Prices()
    symbol = f"SYN{k}USDT"
    s_close = p_close = level
    for day in range(days):
        date = (START + timedelta(days=day)).strftime("%Y-%m-%dT")
        spot: list[str] = []
        perp: list[str] = []
        for minute in MINUTES:
            s_open, p_open = s_close, p_close
            s_close = max(floor, s_open + round(gauss(0.0, sigma)) + (level - s_open) // 3000)
            p_close = s_close + s_close * (int(rand() * 11) - 5) // 10_000
            s_high = max(s_open, s_close) + int(rand() * wick)
            s_low = max(1, min(s_open, s_close) - int(rand() * wick))
            p_high = max(p_open, p_close) + int(rand() * wick)
            p_low = max(1, min(p_open, p_close) - int(rand() * wick))
            stamp = date + minute
            spot.append(
                f"{stamp},{text[s_open]},{text[s_high]},{text[s_low]},{text[s_close]},"
                f"{VOLUMES[bits(10)]},bybit,{symbol},spot,0\n"
            )
            perp.append(
                f"{stamp},{text[p_open]},{text[p_high]},{text[p_low]},{text[p_close]},"
                f"{VOLUMES[bits(10)]},bybit,{symbol},futures,0\n"
            )
        yield spot, perp


def funding_rows(rng: random.Random, k: int, days: int) -> Iterator[str]:
    """A settlement every 8 h, in regimes of 5 to 40 days."""
    regime = "low"
    left, low, high = 0, 0, 0
    for i in range(days * 3):
        if left == 0:
            regime = rng.choice(REGIMES[regime][2])
            low, high = REGIMES[regime][:2]
            left = rng.randint(15, 120)
        left -= 1
        stamp = (START + timedelta(hours=8 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rate = rng.randint(low, high)
        yield f"{stamp},{'-' if rate < 0 else ''}0.{abs(rate):06d},SYN{k}USDT,bybit\n"


def generate(folder: Path, n_pairs: int, days: int, seed: int, config_path: Path) -> Path:
    """The series, the instruments and a config using them, written to ``folder`` a day
    of one pair at a time; the config's path."""
    window = f"{START:%Y-%m-%d}_{START + timedelta(days=days):%Y-%m-%d}"
    (folder / "bybit_instruments_info_synthetic.json").write_text(
        json.dumps(instruments_file(n_pairs), indent=1)
    )
    for k in range(n_pairs):
        rng = random.Random(seed * 1_000_003 + k)
        market = f"SYN{k}USDT"
        with (
            (folder / f"bybit_{market}_spot_1m_{window}.csv").open("w") as spot,
            (folder / f"bybit_{market}_perp_1m_{window}.csv").open("w") as perp,
        ):
            spot.write(KLINE_HEADER)
            perp.write(KLINE_HEADER)
            for spot_rows, perp_rows in pair_days(rng, k, days):
                spot.writelines(spot_rows)
                perp.writelines(perp_rows)
        with (folder / f"bybit_{market}_funding_rates_{window}.csv").open("w") as funding:
            funding.write(FUNDING_HEADER)
            funding.writelines(funding_rows(rng, k, days))
    document = msgspec.yaml.decode(config_path.read_bytes())
    document["pairs"] = [
        {"spot": f"SYN{k}/USDT", "perp": f"SYN{k}/USDT:USDT"} for k in range(n_pairs)
    ]
    document["data"] = {**document.get("data", {}), "dir": ".", "start": None, "end": None}
    document["output"] = {**document.get("output", {}), "dir": "runs"}
    config = folder / "config.yaml"
    config.write_bytes(msgspec.yaml.encode(document))
    return config


def child(config_path: Path) -> None:
    """Load and replay a generated series in this process; its figures as one JSON line."""
    os.environ.pop("ORCHESTRATOR_DATA", None)
    rss0 = max_rss_mib()
    t0 = time.perf_counter()
    bare_pass(series_files(load(config_path)))
    bare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepared = prepare(load(config_path))
    load_s = time.perf_counter() - t0
    rss_loaded = max_rss_mib()
    config, datasets, inst = prepared.loaded.config, prepared.datasets, prepared.instruments
    n = events_in(datasets)
    t0 = time.perf_counter()
    result = replay(config, datasets, inst)
    replay_s = time.perf_counter() - t0
    rss_end = max_rss_mib()
    exits = Counter(exit_kind(reason) for run in result.pairs for _, reason in run.exits)
    figures = {
        "events": n,
        "replayed": result.events,
        "load_s": load_s,
        "bare_s": bare_s,
        "replay_s": replay_s,
        "rss_start": rss0,
        "rss_loaded": rss_loaded,
        "rss_end": rss_end,
        "opened": sum(len(run.entries) for run in result.pairs),
        "states": dict(Counter(p.state or "pending" for p in result.positions)),
        "exits": dict(exits),
        "equity_samples": len(result.equity),
    }
    print(json.dumps(figures))


def exit_kind(reason: str) -> str:
    for word, kind in (("basis", "basis"), ("negative", "negative streak"), ("below", "low rate")):
        if word in reason:
            return kind
    return reason


def run_generated(config_path: Path, n_pairs: int, days: int, seed: int) -> Figures:
    folder = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    try:
        rss0 = max_rss_mib()
        t0 = time.perf_counter()
        generated = generate(folder, n_pairs, days, seed, config_path)
        gen_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.iterdir())
        row(
            "generation (written to disk)",
            gen_s,
            f"{size / MIB:,.0f} MiB of CSV; this process's peak RSS rose "
            f"{max_rss_mib() - rss0:,.0f} MiB",
        )
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(generated)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        print(f"  the child exited {done.returncode}; stderr ends:")
        print("  " + "\n  ".join(done.stderr.strip().splitlines()[-8:]))
        return {}
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    n, rate = figures["events"], figures["replayed"] / figures["replay_s"]
    print(f"  {n:,} market events: {n_pairs} pairs x {days} days of 1-minute candles + funding")
    row(
        "loading (prepare(load(config)))", figures["load_s"], f"{n / figures['load_s']:,.0f} rows/s"
    )
    figures["load_ratio"] = load_row(
        "loading, beside a bare pass", figures["load_s"], figures["bare_s"], "one pass each"
    )
    row("Replay.run, the strategy", figures["replay_s"], f"{rate:12,.0f} events/s, one pass")
    print(
        f"  {'peak RSS (child process)':38}{figures['rss_end']:8,.0f} MiB   "
        f"(at start {figures['rss_start']:,.0f}, after loading {figures['rss_loaded']:,.0f}; "
        f"the replay added {figures['rss_end'] - figures['rss_loaded']:,.0f})"
    )
    print(
        f"  positions: {figures['opened']:,} opened (by state: {figures['states']}); "
        f"exits by reason: {figures['exits']}; {figures['equity_samples']:,} hourly samples"
    )
    print(f"  (the folder {folder} is deleted)")
    return {**figures, "rate": rate, "days": days}


def summary(recorded: Figures, generated: list[Figures], n_pairs: int) -> None:
    print("\n5. against the targets (issue 11) and the baseline before it")
    print(f"  {'figure':46}{'now':>14}{'target':>14}   baseline")

    def line(label: str, now: str, target: str, baseline: str) -> None:
        print(f"  {label:46}{now:>14}{target:>14}   {baseline}")

    line(
        "recorded data, strategy, events/s",
        f"{recorded.get('rate', math.nan):,.0f}",
        f">= {TARGET:,}",
        f"{BASELINE_RECORDED:,}",
    )
    line(
        "recorded data, loading / bare csv.reader",
        f"{recorded.get('load_ratio', math.nan):.2f}x",
        f"<= {LOAD_TARGET}x",
        BASELINE_LOAD,
    )
    for g in generated:
        if not g:
            continue
        label = f"generated {n_pairs} pairs x {g['days']} d ({g['events'] / 1e6:,.1f} M)"
        line(
            f"{label}, loading / bare csv.reader",
            f"{g['load_ratio']:.2f}x",
            f"<= {LOAD_TARGET}x",
            "",
        )
        line(
            f"{label}, events/s",
            f"{g['rate']:,.0f}",
            f">= {TARGET:,}",
            f"{BASELINE_GENERATED:,} (10 M hourly, held in memory)",
        )
        line(
            f"{label}, peak RSS MiB",
            f"{g['rss_end']:,.0f}",
            f"< {RSS_TARGET_MIB:,}",
            f"{BASELINE_RSS_MIB:,} (10 M hourly, held in memory)",
        )
    done = [g for g in generated if g]
    if len(done) >= 2:
        small, large = min(done, key=lambda g: g["days"]), max(done, key=lambda g: g["days"])
        grew = large["rss_end"] - small["rss_end"]
        line(
            f"peak RSS, {large['days']} d less {small['days']} d, MiB",
            f"{grew:,.0f}",
            "~0",
            "grew with the series (held in memory)",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds (CI)")
    parser.add_argument("--pairs", type=int, default=50, help="generated pairs")
    parser.add_argument("--days", default="91,365", help="generated lengths in days; 0 skips")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="best of, recorded data")
    parser.add_argument("--cli-repeat", type=int, default=3, help="best of, the command")
    parser.add_argument("--top", type=int, default=15, help="functions in the profile")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.quick:
        args.pairs, args.days, args.repeat, args.cli_repeat, args.top = 3, "1,2", 1, 1, 8
    config_path = args.config.resolve()
    lengths = [int(d) for d in args.days.split(",") if int(d) > 0]

    print(f"1. `orchestrator run {config_path.name}` end to end (subprocess)")
    run_command(config_path, args.cli_repeat)

    print("\n2. the strategy's replay on the recorded data")
    recorded = run_recorded(config_path, args.repeat, args.top)

    generated = []
    for days in lengths:
        print(f"\n4. a generated series: {args.pairs} pairs x {days} days of 1-minute candles")
        generated.append(run_generated(config_path, args.pairs, days, args.seed))

    summary(recorded, generated, args.pairs)
    print(f"\n  load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
