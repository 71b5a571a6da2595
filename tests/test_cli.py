from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]


def test_demo_opens_and_closes_one_position_offline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", str(ROOT / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in ("pending -> legs_sent", "filled -> validated", "closing -> closed"):
        assert step in out
    assert "demo1-so1" in out
    assert "demo1-pc1" in out
    assert "state closed" in out
    assert "funding at 0.01% paid the short 1.9523 USDT" in out


def test_demo_with_a_bad_config_exits_nonzero_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text('trading:\n  delta_drift_tolerance: "1.5"\n')
    assert main(["demo", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "trading.delta_drift_tolerance: must be between 0 and 1" in err
    assert main(["demo", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err


def test_the_committed_diagrams_match_the_machines() -> None:
    assert main(["diagrams", "--check", "--out", str(ROOT / "diagrams")]) == 0


def test_diagrams_check_fails_when_out_of_date(tmp_path: Path) -> None:
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1  # missing
    assert main(["diagrams", "--out", str(tmp_path)]) == 0
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 0
    mmd = tmp_path / "position.mmd"
    mmd.write_text(mmd.read_text().replace("closing --> closed", "closing --> gone"))
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1


# -- what `check` (and `run`) say about the data and the config

HOURS = 240  # ten days from 2024-01-01 00:00
KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source"
PRICES = {"BTCUSDT": 42000, "ETHUSDT": 2300}
INSTRUMENTS = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json")
Span = tuple[int, int]  # first hour, last hour + 1


def _stamp(hour: int) -> str:
    return (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_data(folder: Path, spans: dict[str, Span], rows: int = 0) -> None:
    """Both pairs, every series hourly (funding every 8 h) over HOURS unless
    ``spans["ETHUSDT perp"]`` (say) says otherwise; with ``rows``, BTC's spot
    file repeats a row and misses another."""
    folder.mkdir(exist_ok=True)
    shutil.copyfile(INSTRUMENTS, folder / INSTRUMENTS.name)
    for market, price in PRICES.items():
        for kind, data_type in (("spot", "spot"), ("perp", "futures")):
            first, end = spans.get(f"{market} {kind}", spans.get(market, (0, HOURS)))
            lines = [KLINE_HEADER]
            for hour in range(first, end):
                p = price + hour % 7
                lines.append(
                    f"{_stamp(hour)},{p},{p + 5},{p - 5},{p + 1},3,bybit,{market},"
                    f"{data_type},{p * 3}"
                )
            if rows and market == "BTCUSDT" and kind == "spot":
                lines.insert(5, lines[4])  # an exact repeat
                del lines[50]  # a missing hour
            (folder / f"bybit_{market}_{kind}_1h_test.csv").write_text("\n".join(lines) + "\n")
        first, end = spans.get(f"{market} funding", spans.get(market, (0, HOURS)))
        lines = [FUNDING_HEADER]
        lines += [f"{_stamp(h)},0.0001,{market},bybit" for h in range(first, end) if h % 8 == 0]
        (folder / f"bybit_{market}_funding_rates_test.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def small_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(tmp_path / "data"))
    path = tmp_path / "config.yaml"
    shutil.copyfile(ROOT / "config.yaml", path)
    return path


COVERAGE = {
    "perp ends early": (
        {"BTCUSDT perp": (0, HOURS - 72)},
        "BTCUSDT: perp candles end at 2024-01-07 23:00, 72 h (3 days) before its spot candles "
        "(2024-01-10 23:00): the pair's positions are closed at the end of its own data",
    ),
    "perp starts late": (
        {"ETHUSDT perp": (30, HOURS)},
        "ETHUSDT: perp candles start at 2024-01-02 06:00, 30 h after its spot candles "
        "(2024-01-01 00:00)",
    ),
    "spot ends early": (
        {"ETHUSDT spot": (0, HOURS - 100)},
        "ETHUSDT: spot candles end at 2024-01-06 19:00, 100 h (4 days) before its perp candles",
    ),
    "funding ends early": (
        {"BTCUSDT funding": (0, 120)},
        "BTCUSDT: funding rates end at 2024-01-05 16:00, 127 h (5 days) before its perp candles "
        "(2024-01-10 23:00): no funding is collected after",
    ),
    "a pair ends early": (
        {"ETHUSDT": (0, HOURS - 120)},
        "ETHUSDT: its data ends at 2024-01-05 23:00, 120 h (5 days) before BTCUSDT's "
        "(2024-01-10 23:00): each pair's positions are closed at the end of its own data",
    ),
    "a pair starts late": (
        {"BTCUSDT": (48, HOURS)},
        "BTCUSDT: its data starts at 2024-01-03 00:00, 48 h (2 days) after ETHUSDT's "
        "(2024-01-01 00:00): it trades only from then",
    ),
}


@pytest.mark.parametrize("case", list(COVERAGE))
def test_check_warns_where_series_or_pairs_do_not_cover_the_same_time(
    small_config: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    spans, expected = COVERAGE[case]
    write_data(small_config.parent / "data", spans)
    assert main(["check", str(small_config)]) == 0
    captured = capsys.readouterr()
    assert "OK" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert any(expected in line for line in warnings), captured.err
    # Only about the pair concerned (a series ending early also ends its pair early).
    pair = expected.split(":")[0]
    assert all(line.startswith(f"warning: {pair}: ") for line in warnings), warnings


def test_a_day_or_less_apart_is_not_worth_a_warning(
    small_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_data(
        small_config.parent / "data",
        {"BTCUSDT perp": (0, HOURS - 24), "ETHUSDT": (12, HOURS - 12)},
    )
    assert main(["check", str(small_config)]) == 0
    assert capsys.readouterr().err == ""


def test_check_prints_the_loaders_and_the_configs_warnings_as_run_does(
    small_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_data(small_config.parent / "data", {"ETHUSDT": (0, HOURS - 48)}, rows=1)
    text = small_config.read_text()
    assert 'leverage: "1"' in text
    small_config.write_text(text.replace('leverage: "1"', 'leverage: "20"'))
    assert main(["check", str(small_config)]) == 0
    check_err = capsys.readouterr().err
    for needle in (
        "bybit_BTCUSDT_spot_1h_test.csv: dropped 1 duplicate row",
        "bybit_BTCUSDT_spot_1h_test.csv:51: 1 missing hourly candle",
        "ETHUSDT: its data ends at 2024-01-08 23:00, 48 h (2 days) before BTCUSDT's",
        f"{small_config}: paper.leverage: 20x",
    ):
        assert any(
            line.startswith("warning: ") and needle in line for line in check_err.splitlines()
        ), (needle, check_err)
    # `run` says the same, and keeps them in summary.json.
    assert main(["run", str(small_config)]) == 0
    run_err = capsys.readouterr().err
    warnings = [line for line in check_err.splitlines() if line.startswith("warning: ")]
    assert warnings == [line for line in run_err.splitlines() if line.startswith("warning: ")]
    (folder,) = (small_config.parent / "runs").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["warnings"] == [line.removeprefix("warning: ") for line in warnings]
