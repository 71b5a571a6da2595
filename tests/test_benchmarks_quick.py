"""The replay benchmark's quick profile runs, prints its figures and cleans up after
itself: so that the benchmark cannot rot. Figures only, no timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick(script: str) -> str:
    """What ``benchmarks/<script> --quick`` prints; it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_replay_benchmark_quick_profile_prints_every_figure() -> None:
    before = set(Path(tempfile.gettempdir()).glob("replay-bench-*"))
    out = quick("replay.py")
    for section in ("1. `orchestrator run", "2. the strategy's replay", "3. profile", "5. against"):
        assert section in out
    assert out.count("4. a generated series") == 2  # two lengths
    assert re.search(r"recorded data, strategy, events/s\s+[\d,]+\s+>= 1,000,000\s+517,392", out)
    assert len(re.findall(r"generated 3 pairs x \d d .*events/s\s+[\d,]+\s+>= 1,000,000", out)) == 2
    assert len(re.findall(r"peak RSS MiB\s+[\d,]+\s+< 1,024", out)) == 2
    assert re.search(r"peak RSS, 2 d less 1 d, MiB\s+-?[\d,]+", out)
    # The generated series were written to temporary folders, and deleted.
    assert set(Path(tempfile.gettempdir()).glob("replay-bench-*")) <= before


def test_lifecycle_benchmark_quick_profile_prints_every_figure() -> None:
    out = quick("lifecycle.py")
    for label, target in (
        ("lifecycle, ours / bare", r"<= 1\.5x"),
        ("lifecycle, journaled / bare", "<= 2x"),
        ("journal adds to a lifecycle", r"<= \+50 %"),
        ("open -> both sent p99, / bare", "<= 2x"),
        ("leg skew p99", "< 1 ms"),
        ("10,000 open positions, traced", "< 300 MiB"),
    ):
        assert re.search(rf"{re.escape(label)}\s+[+\-\d.,]+(x|%| ms| MiB)\s+{target}", out), label
    assert re.search(r"python-statemachine [\d.]+ us, the derived table the manager runs", out)
