"""`orchestrator screen` on the live market: every pair the shipped venue serves (a
generated folder, funding every 1, 2, 4 or 8 h), read through real ccxt with no key,
ranked as a plain recomputation from the folder's files ranks them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.market.synthetic import write_folder
from tests.folder_support import ROOT, no_traceback
from tests.universe_support import CLOCK_MS, DAY_MS, expected, venue_process

COST = (2 * (Decimal("0.001") + Decimal("0.00055")) + 4 * Decimal("0.0005")) * 8760 / 720


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("live-screen")
    write_folder(root / "data", 12, 60, seed=5)
    with venue_process(root / "data") as url:
        (root / "config.yaml").write_text(
            f"mode: paper\nmarket: live\nlive:\n  url: {url}\nuniverse:\n  min_history_days: 3\n"
        )
        yield root, url
    shutil.rmtree(root)


def screen(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "ORCHESTRATOR"))}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "screen", "config.yaml", *args],
        cwd=folder,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    no_traceback(done)
    return done


def test_the_live_screen_ranks_every_pair_the_venue_serves(venue: tuple[Path, str]) -> None:
    folder, url = venue
    done = screen(folder, "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["source"] == f"the live market of {url}" and got["pairs_found"] == 12
    assert got["at"].startswith("2024-02-15T00:00")
    files = expected(folder / "data")
    mine = []
    for market, e in files.items():
        span = [r for t, r in e.rates if CLOCK_MS - 30 * DAY_MS < t <= CLOCK_MS]
        net = sum(span, Decimal(0)) / len(span) * 8760 / e.interval_hours - COST
        mine.append((market, net))
    mine.sort(key=lambda m: (-m[1], m[0]))
    ranked = [p for p in got["pairs"] if p["rank"] is not None]
    assert [(p["pair"], Decimal(p["net_annualised"])) for p in ranked] == mine
    for p in ranked:
        e = files[p["pair"]]
        assert p["interval_hours"] == e.interval_hours
        assert Decimal(p["turnover_24h"]) == e.turnover_24h
        assert Decimal(p["predicted_rate"]) == e.next_rate[1]
        assert Decimal(p["basis"]) == e.perp_last / e.spot_last - 1
        assert Decimal(p["spread"]) > 0


def test_the_live_screen_refuses_an_instant_and_says_a_lost_venue(
    venue: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = venue
    done = screen(folder, "--at", "2024-01-01")
    assert done.returncode == 2 and "--at: only on the recorded data" in done.stderr
    (tmp_path / "config.yaml").write_text(
        "mode: paper\nmarket: live\nlive:\n  url: http://127.0.0.1:9\n"
    )
    lost = screen(tmp_path, "--top", "3")
    assert lost.returncode == 2
    assert "error: the venue's market:" in lost.stderr
