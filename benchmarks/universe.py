"""The universe at scale: a generated folder of many pairs (hourly candles, funding every
1, 2, 4 or 8 h) traded with ``pairs: auto`` and rotation, end to end and per event.

    python benchmarks/universe.py [--quick] [--pairs N] [--days D] [--repeat N]

Prints, in order:
1. The folder written by orchestrator.market.synthetic (not part of any figure).
2. `orchestrator run config.yaml` with `pairs: auto` (risk.max_open_positions 20,
   rotation on) as a subprocess: wall time end to end (interpreter, loading, both
   replays, reports, chart) and the child's peak RSS; the rotations and the rejected
   opens it reports.
3. Per event, in this process: the strategy's replay of the same folder with 2 pairs
   listed and with all of them under `pairs: auto`, in --repeat interleaved rounds
   (each: the short 2-pair replay five times, then the big one), the best of each,
   loading not counted, and the ratio.
4. Every figure beside its target. Figures, not asserts; the machine's load is printed
   first and last (uptime): compare runs made under the same load.

--quick is the profile CI runs (tests/test_benchmarks_quick.py): 12 pairs x 20 days.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from orchestrator.config import load
from orchestrator.market.synthetic import write_folder
from orchestrator.replay.engine import Replay
from orchestrator.replay.session import Prepared, prepare, turnover_of
from orchestrator.strategy.funding import strategies
from orchestrator.trading.ranking import Ranking

ROOT = Path(__file__).resolve().parent.parent
WALL_TARGET_S = 60.0
RSS_TARGET_MIB = 1024
PER_EVENT_TARGET = 1.3
CONFIG = """pairs: {pairs}
data:
  dir: {data}
risk:
  max_open_positions: 20
universe:
  min_history_days: 3
  history_days: 7
output:
  dir: {runs}
  chart: true
"""


def load_line() -> str:
    return os.getloadavg().__repr__() if hasattr(os, "getloadavg") else "unknown"


def end_to_end(config: Path) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, the child's peak RSS (MiB) and its summary."""
    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate()
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    if child.returncode != 0:
        raise SystemExit(f"orchestrator run exited {child.returncode}: {err[-2000:]}")
    folder = Path(out.strip().splitlines()[-1].removeprefix("written to ").strip())
    summary = json.loads((folder / "summary.json").read_text())
    return wall, rss, summary


def replay_seconds(prepared: Prepared, repeat: int) -> tuple[float, int]:
    """Best wall time of the strategy's replay (no progress, no journal), and its events."""
    config = prepared.loaded.config
    best, events = float("inf"), 0
    for _ in range(repeat):
        replay = Replay(config, prepared.datasets, prepared.instruments, strategies(config))
        if prepared.auto:
            replay.ranking = Ranking(
                replay.pairs, config.universe, config.fees, config.paper.slippage,
                turnover_of(prepared.datasets),
            )  # fmt: skip
        gc.collect()
        t0 = time.perf_counter()
        result = anyio.run(replay.run)
        best = min(best, time.perf_counter() - t0)
        events = result.events
    return best, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pairs, days, repeat = (12, 20, 1) if args.quick else (args.pairs, args.days, args.repeat)
    print(f"load average before: {load_line()}, {os.cpu_count()} cores")
    root = Path(tempfile.mkdtemp(prefix="universe-bench-"))
    try:
        data = root / "data"
        t0 = time.perf_counter()
        write_folder(data, pairs, days, seed=3)
        print(f"1. generated {pairs} pairs x {days} d in {time.perf_counter() - t0:.1f} s")
        auto = root / "auto.yaml"
        auto.write_text(CONFIG.format(pairs="auto", data=data, runs=root / "runs"))
        two = root / "two.yaml"
        listed = "\n".join(f"  - {{spot: SYN{k}/USDT, perp: SYN{k}/USDT:USDT}}" for k in range(2))
        two.write_text(CONFIG.format(pairs="\n" + listed, data=data, runs=root / "runs"))

        wall, rss, summary = end_to_end(auto)
        positions = summary["positions"]
        assert isinstance(positions, dict)
        rotations = summary["rotations"]
        assert isinstance(rotations, list)
        print(f"2. `orchestrator run` with pairs: auto, {pairs} pairs x {days} d")
        print(f"  wall time end to end     {wall:8.1f} s")
        print(f"  peak RSS (the child)     {rss:8.0f} MiB")
        print(f"  rotations {len(rotations)}, positions by state {positions}")

        small = prepare(load(two))
        big = prepare(load(auto))
        # Interleaved, as this machine's speed moves by a quarter from one minute to the
        # next: each round, the 2-pair replay (a tenth of a second: best of five) and
        # then the big one; the best of each over the rounds.
        s_small = s_big = float("inf")
        e_small = e_big = 0
        for _ in range(repeat):
            seconds, e_small = replay_seconds(small, 5)
            s_small = min(s_small, seconds)
            seconds, e_big = replay_seconds(big, 1)
            s_big = min(s_big, seconds)
        del small, big
        per_small, per_big = s_small / e_small * 1e6, s_big / e_big * 1e6
        print(f"3. the strategy's replay per event, best of {repeat} interleaved rounds")
        print(f"  2 pairs listed           {per_small:8.3f} us/event ({e_small:,} events)")
        print(f"  {pairs} pairs, pairs: auto {per_big:8.3f} us/event ({e_big:,} events)")
        ratio = per_big / per_small

        print("4. against the targets")
        print(f"  {'':34}{'measured':>12}  target")
        print(f"  {'end to end, s':34}{wall:>12.1f}  < {WALL_TARGET_S:.0f}")
        print(f"  {'peak RSS, MiB':34}{rss:>12,.0f}  < {RSS_TARGET_MIB:,}")
        print(f"  {'per event, auto / 2 pairs':34}{ratio:>11.2f}x  <= {PER_EVENT_TARGET}x")
        print(f"  {'rejected opens':34}{positions.get('rejected', 0):>12}  small")
        print(f"load average after: {load_line()}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
