"""The dashboard on big runs: page load times, each beside its target (under 1 s).

    python benchmarks/dashboard.py [--quick] [--positions N] [--repeat N]

Prints, in order:
1. A generated journal of --positions positions (10,000; tests/dashboard_support.py:
   every kind of state, fills, fees, funding) and a replay of one year of the recorded
   data (2024, hourly: 8,784 equity samples) through `orchestrator run`, in a temporary
   folder (not part of any figure).
2. `orchestrator dashboard` started on them (a subprocess on a free port); each page
   fetched over HTTP and read to its end: the first load (what it costs after a change
   of the run's files: a journal snapshot, the status, for the money page of a replay
   its curve replayed again; the pages of one run share these) and the best of
   --repeat loads after it.
3. Every figure beside its target.
4. What a dashboard watching costs a run: `orchestrator run` on the same window, best of
   --repeat wall times, alone and with the dashboard serving a browser's load (its live
   stream open, the runs list and the newest run's page fetched every 0.25 s, which read
   the journal while the run writes it), and the ratio (target: at most 1.05x).
5. The same for the trading loop itself: benchmarks/lifecycle.py's journaled paper
   lifecycles (open, validate, close; intents committed before the orders leave), best
   of --repeat, alone and with the dashboard watching their journal, and the ratio.
Figures, not asserts; the machine's load is printed first and last (uptime): compare
runs made under the same load.

--quick is the profile CI runs (tests/test_benchmarks_quick.py): 1,000 positions, a
two-month replay, best of 2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.dashboard_support: the journal generator

from tests.dashboard_support import env, generate_journal  # noqa: E402

TARGET_S = 1.0


def load_line() -> str:
    return os.getloadavg().__repr__() if hasattr(os, "getloadavg") else "unknown"


def replay_year(workdir: Path, start: str, end: str) -> str:
    """`orchestrator run` on the default config over [start, end); the newest run's name."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("start: null", f'start: "{start}"').replace("end: null", f'end: "{end}"')
    (workdir / "config.yaml").write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"orchestrator run exited {done.returncode}: {done.stderr[-2000:]}")
    runs = [p for p in (workdir / "runs").iterdir() if p.name != "generated"]
    return max(runs, key=lambda p: p.stat().st_mtime_ns).name


def timed_run(workdir: Path) -> float:
    t0 = time.perf_counter()
    replay_year(workdir, *WINDOWS[workdir.name])
    return time.perf_counter() - t0


WINDOWS: dict[str, tuple[str, str]] = {}


