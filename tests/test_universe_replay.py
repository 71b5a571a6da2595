"""`pairs: auto` in a replay, through the real CLI, on a generated folder of 50 pairs
with funding every 1, 2, 4 or 8 hours: opens go to the best-ranked pairs first (as a
plain recomputation of the formula from the raw files ranks them), every cap holds,
the ledger balances, nothing after an instant changes what was decided up to it, and
a pair that cannot be sized sends no rejected open."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.market.synthetic import write_folder
from tests.folder_support import DATA, ROOT, no_traceback

PAIRS, DAYS = 50, 40
DAY_MS = 86_400_000
COST = (2 * (Decimal("0.001") + Decimal("0.00055")) + 4 * Decimal("0.0005")) * 8760 / 720
CONFIG = """pairs: auto
data:
  dir: {data}
risk:
  max_open_positions: 6
  max_total_exposure_usd: "11000"
universe:
  min_history_days: 3
  exclude: [SYN1USDT]
"""


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("auto")
    write_folder(root, PAIRS, DAYS, seed=11)
    yield root
    shutil.rmtree(root)


def run(folder: Path, data: Path, config: str = CONFIG) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config.format(data=data))
    done = orchestrator("run", "config.yaml", cwd=folder)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (folder / "runs").iterdir()
    return run_dir, done.stdout


def positions(run_dir: Path, label: str = "strategy") -> list[dict[str, str]]:
    with (run_dir / "positions.csv").open() as f:
        return [row for row in csv.DictReader(f) if row["run"] == label]


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def rates_of(data: Path) -> dict[str, tuple[int, list[tuple[int, Decimal]]]]:
    doc = json.loads(next(data.glob("*instruments*.json")).read_text())
    found = {}
    for market, entry in doc["linear"].items():
        (path,) = data.glob(f"bybit_{market}_funding_rates_*.csv")
        with path.open() as f:
            rows = [
                (_ms(r["funding_timestamp"].replace("Z", "+00:00")), Decimal(r["funding_rate"]))
                for r in csv.DictReader(f)
            ]
        found[market] = (int(entry["fundingInterval"]) // 60, rows)
    return found


def net_at(rates: tuple[int, list[tuple[int, Decimal]]], t: int, days: int = 30) -> Decimal:
    """The guide's formula, from the raw rows: the mean rate of the ``days`` days up to
    t, a year of it at the pair's own interval, less the round trip over 720 h."""
    hours, rows = rates
    span = [r for when, r in rows if t - days * DAY_MS < when <= t]
    return sum(span, Decimal(0)) / len(span) * 8760 / hours - COST


def test_auto_opens_the_best_ranked_first_within_every_cap(data: Path, tmp_path: Path) -> None:
    run_dir, out = run(tmp_path / "a", data)
    assert "strategy ledger balances" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger_balances"] is True
    assert not [a for a in summary["alerts"] if "let in none" in a]
    rows = positions(run_dir)
    opened = [r for r in rows if r["opened_at"]]
    assert len(opened) >= 5
    assert not [r for r in rows if r["state"] == "rejected"]
    assert "SYN1/USDT" not in {r["spot_symbol"] for r in rows}  # excluded
    # chart.html of 50 pairs: funding panels for the 12 that earned the most (ledger.csv).
    earned: dict[str, Decimal] = defaultdict(Decimal)
    with (run_dir / "ledger.csv").open() as f:
        for e in csv.DictReader(f):
            if e["run"] == "strategy" and e["kind"] == "funding":
                earned[e["pair"]] += Decimal(e["amount"])
    top = sorted(earned, key=lambda p: (-earned[p], p))[:12]
    page = (run_dir / "chart.html").read_text()
    assert sorted(re.findall(r'id="chart-rate-(\w+)"', page)) == sorted(top)
    assert "funding panels for the 12 that earned the most" in page
    # At no instant more than 6 open, nor more than 11,000 USD held (both legs at entry).
    events = sorted(
        [(_ms(r["opened_at"]), 1, r) for r in opened]
        + [(_ms(r["closed_at"]), -1, r) for r in opened if r["closed_at"]],
        key=lambda e: (e[0], e[1]),
    )
    count, held = 0, Decimal(0)
    for _, step, r in events:
        size = Decimal(r["quantity"]) * (
            Decimal(r["spot_entry_price"]) + Decimal(r["perp_entry_price"])
        )
        count += step
        held += step * size
        assert count <= 6 and held <= 11000
    # The opens of one instant go best-ranked first, by the formula recomputed.
    rates = rates_of(data)
    by_instant: dict[str, list[str]] = defaultdict(list)
    for r in opened:  # positions.csv lists them in the order they were created
        by_instant[r["opened_at"]].append(r["spot_symbol"].replace("/", ""))
    several = [markets for markets in by_instant.values() if len(markets) > 1]
    assert several
    for when, markets in by_instant.items():
        nets = [net_at(rates[m], _ms(when)) for m in markets]
        assert nets == sorted(nets, reverse=True), (when, markets, nets)
        assert all(n > 0 for n in nets)


