"""`orchestrator screen` on the recorded data: a generated folder of 50 pairs with
funding every 1, 2, 4 or 8 hours, ranked as a plain recomputation of the documented
formula from the raw files ranks them; nothing stamped after ``--at`` changes it."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.synthetic import write_folder
from tests.folder_support import DATA, ROOT, no_traceback

PAIRS, DAYS = 50, 40
AT = "2024-01-25T06:00:00Z"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("universe")
    write_folder(root / "data", PAIRS, DAYS, seed=7)
    (root / "config.yaml").write_text("data:\n  dir: data\n")
    yield root
    shutil.rmtree(root)


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, on the config's own data folder."""
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def recompute(data: Path, at: str, history_days: int = 30, horizon: int = 720) -> list[tuple]:
    """The guide's formula from the files, with nothing of the project's code:
    net = mean(rates of the last history_days up to at) * 8760 / interval
          - (2 * (0.001 + 0.00055) + 4 * 0.0005) * 8760 / horizon  (the default fees)."""
    at_ms = _ms(at)
    doc = json.loads(next(data.glob("*instruments*.json")).read_text())
    cost = (2 * (Decimal("0.001") + Decimal("0.00055")) + 4 * Decimal("0.0005")) * 8760 / horizon
    out = []
    for market, entry in doc["linear"].items():
        hours = int(entry["fundingInterval"]) // 60
        (path,) = data.glob(f"bybit_{market}_funding_rates_*.csv")
        with path.open() as f:
            rows = list(csv.DictReader(f))
        first = _ms(rows[0]["funding_timestamp"])
        rates = [
            Decimal(r["funding_rate"])
            for r in rows
            if at_ms - history_days * DAY_MS < _ms(r["funding_timestamp"]) <= at_ms
        ]
        if at_ms - first < 7 * DAY_MS:  # min_history_days' default
            continue
        mean = sum(rates, Decimal(0)) / len(rates)
        out.append((market, hours, len(rates), mean * 8760 / hours - cost))
    return sorted(out, key=lambda t: (-t[3], t[0]))


def screen(folder: Path, *args: str) -> Any:
    done = orchestrator("screen", "config.yaml", *args, cwd=folder)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_screen_ranks_as_the_formula_recomputed_from_the_files(folder: Path) -> None:
    got = json.loads(screen(folder, "--at", AT, "--json"))
    expected = recompute(folder / "data", AT)
    assert got["at"] == AT and got["pairs_found"] == PAIRS
    ranked = [p for p in got["pairs"] if p["rank"] is not None]
    assert [(p["pair"], p["interval_hours"], p["settlements"]) for p in ranked] == [
        (m, h, n) for m, h, n, _ in expected
    ]
    for p, (_, _, _, net) in zip(ranked, expected, strict=True):
        assert Decimal(p["net_annualised"]) == net
    assert [p["rank"] for p in ranked] == list(range(1, len(ranked) + 1))
    # Every interval is there, each annualised with its own.
    assert {p["interval_hours"] for p in ranked} == {1, 2, 4, 8}


def test_nothing_after_the_instant_changes_the_screen(folder: Path, tmp_path: Path) -> None:
    before = json.loads(screen(folder, "--at", AT, "--json"))["pairs"]
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    at_ms = _ms(AT)
    for path in (changed / "data").glob("*.csv"):
        lines = path.read_text().splitlines(keepends=True)
        kept = [lines[0]]
        for line in lines[1:]:
            stamp = line.split(",", 1)[0]
            if _ms(stamp) > at_ms:  # a settlement or candle after the instant: negated
                cells = line.split(",")
                if "funding" in path.name:
                    cells[1] = str(-Decimal(cells[1]) - Decimal("0.001"))
                else:
                    cells[4] = str(Decimal(cells[4]) * 3)
                    cells[2] = str(max(Decimal(cells[2]), Decimal(cells[4])))
                    cells[5] = str(Decimal(cells[5]) * 9)
                line = ",".join(cells)
            kept.append(line)
        path.write_text("".join(kept))
    assert json.loads(screen(changed, "--at", AT, "--json"))["pairs"] == before
    assert (
        json.loads(screen(changed, "--json"))["pairs"] != before
    )  # the change is there to be seen later


