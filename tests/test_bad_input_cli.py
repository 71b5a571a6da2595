"""Input built to hurt, through the command a user types: `orchestrator check` and
`orchestrator run` answer a config or a data file that is a bomb, nested without
end, holds numbers without end or values that make no sense with one line,
``error: <file>: ...``, and exit code 2, quickly, before anything runs. Never a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.config import DATA_ENV

KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source"
LOTS = {"basePrecision": "0.000001", "minOrderQty": "0.000011", "minOrderAmt": "5"}
PERP_LOTS = {"qtyStep": "0.001", "minOrderQty": "0.001", "minNotionalValue": "5"}
INSTRUMENTS = {
    "spot": {
        "BTCUSDT": {
            "baseCoin": "BTC",
            "quoteCoin": "USDT",
            "lotSizeFilter": LOTS,
            "priceFilter": {"tickSize": "0.1"},
        }
    },
    "linear": {
        "BTCUSDT": {
            "baseCoin": "BTC",
            "quoteCoin": "USDT",
            "settleCoin": "USDT",
            "contractType": "LinearPerpetual",
            "lotSizeFilter": PERP_LOTS,
            "priceFilter": {"tickSize": "0.10"},
        }
    },
}
CONFIG = "pairs:\n  - spot: BTC/USDT\n    perp: BTC/USDT:USDT\n"


def kline(stamp: str, price: str = "100", volume: str = "1", data_type: str = "spot") -> str:
    return f"{stamp},{price},{price},{price},{price},{volume},bybit,BTCUSDT,{data_type},100"


def hours(count: int) -> list[str]:
    return [f"2024-01-01T{hour:02d}:00:00Z" for hour in range(count)]


class Setup:
    """A config and a data folder of one pair, good until a test breaks one file."""

    def __init__(self, root: Path) -> None:
        self.config = root / "config.yaml"
        self.data = root / "data"
        self.data.mkdir()
        self.config.write_text(CONFIG)
        self.instruments = self.data / "bybit_instruments_info_a.json"
        self.instruments.write_text(json.dumps(INSTRUMENTS))
        self.spot = self.write("spot_1h", [KLINE_HEADER, *map(kline, hours(17))])
        perp = [kline(stamp, data_type="futures") for stamp in hours(17)]
        self.perp = self.write("perp_1h", [KLINE_HEADER, *perp])
        self.funding = self.write(
            "funding_rates",
            [FUNDING_HEADER, *(f"{stamp},0.0001,BTCUSDT,bybit" for stamp in hours(17)[::8])],
        )

    def write(self, kind: str, lines: list[str]) -> Path:
        path = self.data / f"bybit_BTCUSDT_{kind}_2024.csv"
        path.write_text("".join(line + "\n" for line in lines))
        return path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    made = Setup(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(made.data))
    return made


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


def test_the_setup_is_good(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(setup.config)]) == 0
    assert capsys.readouterr().err == ""


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


# (id, config text, what the message says after "<config path>: ")
BAD_CONFIGS = [
    ("billion laughs", alias_bomb(), "line 5, column 10: the aliases (*name) expand the file"),
    ("10000 nested lists", f"pairs: {nested(10_000)}\n", "line 1, column 39: lists or mappings"),
    (
        "5000-digit number",
        CONFIG + "strategy:\n  funding_window: " + "1" * 5000 + "\n",
        "line 5, column 19: a number 5,000 characters long",
    ),
    (
        "funding window 2**70",
        CONFIG + f"strategy:\n  funding_window: {2**70}\n",
        "strategy.funding_window: must be at most 10,000 settlements",
    ),
    (
        "end beyond datetime",
        CONFIG + 'data:\n  end: "9999-12-31T23:59:59-12:00"\n',
        "data.end: '9999-12-31T23:59:59-12:00' is outside the years 1970 to 2099",
    ),
    (
        "timeout of a nanosecond",
        CONFIG + "trading:\n  order_timeout_seconds: 1.0e-9\n",
        "trading.order_timeout_seconds: must be at least 1 second, got 1e-09",
    ),
    (
        "leverage of a billion",
        CONFIG + 'paper:\n  leverage: "1e9"\n',
        "paper.leverage: must be between 1 and 100",
    ),
    (
        "balance 1E+999999",
        CONFIG + 'balances:\n  USDT: "1E+999999"\n',
        "balances.USDT: must be at most",
    ),
]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    ("text", "says"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_a_bad_config_is_one_error_line_and_exit_2(
    setup: Setup, capsys: pytest.CaptureFixture[str], command: str, text: str, says: str
) -> None:
    setup.config.write_text(text)
    started = time.process_time()
    assert main([command, str(setup.config)]) == 2
    assert time.process_time() - started < 1
    message = one_error_line(capsys.readouterr().err)
    assert message.startswith(f"{setup.config}: {says}"), message
    assert not (setup.config.parent / "runs").exists()  # nothing ran


def break_csv(attribute: str, line: str) -> Callable[[Setup], Path]:
    """Append a bad row to one of the series."""

    def apply(setup: Setup) -> Path:
        path: Path = getattr(setup, attribute)
        with path.open("a") as handle:
            handle.write(line + "\n")
        return path

    return apply


def second_instrument_file(text: str) -> Callable[[Setup], Path]:
    def apply(setup: Setup) -> Path:
        path = setup.data / "bybit_instruments_info_b.json"
        path.write_text(text)
        return path

    return apply


def conflicting(setup: Setup) -> Path:
    other = json.loads(json.dumps(INSTRUMENTS))
    other["linear"]["BTCUSDT"]["priceFilter"]["tickSize"] = "0.5"
    path = setup.data / "bybit_instruments_info_b.json"
    path.write_text(json.dumps(other))
    return path


# (id, how to break the data, what the message says after "<data file>")
BAD_DATA: list[tuple[str, Callable[[Setup], Path], str]] = [
    (
        "instruments nested 10000 deep",
        second_instrument_file(f'{{"spot": {{}}, "x": {nested(10_000)}}}'),
        ": nested more than 32 deep",
    ),
    (
        "instruments with a 5000-digit integer",
        second_instrument_file('{"spot": {}, "x": ' + "7" * 5000 + "}"),
        ": the number 7777777777777777777777777777777777777777... (5,000 characters) is out",
    ),
    (
        "instruments with NaN",
        second_instrument_file('{"spot": {}, "x": NaN}'),
        ": NaN is not a number JSON allows",
    ),
    (
        "instruments with a huge exponent",
        second_instrument_file('{"spot": {}, "x": 1e99999999999999999999999}'),
        ": the number 1e99999999999999999999999 is out of range",
    ),
    (
        "price 1E+999999",
        break_csv("spot", kline("2024-01-01T17:00:00Z", "1E+999999")),
        ":19: open 1E+999999 is outside 1E-12 to 1E+12: not a price",
    ),
    (
        "price Infinity",
        break_csv("perp", kline("2024-01-01T17:00:00Z", "Infinity", data_type="futures")),
        ":19: open is 'Infinity', not a finite number",
    ),
    (
        "volume -0",
        break_csv("spot", kline("2024-01-01T17:00:00Z", volume="-0")),
        ":19: volume -0 is negative (a negative zero)",
    ),
    (
        "funding rate 5",
        break_csv("funding", "2024-01-02T00:00:00Z,5,BTCUSDT,bybit"),
        ":5: funding_rate 5 is beyond +-1 (100 %) per settlement",
    ),
    (
        "funding rate -1e6",
        break_csv("funding", "2024-01-02T00:00:00Z,-1e6,BTCUSDT,bybit"),
        ":5: funding_rate -1e6 is beyond +-1 (100 %) per settlement",
    ),
    (
        "funding rate -0",
        break_csv("funding", "2024-01-02T00:00:00Z,-0,BTCUSDT,bybit"),
        ":5: funding_rate -0 is a negative zero",
    ),
    (
        "funding NaN",
        break_csv("funding", "2024-01-02T00:00:00Z,NaN,BTCUSDT,bybit"),
        ":5: funding_rate is 'NaN', not a finite number",
    ),
    (
        "funding in 1969",
        break_csv("funding", "1969-12-31T16:00:00Z,0.0001,BTCUSDT,bybit"),
        ":5: timestamp '1969-12-31T16:00:00Z' is outside 2009 to 2099",
    ),
    (
        "a 5000-digit timestamp",
        break_csv("spot", kline("9" * 5000)),
        ":19: timestamp 9999999999999999999999999999999999999999... (5,000 characters)",
    ),
]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    ("damage", "says"),
    [case[1:] for case in BAD_DATA],
    ids=[case[0] for case in BAD_DATA],
)
def test_bad_data_is_one_error_line_naming_the_file_and_exit_2(
    setup: Setup,
    capsys: pytest.CaptureFixture[str],
    command: str,
    damage: Callable[[Setup], Path],
    says: str,
) -> None:
    path = damage(setup)
    assert main([command, str(setup.config)]) == 2
    message = one_error_line(capsys.readouterr().err)
    assert message.startswith(f"{path}{says}"), message
    assert not (setup.config.parent / "runs").exists()


def test_conflicting_instrument_files_name_both(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    second = conflicting(setup)
    assert main(["check", str(setup.config)]) == 2
    message = one_error_line(capsys.readouterr().err)
    assert message == (
        f"BTC/USDT:USDT is listed differently in {setup.instruments} (linear.BTCUSDT) "
        f"and {second} (linear.BTCUSDT)"
    )


def test_implausible_values_pass_check_with_warnings(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.config.write_text(CONFIG + 'paper:\n  leverage: "50"\n')
    setup.funding.write_text(
        FUNDING_HEADER + "\n2024-01-01T00:00:00Z,0.2,BTCUSDT,bybit\n"
        "2024-01-01T08:30:00Z,0.0001,BTCUSDT,bybit\n"
    )
    assert main(["check", str(setup.config)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {setup.config}: paper.leverage: 50x: paper mode does not simulate" in err
    assert f"warning: {setup.funding.name}: 1 funding rate beyond +-0.05 (5%)" in err
    assert f"warning: {setup.funding.name}: 1 funding time not on the hour (line 3)" in err


def test_the_billion_laughs_does_not_hang_the_command(setup: Setup) -> None:
    """As a user runs it: a separate process, stopped if it hangs (it did, until killed)."""
    setup.config.write_text(alias_bomb())
    env = dict(os.environ, **{DATA_ENV: str(setup.data)})
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "check", str(setup.config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,  # raises (the test fails) and kills it if it hangs
    )
    assert proc.returncode == 2
    message = one_error_line(proc.stderr)
    assert message.startswith(f"{setup.config}: line 5, column 10: the aliases (*name) expand")
