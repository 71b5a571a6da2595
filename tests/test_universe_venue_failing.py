"""A venue that keeps failing for the pairs' funding histories (it never answers, drops
the connection, answers 503, refuses) stops the read of its whole market early, in
every command that reads it: ``screen``, ``data download --top`` and ``--universe``,
and the start of a ``pairs: auto`` dry run. Each exits 2 with one line saying why,
after a few pairs, not after asking every pair in turn; a market where every pair
failed exits 2 too. Real CLI processes, real ccxt, the shipped venue in its own
process with its faults set through /admin/faults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.synthetic import write_folder
from tests.folder_support import ROOT, no_traceback
from tests.universe_support import venue_process

PAIRS = 40
# Asking every pair would take PAIRS x its attempts (4; a download here: 2); the read
# stops after a handful of pairs (the streak of 5, up to 4 at once): well under half of
# that, even with aiohttp's own second try on a dropped keep-alive connection.
MOST_REQUESTS = PAIRS * 4 // 2
TIMING = "  request_timeout_ms: 300\n"

FAULTS = {
    # The tester's: an answer held for a minute, past any client's wait.
    "no answer": {"kind": "timeout_before", "delay_ms": 60_000},
    "dropped": {"kind": "drop_before"},
    "503": {"kind": "http", "status": 503},
    "refused": {"kind": "reject", "ret_code": 10001, "ret_msg": "params error: no history"},
}
SAYS = {
    "no answer": "no answer in time (timeout)",
    "dropped": "gave up after",
    "503": "gave up after",
    "refused": "params error: no history",
}


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two venues: one of 40 pairs, one of 2 (fewer than a streak)."""
    root = tmp_path_factory.mktemp("failing-venue")
    write_folder(root / "many", PAIRS, 60, seed=3)
    write_folder(root / "two", 2, 60, seed=3)
    with venue_process(root / "many") as many, venue_process(root / "two") as two:
        yield {"many": many, "two": two}


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


@pytest.fixture
def failing(markets: dict[str, str]) -> Iterator[Any]:
    """Sets a fault on every funding-history request of a venue; the venue's faults
    cleared after, and how many such requests it received told."""
    touched: list[str] = []

    def fail(which: str, kind: str) -> tuple[str, int]:
        url = markets[which]
        rule = dict(FAULTS[kind], endpoint="market/funding/history", times=None)
        admin(url, "POST", "/admin/faults", {"rules": [rule]})
        touched.append(url)
        return url, admin(url, "GET", "/admin/state")["hits"].get("market/funding/history", 0)

    yield fail
    for url in touched:
        admin(url, "DELETE", "/admin/faults")


def asked(url: str, before: int) -> int:
    """Funding-history requests the venue received since ``before``."""
    return int(admin(url, "GET", "/admin/state")["hits"].get("market/funding/history", 0)) - before


def orchestrator(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "ORCHESTRATOR"))}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=folder,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    no_traceback(done)
    return done, time.monotonic() - started


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    return line


def live_config(folder: Path, url: str, extra: str = "") -> None:
    (folder / "config.yaml").write_text(
        f"mode: paper\nmarket: live\nlive:\n  url: {url}\n{TIMING}{extra}"
    )


@pytest.mark.parametrize("kind", list(FAULTS))
def test_the_screen_stops_early_when_every_pair_fails_the_same_way(
    kind: str, failing: Any, tmp_path: Path
) -> None:
    url, before = failing("many", kind)
    live_config(tmp_path, url)
    done, _ = orchestrator(tmp_path, "screen", "config.yaml")
    assert done.returncode == 2, done.stderr
    line = error_line(done)
    assert line.startswith("error: the venue's market: 5 pairs in a row failed the same way"), line
    tried = re.search(rf"\((\d+) of {PAIRS} pairs tried\)", line)
    assert tried is not None and int(tried[1]) <= 5 + 4, line
    assert "the funding history: " in line, line
    assert SAYS[kind] in line, line
    assert "considered" not in done.stderr + done.stdout  # no empty table passed off as a rank
    assert asked(url, before) <= MOST_REQUESTS


@pytest.mark.parametrize(
    "picking", [("--universe",), ("--universe", "--top", "3")], ids=["universe", "top"]
)
def test_a_download_of_the_venues_best_pairs_stops_early_and_fetches_nothing(
    picking: tuple[str, ...], failing: Any, tmp_path: Path
) -> None:
    url, before = failing("many", "no answer")
    live_config(tmp_path, url, "universe:\n  history_days: 3\n")
    done, _ = orchestrator(
        tmp_path, "data", "download", *picking, "--url", url, "--since", "2024-02-12",
        "--until", "2024-02-13", "--data-dir", "data", "--timeout-ms", "300", "--attempts", "2",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "5 pairs in a row failed the same way" in error_line(done)
    assert "downloading into" not in done.stderr
    assert asked(url, before) <= MOST_REQUESTS
    assert not (tmp_path / "data").exists()


def test_a_dry_run_with_pairs_auto_is_not_started_on_a_venue_that_keeps_failing(
    failing: Any, tmp_path: Path
) -> None:
    url, before = failing("many", "no answer")
    live_config(tmp_path, url, "pairs: auto\n")
    done, _ = orchestrator(tmp_path, "run", "config.yaml")
    assert done.returncode == 2, done.stderr
    line = error_line(done)
    assert "pairs: auto: live run not started, nothing sent" in line, line
    assert "5 pairs in a row failed the same way" in line, line
    assert asked(url, before) <= MOST_REQUESTS


@pytest.mark.parametrize("kind", ["no answer", "refused"])
def test_when_every_pair_failed_the_screen_says_why_and_exits_2(
    kind: str, failing: Any, tmp_path: Path
) -> None:
    url, _ = failing("two", kind)
    live_config(tmp_path, url)
    done, _ = orchestrator(tmp_path, "screen", "config.yaml", "--json")
    assert done.returncode == 2, done.stderr
    line = error_line(done)
    assert line.startswith("error: the venue's market: none of the 2 pairs could be read;"), line
    assert "the first: SYN0USDT: the funding history: " in line and SAYS[kind] in line, line
    assert done.stdout == ""


def test_a_venue_that_answers_again_is_read_whole(markets: dict[str, str], tmp_path: Path) -> None:
    # The faults of the tests above were cleared: every pair is read and ranked.
    live_config(tmp_path, markets["many"])
    done, _ = orchestrator(tmp_path, "screen", "config.yaml", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pairs_found"] == PAIRS
    assert "warning" not in done.stderr


def test_a_pair_the_venue_refuses_is_counted_in_the_header_and_the_note(
    markets: dict[str, str], tmp_path: Path
) -> None:
    url = markets["many"]
    rule = {"kind": "reject", "endpoint": "market/funding/history", "after": 10, "times": 1,
            "ret_code": 10001, "ret_msg": "params error: no history"}  # fmt: skip
    admin(url, "POST", "/admin/faults", {"rules": [rule]})
    try:
        # A history longer than the data: no pair is considered, each row says why.
        live_config(tmp_path, url, "universe:\n  min_history_days: 365\n")
        done, _ = orchestrator(tmp_path, "screen", "config.yaml")
    finally:
        admin(url, "DELETE", "/admin/faults")
    assert done.returncode == 0, done.stderr
    assert f": {PAIRS} pairs (1 not read: see the warnings), 0 considered; " in done.stdout
    assert f"note: none of the {PAIRS} pairs is considered at " in done.stderr
    assert "(1 not read: see the warnings); each row says why" in done.stderr
