"""Pairs decide independently (issue 19, item 9): a slow leg of one pair never holds up
another pair's open or close. Through the CLI: ``orchestrator venue`` and ``orchestrator
run`` (mode live, both pairs), each in its own process; the BTCUSDT perp open works a
while before it fills, and ETHUSDT's orders arrive meanwhile, not after it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.test_crash_resume_live import ROOT, Watched, orchestrator
from tests.test_live_accounts import Venue

HOLD_MS = 3000  # how long BTCUSDT's perp open works before it fills


def test_a_slow_leg_of_one_pair_does_not_hold_up_the_other(tmp_path: Path) -> None:
    rules = {
        "rules": [
            {
                "kind": "fill_late",
                "category": "linear",
                "link_id": "*BTCUSDT*-po1",
                "hold_ms": HOLD_MS,
            }
        ]
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    venue = Venue(tmp_path, "--faults", str(tmp_path / "rules.json"))
    try:
        text = (ROOT / "config.yaml").read_text().replace("mode: paper", "mode: live")
        text += (
            f"\nlive:\n  url: {venue.url}\n  poll_seconds: 0.5\n  request_timeout_ms: 1000\n"
            "  recv_window_ms: 1000\n  clock_skew_ms: 100\n  on_stop: close\n"
        )
        text = text.replace("order_timeout_seconds: 10", "order_timeout_seconds: 8")
        (tmp_path / "config.yaml").write_text(text)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 60
        creates: list[dict[str, object]] = []
        while run.process.poll() is None and time.monotonic() < deadline:
            creates = venue.admin("requests")["creates"]
            if {"ETHUSDT", "BTCUSDT"} <= {str(c["symbol"]) for c in creates}:
                break
            time.sleep(0.1)
        time.sleep(HOLD_MS / 1000 + 1)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        creates = venue.admin("requests")["creates"]
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    arrived = {str(c["order_link_id"]): int(str(c["arrival_ns"])) for c in creates}
    btc = arrived[next(k for k in arrived if "BTCUSDT" in k and k.endswith("-po1"))]
    eth = min(v for k, v in arrived.items() if "ETHUSDT" in k)
    # Decided in the same cycle: ETHUSDT's orders leave while BTCUSDT's perp still works.
    assert eth - btc < HOLD_MS * 1_000_000 / 3, (eth - btc) / 1e6
