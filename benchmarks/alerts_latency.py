"""An open's latency with the alert service hanging, answering, or absent.

    python benchmarks/alerts_latency.py [--rounds N] [--quick]

Each round runs ``orchestrator venue`` (the loopback venue, recorded prices at a standing
clock) and ``orchestrator run`` (mode live, real ccxt, both pairs) in their own processes,
as a user runs them, once per way of receiving alerts:

- none: no ``ORCHESTRATOR_ALERT_URLS``: no alert is raised at all;
- hanging: a loopback receiver that takes each post and never answers (apprise waits its
  read timeout, 4 s, on each); the run's ``started`` alert is on its way when the opens
  are decided, the ``opened`` ones queue behind it;
- answering: the same receiver answering 200 at once.

The run opens a position on each pair on its first cycle; it is stopped (SIGTERM) once
both are held. An open's latency is its ``position.open`` span in the run's traces (both
legs sent, until both filled: where a blocking alert would show), and the decision to
validated, from the position's journaled ``created_at`` and ``opened_at`` (the venue's
clock stands still here, so that one is read from the traces' wall clock instead: the
``position`` span's start to ``position.validate``'s end). Rounds interleave the modes so
that the shared machine's noise hits all three. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.alerts.settings import URLS_ENV  # noqa: E402
from orchestrator.tracing.trace_file import read_spans  # noqa: E402
from tests.alert_receiver import Receiver  # noqa: E402
from tests.test_crash_resume_live import Watched, orchestrator  # noqa: E402
from tests.test_live_accounts import Venue  # noqa: E402
from tests.test_live_control import holding, live_config  # noqa: E402

MODES = ("none", "hanging", "answering")
# What a hanging service may add to the median open: nothing but noise. On 2 shared cores
# one run's median differs from the next one's by about this much whatever the receiver.
TARGET_EXTRA_MS = 10.0


def one_round(mode: str, workdir: Path) -> tuple[list[float], list[float]]:
    """(open spans ms, decision-to-validated ms) of the round's two opens."""
    workdir.mkdir(parents=True)
    receiver = None if mode == "none" else Receiver("hang" if mode == "hanging" else "ok")
    previous = os.environ.pop(URLS_ENV, None)
    if receiver is not None:
        os.environ[URLS_ENV] = receiver.url("benchmark-token")
    venue = Venue(workdir)
    try:
        live_config(workdir, venue.url, both=True)
        run = Watched(orchestrator("run", "config.yaml", cwd=workdir))
        run_dir = holding(workdir, run, 2)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        if code != 143:
            raise SystemExit(f"{mode}: the run ended with {code}:\n{err}")
    finally:
        venue.stop()
        if receiver is not None:
            receiver.stop()
        os.environ.pop(URLS_ENV, None)
        if previous is not None:
            os.environ[URLS_ENV] = previous
    spans, _ = read_spans(run_dir / "traces.jsonl")
    opens = [s.duration_ms for s in spans if s.name == "position.open"]
    roots = {s.span_id: s for s in spans if s.name == "position"}
    to_validated = [
        (s.end_ns - roots[s.parent_span_id].start_ns) / 1e6
        for s in spans
        if s.name == "position.validate" and s.parent_span_id in roots
    ]
    return opens, to_validated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per mode (2 opens each)")
    parser.add_argument("--quick", action="store_true", help="one round: that it runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    opens: dict[str, list[float]] = {m: [] for m in MODES}
    validated: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for mode in MODES:
                got_opens, got_validated = one_round(mode, Path(tmp) / f"{mode}-{i}")
                opens[mode] += got_opens
                validated[mode] += got_validated
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores")
    print(f"{'receiver':<11} {'opens':>5} {'open p50 ms':>12} {'open max ms':>12} "
          f"{'to validated p50 ms':>20} {'max ms':>8}")  # fmt: skip
    for mode in MODES:
        o, v = opens[mode], validated[mode]
        print(
            f"{mode:<11} {len(o):>5} {statistics.median(o):>12.1f} {max(o):>12.1f} "
            f"{statistics.median(v):>20.1f} {max(v):>8.1f}"
        )
    extra = statistics.median(opens["hanging"]) - statistics.median(opens["none"])
    verdict = "met" if extra <= TARGET_EXTRA_MS else "NOT MET"
    print(
        f"hanging - none, open p50: {extra:+.1f} ms; target <= +{TARGET_EXTRA_MS:g} ms "
        f"({verdict}); a send on the trading path would add apprise's read timeout, 4000 ms"
    )


if __name__ == "__main__":
    main()
