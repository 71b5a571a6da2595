"""How fast the replay goes: market events per second through Replay.run, in one run.

    python benchmarks/replay.py [--events N] [--pairs N] [--seed N] [--repeat N]
                                [--cli-repeat N] [--top N] [--config PATH]

Prints, in order:
1. `orchestrator run config.yaml` end to end as a subprocess (interpreter start,
   imports, loading, both replays, reports, chart): wall time, best of --cli-repeat;
   beside it the import time alone and the replay time the command reports. The
   run folder each writes is deleted afterwards.
2. On the recorded data (prepare(load(config))): loading time, market events per
   second through the strategy's Replay(...).run() (no progress callback; timed
   around anyio.run, as the command pays it, with the part spent after run()
   returned shown apart), and through merged_events alone (the event merge with no
   engine work), best of --repeat each; then the memory the loaded data holds and
   the replay's peak above it, measured with tracemalloc in a separate pass
   (tracemalloc slows the run, so the timed passes run without it).
3. A cProfile of that replay: the --top functions by own time (tottime).
4. On a generated series of about --events market events (hourly candles of the
   config's pairs, then synthetic pairs if --pairs asks for more, going forward in
   time for as many years as it takes; deterministic from --seed): generation time,
   events per second through Replay.run (one pass), peak RSS (getrusage maxrss,
   which only grows: the figures are its rise during generation and during the
   replay), and how many positions were opened and closed.
Then one line against the target of 1,000,000 events per second on one core.
Figures, not asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import anyio
import msgspec

from orchestrator.config import Config, Pair, load
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.models import Category, Instrument
from orchestrator.run.app import Prepared, prepare, strategies
from orchestrator.run.engine import HOUR_MS, Replay, RunResult, merged_events

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1_000_000  # events per second on one core
FUNDING_MS = 8 * HOUR_MS
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a multiple of 8 h
EVENTS_PER_PAIR_HOUR = 2 + HOUR_MS / FUNDING_MS  # two candles, an eighth of a settlement
MIB = 2**20
T = TypeVar("T")


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
    print(f"  {label:34}{seconds:8.3f} s   {rest}".rstrip())


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def replay(
    config: Config, datasets: Sequence[PairData], inst: dict[str, Instrument]
) -> tuple[RunResult, float]:
    """The strategy's replay as `orchestrator run` does it, without the progress bar: its
    result, and the seconds anyio.run took after Replay.run had returned (the event
    loop's teardown; on CPython 3.11 that formats repr(result) twice, see below)."""
    returned = 0.0

    async def main() -> RunResult:
        nonlocal returned
        result = await Replay(config, datasets, inst, strategies(config)).run()
        returned = time.perf_counter()
        return result

    result = anyio.run(main)
    return result, time.perf_counter() - returned


def events_in(datasets: Sequence[PairData]) -> int:
    return sum(len(d.spot) + len(d.perp) + len(d.funding) for d in datasets)


# -- 1. the command, end to end


def run_command(config: Path, repeat: int) -> None:
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
            return
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
            [sys.executable, "-c", "import orchestrator.cli, orchestrator.run.app"],
            cwd=ROOT,
            check=True,
        ),
    )
    runs = ", ".join(f"{w:.2f}" for w in walls)
    row(f"wall time, best of {repeat}", min(walls), f"(runs: {runs} s)")
    row("of which interpreter + imports", imports, "(python -c 'import orchestrator.cli, ...')")
    if reported:
        row("of which both replays", min(reported), "(as the command reports it)")


# -- 2 and 3. the recorded data


def run_recorded(config_path: Path, repeat: int, top: int) -> float:
    load_s, prepared = best_of(repeat, lambda: prepare(load(config_path)))
    config, datasets, inst = prepared.loaded.config, prepared.datasets, prepared.instruments
    n = events_in(datasets)
    replay_s, (result, teardown) = best_of(repeat, lambda: replay(config, datasets, inst))
    merge_s, _ = best_of(repeat, lambda: sum(1 for _ in merged_events(datasets)))
    rate = result.events / replay_s
    pairs = ", ".join(p.name for p in config.pairs)
    print(f"  {n:,} market events ({pairs}), {len(result.positions)} positions")
    row("loading (prepare(load(config)))", load_s, f"best of {repeat}")
    row("Replay.run (anyio.run of it)", replay_s, f"{rate:12,.0f} events/s, best of {repeat}")
    row("of which loop teardown", teardown, "(asyncio formats the result's repr here: kept ~0)")
    row("merged_events alone", merge_s, f"{n / merge_s:12,.0f} events/s, no engine work")

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
    print(f"  {'data held (tracemalloc)':34}{held / MIB:8.1f} MiB   separate pass")
    print(f"  {'replay peak above it (tracemalloc)':34}{peak / MIB:8.1f} MiB   same pass")

    print(f"\n3. profile of Replay.run on the recorded data (cProfile, top {top} by own time)")
    profile(prepared, top)
    return rate


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


