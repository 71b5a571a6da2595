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
3. Every figure beside its target. Figures, not asserts; the machine's load is printed
   first and last (uptime): compare runs made under the same load.

--quick is the profile CI runs (tests/test_benchmarks_quick.py): 1,000 positions and a
two-month replay.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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
    """`orchestrator run` on the default config over [start, end); the run's name."""
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
    names = [p.name for p in (workdir / "runs").iterdir() if p.name != "generated"]
    return names[0]


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
        print(f"load average after: {load_line()}")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
