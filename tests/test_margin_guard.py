"""The margin guard (issue 22): in a replay, the perp short's margin modelled from
``paper.leverage`` and ``paper.maintenance_margin_rate`` on the recorded prices, the least
headroom per pair in summary.json, and the guard closing a position before liquidation;
live, Bybit's own accountMMRate read every cycle, and the position nearest liquidation
closed when it reaches ``risk.margin_act``. Through the CLI, recomputed from the raw data."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import data_file
from tests.test_crash_resume_live import (
    ROOT,
    VenueProcess,
    Watched,
    env,
    journal_state,
    orchestrator,
    write_config,
)

D = Decimal
MMR = D("0.005")
WARN, ACT = D("0.5"), D("0.8")
HOUR_MS = 3_600_000


def replay(workdir: Path, leverage: str) -> tuple[Path, str]:
    text = (ROOT / "config.yaml").read_text().replace('leverage: "1"', f'leverage: "{leverage}"')
    (workdir / "config.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir, env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (workdir / "runs").glob("*")
    return run_dir, done.stdout


def perp_closes(pair: str) -> dict[int, Decimal]:
    """The perp's price at each instant of a replay: a candle's close at its close time."""
    folder = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
    path = next(folder.glob(f"bybit_{pair}_perp_1h_*.csv.gz"))
    with gzip.open(path, "rt") as f:
        rows = csv.DictReader(f)
        return {
            int(datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
            + HOUR_MS: D(r["close"])
            for r in rows
        }


def ratio(entry: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    left = entry / leverage + entry - price
    return price * MMR / left if left > 0 else D("Infinity")


def positions(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "positions.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["run"] == "strategy"]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_a_replay_reports_each_pairs_least_margin_headroom(tmp_path: Path) -> None:
    run_dir, out = replay(tmp_path, "1")
    assert "margin guard" not in out  # at 1x the short is never near liquidation
    summary = json.loads((run_dir / "summary.json").read_text())
    for pair in ("BTCUSDT", "ETHUSDT"):
        closes = perp_closes(pair)
        worst = D(0)
        for p in positions(run_dir):
            if not p["id"].startswith(pair) or not p["perp_entry_price"]:
                continue
            entry = D(p["perp_entry_price"])
            # Held from the instant it opened to the instant it closed (sampled hourly
            # after each instant's decisions: the closing instant no longer holds it).
            for t in range(ms(p["opened_at"]), ms(p["closed_at"]), HOUR_MS):
                if t in closes:
                    worst = max(worst, ratio(entry, closes[t], D(1)))
        expected = (D(1) - worst).quantize(D("0.0001"))
        assert D(summary["margin_headroom"][pair]) == expected, pair


def test_a_leveraged_replay_closes_positions_before_liquidation(tmp_path: Path) -> None:
    leverage = D(25)
    run_dir, out = replay(tmp_path, str(leverage))
    acted = re.findall(r"(\w+-\d{4}) closed by the margin guard: (.*)", out)
    assert acted, out[-2000:]
    entries = {p["id"]: D(p["perp_entry_price"]) for p in positions(run_dir)}
    for pid, words in acted:
        price = D(re.search(r" at ([\d.]+)", words).group(1))  # type: ignore[union-attr]
        # Independently: the ratio at that price reached the act threshold.
        assert ratio(entries[pid], price, leverage) >= ACT, (pid, words)
    states = {p["id"]: p["state"] for p in positions(run_dir)}
    assert all(states[pid] == "closed" for pid, _ in acted)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger_balances"] is True
    assert all(D(h) < 1 - ACT for h in summary["margin_headroom"].values())


@pytest.fixture
def thin_venue(tmp_path: Path) -> VenueProcess:
    """The loopback venue with just enough USDT for one 20,000 USD hedge at 20x."""
    venue = VenueProcess(tmp_path, [], "22000")
    yield venue  # type: ignore[misc]
    venue.stop()


def test_live_the_guard_closes_the_position_when_the_accounts_margin_rate_reaches_act(
    tmp_path: Path, thin_venue: VenueProcess
) -> None:
    venue = thin_venue
    write_config(tmp_path, venue.url, on_stop="close")
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text() + '  leverage: "20"\n')
    run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((tmp_path / "runs").glob("*"))
        if folders and journal_state(folders[-1])[0] == ["validated"] and run.trading:
            break
        time.sleep(0.05)
    (run_dir,) = (tmp_path / "runs").glob("*")
    # The owner takes BTC off collateral: the short's loss is held by USDT alone.
    venue.admin("collateral", {"coin": "BTC", "on": False})
    spot, perp = D("44151.2"), D("44156.3")
    rates = []
    up = D("1.080")
    while "closed" not in journal_state(run_dir)[0]:  # both legs up: the basis stays
        assert up < D("1.12"), (rates, "".join(run.lines))
        venue.admin("prices", {"spot:BTCUSDT": str(spot * up), "linear:BTCUSDT": str(perp * up)})
        rates.append(D(venue.admin("state")["wallet"]["list"][0]["accountMMRate"]))
        time.sleep(1.5)  # three of the run's cycles
        up += D("0.002")
    # It acted once the venue's own rate reached margin_act, before liquidation (1).
    assert ACT <= rates[-1] < 1 or (rates[-2] >= ACT and rates[-1] < 1), rates
    assert all(rate < ACT for rate in rates[:-2]), rates
    run.process.send_signal(15)
    code, err = run.finish(timeout=60)
    state = venue.admin("state")
    assert code == 143, err
    assert "Traceback" not in err
    assert "the account's maintenance margin is" in err and "warns at 50%" in err, err
    assert "BTCUSDT-0001, the position nearest to liquidation, closed by the margin guard" in err
    assert all(D(p["size"]) == 0 for p in state["positions"]), state["positions"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["positions"]) == {"closed"}, err  # the pair may have opened again
    assert summary["ledger_balances"] is True
    assert D(summary["margin_headroom"]["BTCUSDT"]) <= 1 - ACT