def test_nothing_after_an_instant_changes_what_was_decided_before(
    data: Path, tmp_path: Path
) -> None:
    cut = "2024-01-20T00:00:00+00:00"
    cut_ms = _ms(cut)
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    for path in changed.glob("*funding_rates*.csv"):
        lines = path.read_text().splitlines(keepends=True)
        out = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            if _ms(cells[0].replace("Z", "+00:00")) > cut_ms:
                cells[1] = str(-Decimal(cells[1]) * 3)  # a regime that never came
            out.append(",".join(cells))
        path.write_text("".join(out))
    first, _ = run(tmp_path / "a", data)
    second, _ = run(tmp_path / "b", changed)

    def before_cut(run_dir: Path) -> list[tuple[str, str, str, str]]:
        return [
            (r["id"], r["opened_at"], r["quantity"], r["spot_entry_price"])
            for r in positions(run_dir)
            if r["created_at"] and _ms(r["created_at"]) <= cut_ms
        ]

    assert before_cut(first) and before_cut(first) == before_cut(second)
    assert positions(first) != positions(second)


def test_a_pair_that_cannot_be_sized_sends_no_rejected_open(data: Path, tmp_path: Path) -> None:
    config = CONFIG.replace("pairs: auto\n", 'pairs: auto\nbalances:\n  USDT: "8"\n')
    run_dir, out = run(tmp_path / "a", data, config)
    assert not positions(run_dir)  # nothing opened, nothing rejected
    assert "no new position until one does" in out + (run_dir / "summary.json").read_text()


ROTATING = """pairs: auto
data:
  dir: {data}
risk:
  max_open_positions: 3
universe:
  min_history_days: 3
  history_days: 7
  rotate_margin: "{margin}"
  rotate_cooldown_hours: {cooldown}
"""
ROTATION = re.compile(
    r"(?P<when>[\d-]+ [\d:]+) UTC: rotation: (?P<old>SYN\d+USDT) closed for (?P<new>SYN\d+USDT): "
    r"funding expected (?P<new_y>[-\d.]+)%/y against (?P<old_y>[-\d.]+)%/y"
)


def test_a_held_pair_is_rotated_out_when_and_only_when_the_rule_says(
    data: Path, tmp_path: Path
) -> None:
    config = ROTATING.format(data="{data}", margin="0.02", cooldown=24)
    run_dir, out = run(tmp_path / "a", data, config)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger_balances"] is True
    rotations = summary["rotations"]
    assert rotations and f"rotations: {len(rotations)}" in out
    rates = rates_of(data)
    rows = positions(run_dir)
    for line in rotations:
        m = ROTATION.match(line)
        assert m, line
        t = _ms(m["when"] + "+00:00")
        new, old = (net_at(rates[m[k]], t, days=7) + COST for k in ("new", "old"))
        assert f"{new:.2%}" == m["new_y"] + "%" and f"{old:.2%}" == m["old_y"] + "%"
        assert new - old > 2 * COST + Decimal("0.02")  # the rule, recomputed
        # The old one was held at least the cool-down, closed then; the new one opened then.
        (closed,) = [r for r in rows if r["spot_symbol"] == m["old"][:-4] + "/USDT"
                     and r["closed_at"] and _ms(r["closed_at"]) == t]  # fmt: skip
        assert t - _ms(closed["opened_at"]) >= 24 * 3_600_000
        assert any(
            r["spot_symbol"] == m["new"][:-4] + "/USDT" and r["opened_at"]
            and _ms(r["opened_at"]) == t
            for r in rows
        )  # fmt: skip
    journal = sqlite3.connect(run_dir / "journal.sqlite3")
    try:
        said = [v for (v,) in journal.execute("select value from meta where key like 'rotation%'")]
    finally:
        journal.close()
    assert [line.split(" UTC: ", 1)[1] for line in rotations] == said
    assert (run_dir / "traces.jsonl").read_text().count('"fo.rotation.closed"') >= len(rotations)
    # A margin no gain reaches, or a cool-down longer than the data: no rotation at all.
    for margin, cooldown in (("10", 24), ("0.02", 24 * DAYS)):
        config = ROTATING.format(data="{data}", margin=margin, cooldown=cooldown)
        quiet, out = run(tmp_path / f"q{margin}-{cooldown}", data, config)
        assert json.loads((quiet / "summary.json").read_text())["rotations"] == []
        assert "rotations:" not in out