# -- 4. a generated series


class DecimalCache(dict[int, Decimal]):
    """Integers to Decimal(n) * 10**exponent, each made once and then shared."""

    def __init__(self, exponent: int) -> None:
        super().__init__()
        self.exponent = exponent

    def __missing__(self, n: int) -> Decimal:
        value = self[n] = Decimal(n).scaleb(self.exponent)
        return value


def synthetic_instruments(k: int, quote: str) -> tuple[Instrument, Instrument]:
    base = f"SYN{k}"
    spot, perp = (
        Instrument(
            symbol=symbol,
            category=category,
            base=base,
            quote=quote,
            qty_step=Decimal("0.01"),
            min_qty=Decimal("0.01"),
            min_notional=Decimal(5),
            price_tick=Decimal("0.01"),
        )
        for symbol, category in (
            (f"{base}/{quote}", Category.SPOT),
            (f"{base}/{quote}:{quote}", Category.LINEAR),
        )
    )
    return spot, perp


def candles(
    rng: random.Random, times: list[int], level: int, exponent: int, volumes: list[Decimal]
) -> tuple[list[Candle], list[Candle]]:
    """Hourly spot and perp candles: a mean-reverting random walk around ``level`` (in
    price ticks), 0.4 % an hour; the perp's close within 5 bps of the spot's."""
    price = DecimalCache(exponent)
    sigma = level * 0.004
    wick = level * 0.002
    floor = max(level // 4, 10)
    gauss, rand, bits = rng.gauss, rng.random, rng.getrandbits
    spot: list[Candle] = []
    perp: list[Candle] = []
    add_spot, add_perp = spot.append, perp.append
    s_close = p_close = level
    for t in times:
        s_open, p_open = s_close, p_close
        s_close = max(floor, s_open + round(gauss(0.0, sigma)) + (level - s_open) // 300)
        p_close = s_close + s_close * (int(rand() * 11) - 5) // 10_000
        s_high = max(s_open, s_close) + int(rand() * wick)
        s_low = max(1, min(s_open, s_close) - int(rand() * wick))
        p_high = max(p_open, p_close) + int(rand() * wick)
        p_low = max(1, min(p_open, p_close) - int(rand() * wick))
        add_spot(
            Candle(t, price[s_open], price[s_high], price[s_low], price[s_close], volumes[bits(10)])
        )
        add_perp(
            Candle(t, price[p_open], price[p_high], price[p_low], price[p_close], volumes[bits(10)])
        )
    return spot, perp


# Funding regimes per 8 h, in millionths: (weight, lowest, highest). High clears the
# 10 %/y entry (0.0000913 per 8 h), low sits around the 2 %/y exit, negative leaves.
REGIMES = ((0.35, 80, 300), (0.40, -5, 25), (0.25, -100, -5))


def funding(rng: random.Random, times: list[int]) -> list[FundingRate]:
    """A settlement every 8 h, in regimes of 5 to 40 days."""
    rate = DecimalCache(-6)
    weights = [w for w, _, _ in REGIMES]
    rows: list[FundingRate] = []
    left, low, high = 0, 0, 0
    for t in times:
        if left == 0:
            _, low, high = rng.choices(REGIMES, weights)[0]
            left = rng.randint(15, 120)
        left -= 1
        rows.append(FundingRate(t, rate[rng.randint(low, high)]))
    return rows


def generate(
    prepared: Prepared, n_events: int, n_pairs: int, seed: int
) -> tuple[Config, dict[str, Instrument], list[PairData]]:
    """About n_events over n_pairs: the config's pairs (around their last recorded
    close), then synthetic ones, all on one hourly clock from 2024 onwards."""
    config = prepared.loaded.config
    quote = config.pairs[0].spot.split("/")[1]
    pairs = list(config.pairs[:n_pairs])
    inst = dict(prepared.instruments)
    levels = [d.spot[-1].close for d in prepared.datasets[: len(pairs)]]
    for k in range(len(pairs), n_pairs):
        spot, perp = synthetic_instruments(k, quote)
        inst[spot.symbol], inst[perp.symbol] = spot, perp
        pairs.append(Pair(spot.symbol, perp.symbol))
        levels.append(Decimal(10 + 7 * k))
    hours = max(1, math.ceil(n_events / (n_pairs * EVENTS_PER_PAIR_HOUR)))
    times = list(range(START_MS, START_MS + hours * HOUR_MS, HOUR_MS))
    settlements = times[:: FUNDING_MS // HOUR_MS]
    volumes = [Decimal(1 + i * 37 % 5000).scaleb(-2) for i in range(1024)]
    datasets = []
    for i, pair in enumerate(pairs):
        rng = random.Random(seed * 1_000_003 + i)
        tick = inst[pair.spot].price_tick
        exponent = int(tick.as_tuple().exponent)
        level = int(levels[i] / tick)
        spot_rows, perp_rows = candles(rng, times, level, exponent, volumes)
        rates = funding(rng, settlements)
        datasets.append(PairData(pair.spot, pair.perp, spot_rows, perp_rows, rates, warnings=[]))
    return msgspec.structs.replace(config, pairs=pairs), inst, datasets


def run_generated(prepared: Prepared, n_events: int, n_pairs: int, seed: int) -> float:
    gc.collect()
    rss0 = max_rss_mib()
    t0 = time.perf_counter()
    config, inst, datasets = generate(prepared, n_events, n_pairs, seed)
    gen_s = time.perf_counter() - t0
    rss1 = max_rss_mib()
    n = events_in(datasets)
    first, last = datasets[0].spot[0].open_time_ms, datasets[0].spot[-1].open_time_ms
    years = (last - first) / (365.25 * 24 * HOUR_MS)
    names = ", ".join(p.name for p in config.pairs)
    print(f"  {n:,} market events: {len(datasets)} pairs ({names}), {years:,.0f} years hourly")
    row("generation", gen_s, f"peak RSS {rss1:7,.0f} MiB (+{rss1 - rss0:,.0f})")
    gc.collect()
    t0 = time.perf_counter()
    result, teardown = replay(config, datasets, inst)
    replay_s = time.perf_counter() - t0
    rss2 = max_rss_mib()
    rate = result.events / replay_s
    row("Replay.run (anyio.run of it)", replay_s, f"{rate:12,.0f} events/s, one pass")
    row("of which loop teardown", teardown, "(asyncio formats the result's repr here: kept ~0)")
    print(f"  {'peak RSS during the replay':34}{rss2:8,.0f} MiB (+{rss2 - rss1:,.0f})")
    merge_s, _ = best_of(1, lambda: sum(1 for _ in merged_events(datasets)))
    row("merged_events alone", merge_s, f"{n / merge_s:12,.0f} events/s, no engine work")
    entries = sum(len(run.entries) for run in result.pairs)
    exits = sum(len(run.exits) for run in result.pairs)
    states = dict(Counter(p.state for p in result.positions))
    reasons = Counter(exit_kind(reason) for run in result.pairs for _, reason in run.exits)
    print(
        f"  positions: {entries:,} opened, {exits:,} closed (by state: {states}); "
        f"exits by reason: {dict(reasons)}"
    )
    return rate


def exit_kind(reason: str) -> str:
    for word, kind in (("basis", "basis"), ("negative", "negative streak"), ("below", "low rate")):
        if word in reason:
            return kind
    return reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--events", type=int, default=10_000_000, help="generated; 0 skips")
    parser.add_argument("--pairs", type=int, default=0, help="generated; 0: the config's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="best of, recorded data")
    parser.add_argument("--cli-repeat", type=int, default=3, help="best of, the command")
    parser.add_argument("--top", type=int, default=15, help="functions in the profile")
    args = parser.parse_args()
    config_path = args.config.resolve()

    print(f"1. `orchestrator run {config_path.name}` end to end (subprocess)")
    run_command(config_path, args.cli_repeat)

    print("\n2. the strategy's replay on the recorded data")
    recorded = run_recorded(config_path, args.repeat, args.top)

    generated = math.nan
    if args.events > 0:
        prepared = prepare(load(config_path))
        n_pairs = args.pairs or len(prepared.loaded.config.pairs)
        print(f"\n4. the strategy's replay on about {args.events:,} generated events")
        generated = run_generated(prepared, args.events, n_pairs, args.seed)

    print(
        f"\ntarget: {TARGET:,} events/s on one core; reached: {recorded:,.0f} events/s "
        f"(recorded), {generated:,.0f} events/s (generated)"
    )


if __name__ == "__main__":
    main()
