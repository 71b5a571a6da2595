"""``pairs: auto`` in a dry run and a live run, through the real CLI against the shipped
venue serving generated pairs (its own process; real ccxt; the run's own process):

- the run chooses, at its start, the pairs the universe lets in whose expected net yield
  is above zero, in the order a plain recomputation from the folder's files gives; it
  journals them and opens the best first, within risk.max_open_positions;
- a resumed run trades the same pairs, its positions among them;
- a market where no pair clears its round trip is refused before anything is sent;
- a live run rotates a held position into a better pair when, and only when, the
  rule says, on the venue: the old pair's legs closed, the new pair's opened.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.journal.store import Journal
from orchestrator.market.synthetic import write_folder
from tests.test_crash_resume_live import VenueProcess, Watched, orchestrator
from tests.universe_support import CLOCK, CLOCK_MS, DAY_MS, expected

COST = (2 * (Decimal("0.001") + Decimal("0.00055")) + 4 * Decimal("0.0005")) * 8760 / 720
LIVE = (
    "live:\n  url: {url}\n  poll_seconds: 0.5\n  request_timeout_ms: 2000\n"
    "  recv_window_ms: 2000\n  clock_skew_ms: 100\n  on_stop: {on_stop}\n"
)


HOLD_HOURS = 87600


def _enters(rates: list[tuple[int, Decimal]], interval_hours: int) -> bool:
    """Whether the test's strategy enters on the last rate settled by the clock."""
    last = [r for t, r in rates if t <= CLOCK_MS][-1]
    return last > 0 and last * HOLD_HOURS / interval_hours > Decimal("0.0051")


def _run_dir(run: Watched, workdir: Path) -> Path:
    _until(run, None, lambda: (workdir / "runs").is_dir())
    assert (workdir / "runs").is_dir(), "".join(run.lines)
    return next((workdir / "runs").iterdir())


def _positions(run_dir: Path) -> list[tuple[str, str]]:
    """(pair's perp, state) of every position the journal holds."""
    try:
        with Journal.read(run_dir) as view:
            return [(p.perp_symbol, p.state or "") for p in view.positions()]
    except Exception:  # being created: look again
        return []