def test_a_sweep_searches_the_universe_settings_of_an_auto_base(data: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(ROTATING.format(data=data, margin="0.02", cooldown=24))
    (tmp_path / "sweep.yaml").write_text(
        "base: config.yaml\n"
        "parameters:\n"
        "  universe.history_days: [3, 7]\n"
        "  universe.horizon_hours: [24, 720]\n"
        "walk_forward:\n"
        "  windows:\n"
        "    - train: {start: '2024-01-01', end: '2024-01-25'}\n"
        "      test: {start: '2024-01-25', end: '2024-02-09'}\n"
        "objective:\n  metric: net_pnl\n"
        "output: sweeps\nworkers: 1\n"
    )
    done = orchestrator("sweep", "sweep.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "sweeps").iterdir()
    with (folder / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == 4
    # The settings change the trials: not all four trade alike.
    assert len({r["total.net_pnl"] for r in train}) > 1, [r["total.net_pnl"] for r in train]
    assert all(r["ledger_balances"] == "true" for r in rows), [r["ledger_balances"] for r in rows]


def test_a_sweep_of_universe_settings_over_listed_pairs_is_refused(
    data: Path, tmp_path: Path
) -> None:
    """The universe settings choose pairs only under pairs: auto: swept over a base that
    lists its pairs, every trial would be the same. Refused before anything runs."""
    (tmp_path / "config.yaml").write_text(
        f"pairs:\n  - {{spot: SYN0/USDT, perp: SYN0/USDT:USDT}}\ndata:\n  dir: {data}\n"
    )
    (tmp_path / "sweep.yaml").write_text(
        "base: config.yaml\nparameters:\n  universe.history_days: [3, 7]\n"
        "walk_forward:\n  windows:\n"
        "    - train: {start: '2024-01-01', end: '2024-01-25'}\n"
        "      test: {start: '2024-01-25', end: '2024-02-09'}\n"
        "objective:\n  metric: net_pnl\noutput: sweeps\nworkers: 1\n"
    )
    done = orchestrator("sweep", "sweep.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    assert "parameters.universe.history_days: config.yaml lists its pairs" in done.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    ("universe", "words"),
    [
        (
            "universe:\n  exclude: [{every}]\n",
            f"pairs: auto: universe.exclude names every pair in {{data}} ({PAIRS}): "
            "nothing is left to trade",
        ),
        ("universe:\n  include: [NOPEUSDT]\n", "universe.include: NOPEUSDT not in {data}"),
        ("data:\n  dir: empty\n", "pairs: auto: no pair in {folder}/empty"),
    ],
    ids=["all excluded", "unknown included", "empty folder"],
)
def test_an_auto_run_with_nothing_to_trade_is_refused_in_one_line(
    data: Path, tmp_path: Path, universe: str, words: str
) -> None:
    every = ", ".join(f"SYN{k}USDT" for k in range(PAIRS))
    dir_line = "" if "dir:" in universe else f"data:\n  dir: {data}\n"
    (tmp_path / "empty").mkdir()
    (tmp_path / "config.yaml").write_text("pairs: auto\n" + dir_line + universe.format(every=every))
    done = orchestrator("run", "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    assert words.format(data=data, folder=tmp_path) in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("universe", "needs"),
    [
        ("min_history_days: 100", "universe.min_history_days (100) of settlements known"),
        (
            'min_turnover_usd: "1e15"',
            "universe.min_history_days (7) of settlements known and "
            "universe.min_turnover_usd (1,000,000,000,000,000) of 24 h turnover",
        ),
    ],
    ids=["history longer than the data", "turnover no pair has"],
)
def test_a_universe_that_lets_no_pair_in_says_so(
    data: Path, tmp_path: Path, universe: str, needs: str
) -> None:
    config = f"pairs: auto\ndata:\n  dir: {{data}}\nuniverse:\n  {universe}\n"
    run_dir, out = run(tmp_path, data, config)
    assert "positions by state: {}" in out  # nothing opened, nothing tried
    summary = json.loads((run_dir / "summary.json").read_text())
    said = (
        f"pairs: auto: the universe let in none of the {PAIRS} pairs, whenever the run asked "
        f"nor at its end, so none was opened: a pair needs {needs}"
    )
    # (the baseline held every pair: what it says of them is its own)
    assert [a for a in summary["alerts"] if not a.startswith("always hedged: ")] == [said]


def test_spot_a_close_cannot_sell_is_valued_and_marked_not_lost(data: Path, tmp_path: Path) -> None:
    """SYN19's spot trades in steps of 0.01 (about 8 USDT): a 50 USDT position buys
    0.06, holds 0.05994 once the buy's fee is taken in the coin, and its close can sell
    only 0.05. What is left stays in the account: the ending equity counts it at the
    last price, each position's ledger marks it (so positions.csv still sums to the
    totals) and the run says so, instead of booking it as a price loss."""
    config = (
        "pairs:\n  - {{spot: SYN19/USDT, perp: SYN19/USDT:USDT}}\n"
        "data:\n  dir: {data}\n"
        'trading:\n  max_position_size_usd: "50"\n'
        'strategy:\n  entry_annualised: "0.0"\n  exit_annualised: "0.0"\n'
        "  min_hold_hours: 100000\n"
    )
    run_dir, out = run(tmp_path / "dust", data, config)
    summary = json.loads((run_dir / "summary.json").read_text())
    closed = [p for p in positions(run_dir) if p["state"] == "closed"]
    assert len(closed) >= 2  # it traded, and traded again
    left = sum(Decimal(p["spot_qty"]) for p in closed)
    assert left > 0 and all(Decimal(p["spot_qty"]) < Decimal("0.01") for p in closed)
    with (run_dir / "ledger.csv").open() as f:
        ledger = [row for row in csv.DictReader(f) if row["run"] == "strategy"]
    marks = [row for row in ledger if row["kind"] == "mark"]
    assert {row["position_id"] for row in marks} == {p["id"] for p in closed}
    (last,) = {Decimal(row["price"]) for row in marks}
    assert sum(Decimal(row["quantity"]) for row in marks) == left
    # The equity is the wallet plus the coins left, at the last price.
    equity = Decimal(summary["ending_equity"])
    assert equity == Decimal(summary["ending_balance"]) + left * last
    # Each position's figures hold its own coins: they still sum to the run's.
    assert sum(Decimal(p["net_pnl"]) for p in positions(run_dir)) == Decimal(
        summary["total"]["net_pnl"]
    )
    # Less than the round trips' costs is lost (it was booked as ~8 USDT a position).
    assert -Decimal(summary["total"]["net_pnl"]) < 2 * Decimal(summary["total"]["fees"]) + 5
    assert "ledger balances" in out
    said = "closes left coins they could not sell, below the coin's order step (a spot buy's "
    said += f"fee is charged in the coin): {left} SYN19, worth {left * last:,.2f} USDT"
    assert said in summary["alerts"][0]


def _delist(folder: Path, markets: list[str], before: str = "", after: str = "") -> None:
    """Each market's files keep only their rows before ``before`` (its data ended) or
    from ``after`` on (listed later)."""
    for market in markets:
        for path in folder.glob(f"bybit_{market}_*.csv"):
            lines = path.read_text().splitlines(keepends=True)
            kept = [
                line
                for line in lines[1:]
                if (not before or line[:10] < before) and (not after or line[:10] >= after)
            ]
            path.write_text(lines[0] + "".join(kept))


@pytest.fixture(scope="module")
def listings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Eight pairs over 20 days: SYN0..SYN3 delisted on day 10, SYN4 listed on day 14."""
    root = tmp_path_factory.mktemp("listings")
    write_folder(root, 8, 20, seed=4)
    _delist(root, [f"SYN{k}USDT" for k in range(4)], before="2024-01-11")
    _delist(root, ["SYN4USDT"], after="2024-01-15")
    yield root
    shutil.rmtree(root)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: pairs: auto")]


@pytest.mark.parametrize(
    ("window", "out"),
    [
        # After the delisted pairs' data ended: many left out, said in one line.
        ('start: "2024-01-13"\n  end: "2024-01-20"', [f"SYN{k}/USDT" for k in range(4)]),
        # Before the late pair's data starts.
        ('start: "2024-01-02"\n  end: "2024-01-09"', ["SYN4/USDT"]),
        # Both: the window between.
        ('start: "2024-01-12"\n  end: "2024-01-14"', [f"SYN{k}/USDT" for k in range(5)]),
    ],
    ids=["after a delisting", "before a listing", "between"],
)
def test_auto_leaves_out_a_pair_without_data_in_the_window_with_one_warning(
    listings: Path, tmp_path: Path, window: str, out: list[str]
) -> None:
    (tmp_path / "config.yaml").write_text(
        f"pairs: auto\ndata:\n  dir: {listings}\n  {window}\nuniverse:\n  min_history_days: 1\n"
    )
    done = orchestrator("run", "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    (said,) = _warnings(done.stderr)
    if len(out) == 1:
        assert said.startswith(f"warning: pairs: auto: {out[0]} left out: no "), said
    else:
        assert said.startswith(
            f"warning: pairs: auto: {len(out)} pairs left out with no data in the window "
            f"({', '.join(out)}); the first: no "
        ), said
    assert "fetch the data with" not in said  # nothing to fetch: it is not there
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert said.removeprefix("warning: ") in summary["warnings"]
    left = {f"SYN{k}USDT" for k in range(8)} - {p.replace("/", "") for p in out}
    assert set(summary["pairs"]) == left
    assert {row["spot_symbol"] for row in positions(run_dir, "always hedged")} == {
        f"{m.removesuffix('USDT')}/USDT" for m in left
    }


def test_auto_without_any_pair_in_the_window_is_refused(listings: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        f'pairs: auto\ndata:\n  dir: {listings}\n  start: "2024-03-01"\n'
    )
    done = orchestrator("run", "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    assert "error: no spot candles for SYN0/USDT in " in done.stderr
    assert not (tmp_path / "runs").exists()


def test_auto_on_the_recorded_data_after_eth_ended_trades_btc(tmp_path: Path) -> None:
    # The recorded ETH ends on 2025-09-25, BTC on 2025-09-29: a window after ETH's end.
    window = f'data:\n  dir: {DATA}\n  start: "2025-09-27"\n'
    (tmp_path / "config.yaml").write_text("pairs: auto\n" + window)
    done = orchestrator("run", "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    (said,) = _warnings(done.stderr)
    assert said.startswith("warning: pairs: auto: ETH/USDT left out: no spot candles for ETH/USDT")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert set(json.loads((run_dir / "summary.json").read_text())["pairs"]) == {"BTCUSDT"}
    # Listed, the same window is refused: the run was asked to trade ETH.
    listed = "pairs:\n" + "".join(
        f"  - spot: {c}/USDT\n    perp: {c}/USDT:USDT\n" for c in ("BTC", "ETH")
    )
    (tmp_path / "config.yaml").write_text(listed + window)
    refused = orchestrator("run", "config.yaml", cwd=tmp_path)
    no_traceback(refused)
    assert refused.returncode == 2
    assert "error: no spot candles for ETH/USDT in " in refused.stderr


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ('pairs: auto\nbalances: {USDT: "0"}\n', "the pairs pairs: auto chooses"),
        ('pairs: auto\nbalances: {BTC: "1"}\n', "the pairs pairs: auto chooses"),
        (
            'pairs: auto\nmarket: live\nbalances: {USDT: "0"}\n',
            "the pairs pairs: auto chooses",
        ),
        (
            'pairs:\n  - {spot: SYN2/USDT, perp: "SYN2/USDT:USDT"}\nbalances: {USDT: "0"}\n',
            "SYN2/USDT",
        ),
    ],
    ids=["zero", "none in USDT", "dry run", "listed"],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_zero_balance_names_the_pairs_it_cannot_buy_or_none(
    data: Path, tmp_path: Path, config: str, says: str, command: str
) -> None:
    (tmp_path / "config.yaml").write_text(f"data:\n  dir: {data}\n{config}")
    done = orchestrator(command, "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        f"balances.USDT: a positive starting balance is needed to buy {says}"
        + (" (each is bought with USDT)" if "auto" in says else "")
    ), line
    assert "BTC/USDT" not in line  # not a pair of the folder