class Watcher:
    """A browser's load on the dashboard while a run goes on: the live stream open,
    the runs list and the newest run's page fetched every 0.25 s."""

    def __init__(self, url: str, runs: Path) -> None:
        self.url, self.runs = url, runs
        self.stop = threading.Event()
        self.fetched = 0
        self.threads = [
            threading.Thread(target=self._pages, daemon=True),
            threading.Thread(target=self._stream, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _pages(self) -> None:
        while not self.stop.wait(0.25):
            newest = max(self.runs.iterdir(), key=lambda p: p.stat().st_mtime_ns, default=None)
            for path in ("", f"runs/{newest.name}" if newest else ""):
                try:
                    urllib.request.urlopen(self.url + path, timeout=30).read()
                    self.fetched += 1
                except OSError:
                    pass  # a run folder being created: the next round reads it

    def _stream(self) -> None:
        with urllib.request.urlopen(self.url + "events", timeout=30) as stream:
            while not self.stop.is_set():
                stream.readline()

    def close(self) -> None:
        self.stop.set()
        self.threads[0].join(10)


def lifecycle_cost(url: str, runs: Path, repeat: int, n: int) -> tuple[float, float]:
    """Microseconds per journaled lifecycle, best of ``repeat``: alone, then with the
    dashboard (at ``url``, serving ``runs``) watching the journal being written."""
    import anyio
    import lifecycle

    made = itertools.count()

    def best(watch: bool) -> float:
        found = []
        for _ in range(repeat):
            folder = runs / f"lifecycles-{'watched' if watch else 'alone'}-{next(made)}"
            subject = lifecycle.OursJournaled(runs, folder=folder)
            watcher = Watcher(url, runs) if watch else None
            try:
                figures = anyio.run(lifecycle.lifecycles, subject, n)
            finally:
                if watcher is not None:
                    watcher.close()
                subject.journal.close()
            found.append(figures["us/lifecycle"])
        return min(found)

    best(False)  # warm up
    return best(False), best(True)


def fetch(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"{url}: HTTP {answer.status}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI profile")
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    positions = 1_000 if args.quick else args.positions
    if args.quick:
        args.repeat = 2
    window = ("2024-01-01", "2024-03-01") if args.quick else ("2024-01-01", "2025-01-01")
    print(f"load average before: {load_line()}, {os.cpu_count()} cores")
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    proc: subprocess.Popen[str] | None = None
    try:
        t0 = time.perf_counter()
        generate_journal(workdir / "runs" / "generated", positions)
        year = replay_year(workdir, *window)
        print(
            f"1. generated {positions:,} positions and replayed {window[0]} to {window[1]} "
            f"in {time.perf_counter() - t0:.1f} s (not a figure)"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "dashboard", "--port", "0"],
            cwd=workdir,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        # The run page first: its first load pays for the journal's snapshot and the
        # status, which the other pages of the run then share until its files change.
        pages = [
            (f"run page, {positions:,} positions, first page", "runs/generated"),
            (f"runs list (2 runs, one of {positions:,} positions)", ""),
            ("run page, a page in the middle", f"runs/generated?offset={positions // 2}"),
            ("run page, filtered by state", "runs/generated?state=validated&offset=50"),
            ("machine page with counts", "runs/generated/machine"),
            ("a position: path and timeline", "runs/generated/positions/C00USDT-00000"),
            (f"money page, {positions:,} positions", "runs/generated/money"),
            (f"money page, replay {window[0]} to {window[1]}", f"runs/{year}/money"),
        ]
        print(f"2. page loads over HTTP ({url}), first and best of {args.repeat} after")
        rows = []
        for label, path in pages:
            first = fetch(url + path)
            warm = min(fetch(url + path) for _ in range(args.repeat))
            rows.append((label, first, warm))
        print("3. figures")
        print(f"   {'page':<52}{'first s':>9}{'warm s':>9}   target")
        for label, first, warm in rows:
            print(f"   {label:<52}{first:>9.3f}{warm:>9.3f}   < {TARGET_S:g} s")
        WINDOWS[workdir.name] = window
        alone = min(timed_run(workdir) for _ in range(args.repeat))
        watcher = Watcher(url, workdir / "runs")
        try:
            watched = min(timed_run(workdir) for _ in range(args.repeat))
        finally:
            watcher.close()
        print(f"4. orchestrator run {window[0]} to {window[1]}, best of {args.repeat}")
        print(f"   {'alone s':<52}{alone:>9.3f}")
        print(f"   {'with a dashboard watching s':<52}{watched:>9.3f}   ({watcher.fetched} pages)")
        print(f"   {'watched / alone':<52}{watched / alone:>8.2f}x   <= 1.05x")
        n = 300 if args.quick else 3_000
        alone_us, watched_us = lifecycle_cost(url, workdir / "runs", args.repeat, n)
        print(
            f"5. {n:,} journaled paper lifecycles (benchmarks/lifecycle.py), best of {args.repeat}"
        )
        print(f"   {'alone us/lifecycle':<52}{alone_us:>9.1f}")
        print(f"   {'with a dashboard watching their journal':<52}{watched_us:>9.1f}")
        print(f"   {'watched / alone':<52}{watched_us / alone_us:>8.2f}x   <= 1.05x")
        print(f"load average after: {load_line()}")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
