"""A live run left alone (issue 19, items 6, 7, 8), through the CLI: ``orchestrator venue``
and ``orchestrator run`` (mode live, real ccxt), each in its own process.

- A heartbeat line every ``live.heartbeat_seconds``.
- The venue lost: said within a poll with its cause, said again when it answers; a
  SIGTERM while it is unreachable ends with exit 143, the summary written from the last
  reading, and no traceback.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.test_crash_resume_live import Watched, orchestrator, write_config
from tests.test_live_accounts import Venue

DOWN = {"rules": [{"kind": "http", "status": 503, "times": None}]}


def config(workdir: Path, url: str) -> None:
    write_config(workdir, url, on_stop="leave")
    path = workdir / "config.yaml"
    path.write_text(path.read_text() + "  heartbeat_seconds: 1\n")


def wait_for(run: Watched, words: str, seconds: float) -> float:
    """Seconds until a stderr line holds ``words``; AssertionError after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if any(words in line for line in run.lines):
            return time.monotonic() - start
        if run.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no {words!r} in:\n{''.join(run.lines)}")


def test_a_heartbeat_and_the_venue_lost_and_found(tmp_path: Path) -> None:
    venue = Venue(tmp_path)
    try:
        config(tmp_path, venue.url)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        wait_for(run, "live: trading", 30)
        wait_for(run, "heartbeat: venue time", 5)
        beat = next(line for line in run.lines if "heartbeat:" in line)
        for part in ("equity", "positions:", "funding", "last venue contact"):
            assert part in beat, beat
        venue.admin("faults", DOWN)  # every request answered 503 from now on
        # poll_seconds is 0.5: said within a couple of polls of the first failed read.
        assert wait_for(run, "the venue is unreachable since", 10) < 5
        venue.admin("faults", {"rules": []})
        wait_for(run, "the venue answers again", 15)
        venue.admin("faults", DOWN)
        wait_for(run, "heartbeat: ", 5)
        time.sleep(1.5)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    assert err.count("the venue is unreachable since") == 2, err  # once per outage
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    alerts = " ".join(summary["alerts"])
    assert "unreachable 2 time(s)" in alerts, alerts
    assert "at the end the venue could not be read" in alerts, alerts
    assert not (next((tmp_path / "runs").glob("*")) / "INCOMPLETE").exists()