def test_top_csv_and_the_universe_filters(folder: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(screen(folder, "--at", AT, "--top", "5", "--csv"))))
    expected = recompute(folder / "data", AT)[:5]
    assert [r["pair"] for r in rows] == [m for m, *_ in expected]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"]
    # Excluded, or under the turnover floor: left out, each saying why.
    (folder / "filtered.yaml").write_text(
        "data:\n  dir: data\nuniverse:\n  exclude: [SYN0USDT]\n  min_turnover_usd: '2000000'\n"
    )
    try:
        got = json.loads(
            orchestrator("screen", "filtered.yaml", "--at", AT, "--json", cwd=folder).stdout
        )
    finally:
        (folder / "filtered.yaml").unlink()
    reasons = {p["pair"]: p["left_out"] for p in got["pairs"]}
    assert reasons["SYN0USDT"] == "excluded"
    low = [p for p in got["pairs"] if p["left_out"] and "turnover" in p["left_out"]]
    assert low and all(Decimal(p["turnover_24h"]) < 2_000_000 for p in low)
    kept = [p for p in got["pairs"] if p["left_out"] is None]
    assert kept and all(Decimal(p["turnover_24h"]) >= 2_000_000 for p in kept)
    # Too young at the start: nothing considered, and the table says why per pair.
    early = screen(folder, "--at", "2024-01-03")
    assert "under min_history_days 7" in early


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--at", "yesterday"], "--at: 'yesterday' is not an ISO date"),
        (["--at", ""], "--at: '' is not an ISO date"),  # not the newest settlement
        (["--top", "0"], "--top: 0 is not from 1 to 1,000,000"),
        (["--history-days", "99999"], "history_days: must be between 1 and 3,650"),
        (["--at", "2020-01-01"], "none of the 50 pairs has data in the 30 days up to it"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(folder: Path, args: list[str], words: str) -> None:
    done = orchestrator("screen", "config.yaml", *args, cwd=folder)
    no_traceback(done)
    assert done.returncode == 2
    assert words in done.stderr


def test_a_pair_whose_data_ends_before_the_instant_is_left_out_saying_so(
    tmp_path: Path,
) -> None:
    # The recorded data: ETH's files end four days before BTC's newest settlement, the
    # screen's default instant. Its last rates would be ranked as if they were current.
    (tmp_path / "config.yaml").write_text(f"data:\n  dir: {DATA}\n")
    done = orchestrator("screen", "config.yaml", "--json", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    rows = {p["pair"]: p for p in json.loads(done.stdout)["pairs"]}
    assert rows["BTCUSDT"]["left_out"] is None
    assert rows["ETHUSDT"]["left_out"] == (
        "its data ends at 2025-09-26 00:00 UTC, over a day before the instant"
    )
    # Within its data, it is ranked as any other.
    done = orchestrator("screen", "config.yaml", "--json", "--at", "2025-06-01", cwd=tmp_path)
    assert [p["left_out"] for p in json.loads(done.stdout)["pairs"]] == [None, None]


@pytest.mark.parametrize(
    ("at", "more"),
    [
        ("0001-01-01", []),  # the tester's: a year-1 instant less a 30-day span
        ("0001-01-01T00:00+14:00", []),  # before year 1 in UTC
        ("0001-12-31", ["--history-days", "3650"]),
        ("1969-12-31T23:59:59Z", []),  # a second before the first time of market data
        ("2100-01-01", []),
        ("9999-12-31", []),
        ("9999-12-31T23:59:59-12:00", []),  # after year 9999 in UTC
    ],
)
def test_an_instant_outside_the_years_of_market_data_is_refused_in_one_line(
    folder: Path, at: str, more: list[str]
) -> None:
    done = orchestrator("screen", "config.yaml", "--at", at, *more, cwd=folder)
    no_traceback(done)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: --at: {at!r} is outside the years 1970 to 2099: not a time of market data\n"
    )


@pytest.mark.parametrize(
    ("at", "more"),
    [
        ("1970-01-01", []),  # its history span reaches before 1970
        ("1970-01-01", ["--history-days", "3650"]),
        ("2099-12-31T23:59:59Z", ["--history-days", "3650"]),
    ],
)
def test_an_instant_at_the_edges_of_those_years_is_screened(
    folder: Path, at: str, more: list[str]
) -> None:
    # No pair has data then: said in one line, as for any instant outside the folder.
    done = orchestrator("screen", "config.yaml", "--at", at, *more, cwd=folder)
    no_traceback(done)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"none of the {PAIRS} pairs has data in the " in line


def _damaged(folder: Path, name: str, text: str | bytes | None) -> Path:
    """The recorded data seen from ``folder/data`` (links), BTC's ``name`` file replaced by
    ``text`` gzipped (bytes: as they are; None: its own rows, then a settlement in 2099)."""
    data = folder / "data"
    data.mkdir()
    for path in DATA.glob("bybit_*"):
        (data / path.name).symlink_to(path)
    (target,) = data.glob(f"bybit_BTCUSDT_{name}_*")
    original = target.resolve()
    target.unlink()
    if isinstance(text, bytes):
        target.write_bytes(text)
    elif text is None:
        future = "2099-01-01T00:00:00Z,0.5,BTCUSDT,bybit\n"
        target.write_bytes(gzip.compress(gzip.decompress(original.read_bytes()) + future.encode()))
    else:
        target.write_bytes(gzip.compress(text.encode()))
    (folder / "config.yaml").write_text("data:\n  dir: data\n")
    return target


ETH_NEWEST = "2025-09-25T16:00:00Z"  # ETH's newest settlement: its data ends a day later
PERP_HEAD = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover\n"


@pytest.mark.parametrize(
    ("name", "text", "btc"),
    [
        ("perp_1h", PERP_HEAD, "no rows after the header"),
        ("perp_1h", b"\x1f\x8b\x08\x00" + bytes(200), "cannot read the file"),  # cut short
        ("perp_1h", bytes(range(256)) * 8, "cannot read the file"),  # not gzip at all
        ("spot_1h", PERP_HEAD, "no rows after the header"),
        ("funding_rates", "funding_timestamp,funding_rate,symbol,source\n", "no rows after"),
        ("funding_rates", b"\x1f\x8b\x08\x00" + bytes(200), "cannot read the file"),
        ("funding_rates", None, None),  # a settlement stamped in 2099: BTC is read as it is
    ],
    ids=[
        "perp header only", "perp cut short", "perp not gzip", "spot header only",
        "funding header only", "funding cut short", "funding settles in 2099",
    ],
)  # fmt: skip
def test_one_broken_pair_does_not_decide_the_default_instant_for_the_others(
    tmp_path: Path, name: str, text: str | bytes | None, btc: str | None
) -> None:
    _damaged(tmp_path, name, text)
    done = orchestrator("screen", "config.yaml", "--json", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "--at" not in done.stderr  # none was given
    got = json.loads(done.stdout)
    rows = {p["pair"]: p for p in got["pairs"]}
    # ETH is usable: the instant is its newest settlement, BTC's broken file aside.
    assert got["at"] == ETH_NEWEST
    assert rows["ETHUSDT"]["left_out"] is None
    if btc is None:
        assert rows["BTCUSDT"]["left_out"] is None  # read at ETH's instant, as it was then
        assert "BTC/USDT: its newest settlement, 2099-01-01T00:00:00Z, cannot be read" in (
            done.stderr
        )
    else:
        assert "BTCUSDT" not in rows
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("warning: BTC/USDT")]
        assert line.startswith("warning: BTC/USDT: left out: ") and btc in line, line
    # With --at, the same: the pair is left out (or read), the others ranked.
    at = orchestrator("screen", "config.yaml", "--json", "--at", "2025-09-20", cwd=tmp_path)
    assert at.returncode == 0, at.stderr
    assert json.loads(at.stdout)["pairs_found"] == 2


def test_when_no_pair_can_be_read_the_screen_says_so_without_an_instant_it_was_not_given(
    tmp_path: Path,
) -> None:
    head = "funding_timestamp,funding_rate,symbol,source\n"
    _damaged(tmp_path, "funding_rates", head)
    (eth,) = (tmp_path / "data").glob("bybit_ETHUSDT_funding_rates_*")
    eth.unlink()
    eth.write_bytes(gzip.compress(head.encode()))  # ETH's funding broken too
    done = orchestrator("screen", "config.yaml", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: none of the 2 pairs in {tmp_path / 'data'} can be read; "), line
    assert "--at" not in line


def test_the_header_and_the_note_count_the_same_pairs(tmp_path: Path) -> None:
    # BTC cannot be read, ETH's data ended two days before the instant: none considered.
    _damaged(tmp_path, "perp_1h", PERP_HEAD)
    done = orchestrator("screen", "config.yaml", "--at", "2025-09-28", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert ": 2 pairs (1 not read: see the warnings), 0 considered; " in header, header
    assert "note: none of the 2 pairs is considered at 2025-09-28 00:00 UTC (1 not read: " in (
        done.stderr
    )
    got = json.loads(
        orchestrator("screen", "config.yaml", "--at", "2025-09-28", "--json", cwd=tmp_path).stdout
    )
    assert (got["pairs_found"], got["pairs_read"], got["considered"]) == (2, 1, 0)
    assert len(got["pairs"]) == 1


def test_a_perp_whose_settlements_keep_another_interval_than_its_file_says(
    folder: Path, tmp_path: Path
) -> None:
    """SYN3 settles every hour in its files, but the instruments file (written on the
    day Bybit changed it, say) says every 8 h. Its rates are annualised over the hour
    the settlements keep, in the screen and in a replay, and both say so."""
    root = tmp_path / "changed"
    shutil.copytree(folder, root)
    (path,) = (root / "data").glob("*instruments*.json")
    doc = json.loads(path.read_text())
    assert doc["linear"]["SYN3USDT"]["fundingInterval"] == 60  # hourly, as its rows
    doc["linear"]["SYN3USDT"]["fundingInterval"] = 480
    path.write_text(json.dumps(doc))
    done = orchestrator("screen", "config.yaml", "--at", AT, "--json", cwd=root)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    said = "SYN3/USDT:USDT: its recorded funding settles every 1 h, not every 8 h"
    assert said in done.stderr, done.stderr
    row = next(p for p in json.loads(done.stdout)["pairs"] if p["pair"] == "SYN3USDT")
    assert row["interval_hours"] == 1
    expected = next(t for t in recompute(folder / "data", AT) if t[0] == "SYN3USDT")
    assert Decimal(row["net_annualised"]) == expected[3]  # as over the hour it keeps
    (root / "config.yaml").write_text(
        "pairs:\n  - {spot: SYN3/USDT, perp: SYN3/USDT:USDT}\ndata:\n  dir: data\n"
    )
    done = orchestrator("check", "config.yaml", cwd=root)
    assert done.returncode == 0 and said in done.stderr + done.stdout, done.stderr
