"""``orchestrator data download --top N`` and ``--universe`` as a user runs them: the
real CLI in a subprocess against the shipped venue (its own process) replaying 30
synthetic pairs. The pairs picked are the ones a plain recomputation from the folder's
files picks, their data lands in the data folder, and a second run fetches nothing
again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.synthetic import write_folder
from tests.universe_support import CLOCK_MS, DAY_MS, Expected, expected, venue_process

ROOT = Path(__file__).resolve().parent.parent
N_PAIRS = 30
WINDOW = ("--since", "2024-02-12", "--until", "2024-02-15")
SERIES = ("funding_rates", "spot_1h", "perp_1h")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market")
    write_folder(path, N_PAIRS, 60)
    return path


@pytest.fixture(scope="module")
def truth(folder: Path) -> dict[str, Expected]:
    return expected(folder)


@pytest.fixture(scope="module")
def url(folder: Path) -> Iterator[str]:
    with venue_process(folder) as found:
        yield found


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def hits(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/admin/state", timeout=10) as answer:
        state: dict[str, Any] = json.load(answer)
    found: dict[str, int] = state["hits"]  # requests received, by endpoint
    return found


def downloaded(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.iterdir())}


def markets_in(data: Path) -> list[str]:
    return sorted({p.name.split("_")[1] for p in data.glob("bybit_*USDT_*.csv.gz")})


def test_top_n_downloads_the_most_traded_pairs_and_resumes(
    url: str, truth: dict[str, Expected], tmp_path: Path
) -> None:
    first = orchestrator("data", "download", "--top", "5", *WINDOW, "--url", url,
                         "--data-dir", "data", cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    by_turnover = sorted(truth.values(), key=lambda e: (-e.turnover_24h, e.market))
    top = [e.market for e in by_turnover[:5]]
    data = tmp_path / "data"
    assert markets_in(data) == sorted(top)
    for market in top:
        for series in SERIES:
            assert (data / f"bybit_{market}_{series}_2024-02-12_2024-02-15.csv.gz").is_file()
    # Said in the order picked, with the order's name.
    assert "the top 5 of 30 pairs by 24 h perp turnover" in first.stderr
    said = [line.split()[0] for line in first.stderr.splitlines() if line.startswith("  SYN")]
    assert said == top
    # The instruments of those five only, each perp with its own interval.
    (instruments,) = data.glob("bybit_instruments_info_*.json")
    linear = json.loads(instruments.read_text())["linear"]
    assert sorted(linear) == sorted(top)
    for market in top:
        assert int(linear[market]["fundingInterval"]) == truth[market].interval_hours * 60

    before, files = hits(url), downloaded(data)
    again = orchestrator("data", "download", "--top", "5", *WINDOW, "--url", url,
                         "--data-dir", "data", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    after = hits(url)
    for endpoint in ("market/kline", "market/funding/history"):
        assert after.get(endpoint, 0) == before.get(endpoint, 0), endpoint  # nothing again
    assert downloaded(data) == files


def test_universe_downloads_the_best_ranked_pairs_it_lets_in(
    url: str, truth: dict[str, Expected], tmp_path: Path
) -> None:
    best_by_turnover = max(truth.values(), key=lambda e: e.turnover_24h).market
    text = (ROOT / "config.yaml").read_text()
    text += f"universe:\n  history_days: 3\n  exclude: [{best_by_turnover}]\n  max_pairs: 20\n"
    (tmp_path / "config.yaml").write_text(text)
    done = orchestrator("data", "download", "--universe", "--top", "3", *WINDOW, "--url", url,
                        "--data-dir", "data", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The plain recomputation: of the 20 most traded but the excluded, the best mean
    # settled rate over the last 3 days, annualised at each perp's own interval (the
    # round trip's cost is the same for every pair).
    allowed = [e for e in truth.values() if e.market != best_by_turnover]
    allowed = sorted(allowed, key=lambda e: -e.turnover_24h)[:20]

    def gross(e: Expected) -> Decimal:
        rates = [r for _, r in e.settled_since(CLOCK_MS - 3 * DAY_MS + 1)]
        return sum(rates, Decimal(0)) / len(rates) * 8760 / e.interval_hours

    best = sorted(allowed, key=lambda e: (-gross(e), e.market))[:3]
    assert markets_in(tmp_path / "data") == sorted(e.market for e in best)
    assert "28 of 30 pairs in the universe" not in done.stderr  # max_pairs: 20
    assert "20 of 30 pairs in the universe; the top 3 by expected net yield" in done.stderr
    said = [line.split()[0] for line in done.stderr.splitlines() if line.startswith("  SYN")]
    assert said == [e.market for e in best]


def test_top_and_pairs_together_are_refused(url: str, tmp_path: Path) -> None:
    refused = orchestrator("data", "download", "--top", "2", "--pairs", "SYN1/USDT",
                           "--url", url, "--data-dir", "data", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2
    assert "--pairs names the pairs: not with --top or --universe" in refused.stderr
    assert not (tmp_path / "data").exists()
