"""Each benchmark's quick profile runs, prints its figures and leaves nothing in the
temporary folder: so that the benchmarks cannot rot. Figures only, no timing is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick(script: str, tmp_path: Path) -> str:
    """What ``benchmarks/<script> --quick`` prints; it must exit 0 and leave nothing in
    the temporary folder (a dedicated one: TMPDIR)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        env=dict(os.environ, TMPDIR=str(temporary)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    left = sorted(str(p.relative_to(temporary)) for p in temporary.rglob("*"))
    assert left == [], f"{script} --quick left in the temporary folder: {left[:20]}"
    return done.stdout


def test_replay_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    out = quick("replay.py", tmp_path)
    for section in ("1. `orchestrator run", "2. the strategy's replay", "3. profile", "5. against"):
        assert section in out
    assert out.count("4. a generated series") == 2  # two lengths
    assert re.search(r"recorded data, strategy, events/s\s+[\d,]+\s+>= 1,000,000\s+517,392", out)
    assert len(re.findall(r"generated 3 pairs x \d d .*events/s\s+[\d,]+\s+>= 1,000,000", out)) == 2
    assert len(re.findall(r"peak RSS MiB\s+[\d,]+\s+< 1,024", out)) == 2
    assert re.search(r"peak RSS, 2 d less 1 d, MiB\s+-?[\d,]+", out)
    assert re.search(r"recorded data, loading / bare csv.reader\s+[\d.]+x\s+<= 1.5x", out)
    assert (
        len(re.findall(r"generated 3 pairs .*loading / bare csv.reader\s+[\d.]+x\s+<= 1.5x", out))
        == 2
    )
    assert "load average" in out


def test_lifecycle_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    # Its journals and trace files (about 90 MiB in a full run) are removed: quick() checks.
    out = quick("lifecycle.py", tmp_path)
    for label, target in (
        ("lifecycle, ours / bare", r"<= 1\.5x"),
        ("lifecycle, journaled / bare", "<= 2x"),
        ("journal adds to a lifecycle", r"<= \+50 %"),
        ("open -> both sent p99, / bare", "<= 2x"),
        ("leg skew p99", "< 1 ms"),
        ("10,000 open positions, traced", "< 300 MiB"),
        ("journal per lifecycle / its floor", "<= 2x"),
        ("  / every commit it makes", "<= 2x"),
    ):
        assert re.search(rf"{re.escape(label)}\s+[+\-\d.,]+(x|%| ms| MiB)\s+{target}", out), label
    assert re.search(r"python-statemachine [\d.]+ us, the derived table the manager runs", out)
    assert re.search(
        r"the journal per paper lifecycle: its own time, .* [\d.]+ us \(journaled less ours: "
        r"-?[\d.]+ us\); its floor, .* its intents' "
        r"[\d.]+ us, every commit it makes [\d.]+ us; in a loop .* its intents' [\d.]+ us",
        out,
    )
    assert "load average" in out


def test_live_skew_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    # The venue runs in its own process; it is stopped and leaves nothing behind.
    out = quick("live_skew.py", tmp_path)
    assert re.search(r"target concurrent leg skew p99 < 1 ms:\s+[\d.]+ ms", out)
    assert re.search(
        r"skew p50, concurrent [\d.]+ ms; sequential [\d.]+ ms .*ccxt throttle on", out
    )
    assert re.search(r"burst: 4 opens back to back", out)


def test_alerts_latency_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    # The venue and the runs in their own processes, the receiver here: all stopped.
    out = quick("alerts_latency.py", tmp_path)
    for mode in ("none", "hanging", "answering"):
        assert re.search(rf"^{mode}\s+2\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"hanging - none, open p50: [+\-][\d.]+ ms; target <= \+10 ms", out), out
    assert "load average" in out


def test_universe_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    out = quick("universe.py", tmp_path)
    assert "1. generated 12 pairs x 20 d" in out
    for label, target in (
        ("end to end, s", "< 60"),
        ("peak RSS, MiB", "< 1,024"),
        ("per event, auto / 2 pairs", r"<= 1\.3x"),
        ("rejected opens", "small"),
    ):
        assert re.search(rf"{re.escape(label)}\s+[\d.,]+x?\s+{target}", out), label
    assert re.search(r"load average before: .+, \d+ cores", out)


def test_dashboard_benchmark_quick_profile_prints_every_figure(tmp_path: Path) -> None:
    out = quick("dashboard.py", tmp_path)
    assert "1. generated 1,000 positions" in out
    for page in ("run page, 1,000 positions", "runs list", "machine page", "money page, replay"):
        assert re.search(rf"{re.escape(page)}.*\s+[\d.]+\s+[\d.]+\s+< 1 s", out), page
    assert re.search(r"watched / alone\s+[\d.]+x\s+<= 1.05x", out)
    assert "load average after" in out