def _until(run: Watched, run_dir: Path | None, done: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while run.process.poll() is None and time.monotonic() < deadline:
        if callable(done) and done():
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("auto-market")
    write_folder(folder, 12, 60, seed=5)
    return folder


def _config(workdir: Path, url: str, mode: str, extra: str = "", on_stop: str = "leave") -> None:
    (workdir / "config.yaml").write_text(
        f"mode: {mode}\n"
        + ("market: live\n" if mode == "paper" else "")
        + "pairs: auto\n"
        + LIVE.format(url=url, on_stop=on_stop)
        + extra
    )


def test_a_dry_run_trades_the_best_pairs_of_the_venue_and_resumes_them(
    market: Path, tmp_path: Path
) -> None:
    venue = VenueProcess(tmp_path, [], "100000", data=market, start=CLOCK)
    try:
        # The strategy enters on any last settlement above zero (a window of one, a long
        # hold): which of the willing pairs open is the ranking's choice.
        extra = (
            "universe:\n  min_history_days: 3\nrisk:\n  max_open_positions: 3\n"
            "strategy:\n  funding_window: 1\n  entry_annualised: '0'\n  exit_annualised: '-10'\n"
            f"  min_hold_hours: {HOLD_HOURS}\n  max_basis: '0.05'\n"
        )
        _config(tmp_path, venue.url, "paper", extra)
        checked = orchestrator("check", "config.yaml", cwd=tmp_path)
        out, _ = checked.communicate(timeout=60)
        assert checked.returncode == 0 and "pairs: auto (chosen from the venue's market" in out
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = _run_dir(run, tmp_path)
        _until(run, run_dir, lambda: len(_positions(run_dir)) >= 3 and run.trading)
        time.sleep(1)  # a few more cycles: nothing more opens
        run.process.send_signal(signal.SIGINT)
        code, err = run.finish(timeout=60)
        assert code == 130, err
        assert "Traceback" not in err

        # The pairs chosen: those with a positive expected net yield, best first.
        files = expected(market)
        mine = []
        for pair, e in files.items():
            span = [r for t, r in e.rates if CLOCK_MS - 30 * DAY_MS < t <= CLOCK_MS]
            mine.append((sum(span, Decimal(0)) / len(span) * 8760 / e.interval_hours - COST, pair))
        mine.sort(key=lambda m: (-m[0], m[1]))
        best = [pair for net, pair in mine if net > 0]
        assert 3 < len(best) < 12  # (the folder has pairs on either side)
        said = next(line for line in err.splitlines() if "pairs: auto chose" in line)
        assert f"chose {len(best)} of 12 pairs" in said, said
        assert said.index(best[0]) < said.index(best[1]) < said.index(best[2]), said
        with Journal.read(run_dir) as view:
            chosen = json.loads(view.meta()["universe_pairs"])
            positions = view.positions()
        assert [p.replace("/USDT:USDT", "USDT") for p in chosen] == best
        # The three best the strategy would enter opened (risk.max_open_positions: 3).
        willing = [pair for pair in best if _enters(files[pair].rates, files[pair].interval_hours)]
        assert len(willing) > 3
        assert sorted(p.perp_symbol.replace("/USDT:USDT", "USDT") for p in positions) == sorted(
            willing[:3]
        )
        assert all(p.state == "validated" for p in positions)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["rotations"] == []
        # A dry run's hourly equity, written as it went: its last row is where it ended.
        rows = (run_dir / "equity.csv").read_text().splitlines()
        assert rows[0] == "time_ms,strategy,always_hedged"
        assert Decimal(rows[-1].split(",")[1]) == Decimal(summary["ending_equity"])

        # Resumed: the same pairs, the three positions carried on, nothing more opened.
        again = Watched(orchestrator("run", "--resume", str(run_dir), cwd=tmp_path))
        _until(again, run_dir, lambda: again.trading)
        time.sleep(1)
        again.process.send_signal(signal.SIGINT)
        code, err = again.finish(timeout=60)
        assert code == 130, err
        kept = next(line for line in err.splitlines() if "pairs: auto" in line and "kept" in line)
        assert f"kept the {len(best)} pairs chosen at the run's start" in kept, kept
        assert "journal and venue agree" in err
        assert len(_positions(run_dir)) == 3
    finally:
        venue.stop()


def test_a_market_where_no_pair_clears_its_round_trip_is_refused(
    market: Path, tmp_path: Path
) -> None:
    venue = VenueProcess(tmp_path, [], "100000", data=market, start=CLOCK)
    try:
        # Over one hour the round trip costs about 45 times a year: nothing earns it back.
        _config(tmp_path, venue.url, "live", "universe:\n  horizon_hours: 1\n")
        process = orchestrator("run", "config.yaml", cwd=tmp_path)
        out, err = process.communicate(timeout=120)
        creates = venue.admin("requests")["creates"]
    finally:
        venue.stop()
    assert process.returncode == 2, err
    assert "none the universe section lets in is expected to earn above its round trip" in err
    assert "nothing sent" in err and "Traceback" not in out + err
    assert creates == []


def _funding(folder: Path, market: str, rate_at: object) -> None:
    """Replace ``market``'s settled rates: ``rate_at(time)`` at each of its settlements."""
    path = next(folder.glob(f"bybit_{market}_funding_rates_*.csv"))
    lines = path.read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        stamp = line.split(",")[0]
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert callable(rate_at)
        rows.append(f"{stamp},{rate_at(when)},{market},bybit")
    path.write_text("\n".join(rows) + "\n")


def test_a_live_run_rotates_into_a_better_pair_on_the_venue(tmp_path: Path) -> None:
    """SYN0 (8 h) pays 30 %/y all along; SYN1 (4 h) about 11 %/y until two hours after
    the start, then 219 %/y; SYN2 pays nothing. One position at a time: SYN0 first; once
    SYN1's last day of rates beats SYN0's by both round trips and the margin, SYN0 is
    closed for SYN1 (held past the one-hour cool-down), and not before."""
    folder = tmp_path / "data"
    write_folder(folder, 3, 60, seed=5)
    start = datetime.fromtimestamp(CLOCK_MS / 1000, UTC)
    _funding(folder, "SYN0USDT", lambda t: "0.00027397")  # 0.3 / 1095
    _funding(
        folder,
        "SYN1USDT",
        lambda t: "0.00005000" if t < start + timedelta(hours=2) else "0.00100000",
    )
    _funding(folder, "SYN2USDT", lambda t: "0.00000000")
    venue = VenueProcess(tmp_path, [], "100000", data=folder, start=CLOCK, speed="3600")
    try:
        extra = (
            "universe:\n  min_history_days: 0\n  history_days: 1\n  rotate_cooldown_hours: 1\n"
            "risk:\n  max_open_positions: 1\n"
            "strategy:\n  funding_window: 3\n  entry_annualised: '0.05'\n  exit_annualised: '0'\n"
        )
        _config(tmp_path, venue.url, "live", extra, on_stop="close")
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = _run_dir(run, tmp_path)

        def rotated() -> bool:
            return ("SYN1/USDT:USDT", "validated") in _positions(run_dir)

        _until(run, run_dir, rotated, seconds=90)
        run.process.send_signal(signal.SIGINT)
        code, err = run.finish(timeout=60)
        creates = venue.admin("requests")["creates"]
    finally:
        venue.stop()
    assert code == 130, err
    assert "Traceback" not in err
    said = next(line for line in err.splitlines() if "pairs: auto chose" in line)
    assert "chose 2 of 3 pairs" in said and said.index("SYN0USDT") < said.index("SYN1USDT")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["rotations"]) == 1, summary["rotations"]
    rotation = summary["rotations"][0]
    assert "SYN0USDT closed for SYN1USDT" in rotation
    # When the rule says: SYN1's 04:00 settlement at 0.001 makes its last day's funding
    # 45.6 %/y, a gain of 15.6 %/y, short of both round trips (12.4 %/y) and the 5 %/y
    # margin; its 08:00 one makes it 80.3 %/y: rotated on the first cycle after it.
    assert rotation.startswith("2024-02-15 08:"), rotation
    assert "funding expected 80.30%/y against 30.00%/y" in rotation, rotation
    # On the venue: SYN0's legs bought and sold, then SYN1's opened; never both held.
    order = [(str(c["symbol"]), str(c["side"]), str(c["category"])) for c in creates]
    first_syn1 = next(i for i, c in enumerate(order) if c[0] == "SYN1USDT")
    assert {c for c in order[:first_syn1]} >= {
        ("SYN0USDT", "Buy", "spot"),
        ("SYN0USDT", "Sell", "linear"),
        ("SYN0USDT", "Sell", "spot"),
        ("SYN0USDT", "Buy", "linear"),
    }, order
    with Journal.read(run_dir) as view:
        meta = view.meta()
    assert "SYN0USDT closed for SYN1USDT" in meta["rotation strategy 1"]
