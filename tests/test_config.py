"""The config file: the default loads, and every mistake is named by file, YAML path and cause."""

from __future__ import annotations

import json
import re
import time
from _collections_abc import dict_items
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.config import (
    DATA_ENV,
    Config,
    ConfigError,
    config_schema,
    load,
    load_config,
    write_schema,
)
from orchestrator.config_file import _refuse_secrets

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-VALUE-never-shown"


def error_for(path: Path) -> str:
    """The message of the ConfigError, without the leading '<file>: '."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_config_loads() -> None:
    loaded = load(ROOT / "config.yaml")
    config = loaded.config
    assert config.mode == "paper"
    assert [p.name for p in config.pairs] == ["BTCUSDT", "ETHUSDT"]
    assert config.balances == {"USDT": Decimal(100_000)}
    assert config.trading.max_position_size_usd == Decimal(20_000)
    assert config.fees.perp_taker == Decimal("0.00055")
    assert loaded.path == (ROOT / "config.yaml").resolve()


def test_a_minimal_file_takes_every_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "mode: paper\n")) == Config()


def test_relative_dirs_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "run.yaml"
    path.write_text("data:\n  dir: ../recorded\noutput:\n  dir: out\n")
    loaded = load(path)
    assert loaded.data_dir() == (tmp_path / "recorded").resolve()
    assert loaded.output_dir() == (tmp_path / "sub" / "out").resolve()
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    assert loaded.data_dir() == tmp_path / "elsewhere"


def test_values_yaml_would_mangle_arrive_as_written(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            # 1e-4 is text in YAML 1.1 (exact as a Decimal); unquoted dates stay text;
            # whole numbers are read as exact ints, never through a float.
            "strategy:\n  max_basis: 1e-4\n"
            "data:\n  start: 2024-01-01\n  end: 2024-02-01T08:00:00Z\n"
            "balances:\n  USDT: 999999999999999\n"
            "paper:\n  leverage: 2\n",
        )
    )
    assert config.strategy.max_basis == Decimal("0.0001")
    assert (config.data.start, config.data.end) == ("2024-01-01", "2024-02-01T08:00:00Z")
    assert config.balances["USDT"] == Decimal("999999999999999")
    assert config.paper.leverage == Decimal(2)


def test_yaml_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = (
        "pairs:\n"
        "  - &btc {spot: BTC/USDT, perp: BTC/USDT:USDT}\n"
        "  - {<<: *btc, spot: ETH/USDT, perp: ETH/USDT:USDT}\n"
    )
    assert [p.spot for p in load_config(write(tmp_path, text)).pairs] == ["BTC/USDT", "ETH/USDT"]


PAIR = "pairs:\n  - spot: BTC/USDT\n    perp: BTC/USDT:USDT\n"

# (id, file text, YAML path, words the message must contain)
MALFORMED: list[tuple[str, str, str, list[str]]] = [
    # types
    (
        "string-for-int",
        "strategy:\n  funding_window: three\n",
        "strategy.funding_window",
        ["expected a whole number", '"three"'],
    ),
    (
        "quoted-int",
        'strategy:\n  min_hold_hours: "72"\n',
        "strategy.min_hold_hours",
        ["expected a whole number", "without quotes"],
    ),
    (
        "float-for-int",
        "strategy:\n  negative_streak: 2.5\n",
        "strategy.negative_streak",
        ["expected a whole number", "2.5"],
    ),
    (
        "list-for-mapping",
        "trading:\n  - 1\n  - 2\n",
        "trading",
        ["expected a mapping", "got a list"],
    ),
    (
        "mapping-for-list",
        "pairs:\n  spot: BTC/USDT\n",
        "pairs",
        ["expected a list", "got a mapping"],
    ),
    (
        "bool-for-string",
        "data:\n  dir: off\n",
        "data.dir",
        ["expected a string", "got false", "quote"],
    ),
    (
        "string-for-bool",
        "output:\n  chart: sometimes\n",
        "output.chart",
        ["expected true or false", '"sometimes"'],
    ),
    (
        "empty-section",
        "trading:\n",
        "trading",
        ["expected a mapping", "null", "remove the key"],
    ),
    (
        "exponent-as-text-for-float",
        "trading:\n  order_timeout_seconds: 1e-4\n",
        "trading.order_timeout_seconds",
        ["expected a number", "1.0e-4"],
    ),
    (
        "not-a-decimal",
        'fees:\n  spot_taker: "ten bps"\n',
        "fees.spot_taker",
        ["expected a decimal", '"ten bps"'],
    ),
    (
        "bool-for-decimal",
        "paper:\n  slippage: true\n",
        "paper.slippage",
        ["expected a decimal", "got true"],
    ),
    # decimals written as floats
    (
        "unquoted-float-decimal",
        "trading:\n  max_position_size_usd: 1000.0\n",
        "trading.max_position_size_usd",
        ['write decimals as quoted strings, e.g. "1000.0"'],
    ),
    (
        "float-decimal-shows-digits-as-written",
        "paper:\n  slippage: 0.00050000000000000000001\n",
        "paper.slippage",
        ['e.g. "0.00050000000000000000001"'],
    ),
    (
        "float-decimal-in-balances",
        "balances:\n  USDT: 100.5\n",
        "balances.USDT",
        ["write decimals as quoted strings"],
    ),
    # sizes, fractions, limits
    (
        "zero-size",
        'trading:\n  max_position_size_usd: "0"\n',
        "trading.max_position_size_usd",
        ["must be a positive number", "got 0"],
    ),
    (
        "negative-size",
        'trading:\n  max_position_size_usd: "-5"\n',
        "trading.max_position_size_usd",
        ["must be a positive number", "got -5"],
    ),
    (
        "tolerance-above-1",
        'trading:\n  delta_drift_tolerance: "1.5"\n',
        "trading.delta_drift_tolerance",
        ["must be between 0 and 1, got 1.5"],
    ),
    (
        "timeout-0",
        "trading:\n  order_timeout_seconds: 0\n",
        "trading.order_timeout_seconds",
        ["must be > 0"],
    ),
    (
        "timeout-in-milliseconds",
        "trading:\n  order_timeout_seconds: 10000\n",
        "trading.order_timeout_seconds",
        ["at most 300 seconds", "got 10000", "not milliseconds"],
    ),
    (
        "fee-above-10-percent",
        'fees:\n  perp_taker: "0.5"\n',
        "fees.perp_taker",
        ["between -0.1 and 0.1", "got 0.5"],
    ),
    (
        "slippage-too-large",
        'paper:\n  slippage: "0.2"\n',
        "paper.slippage",
        ["[0, 0.1)", "got 0.2"],
    ),
    (
        "zero-leverage",
        'paper:\n  leverage: "0"\n',
        "paper.leverage",
        ["must be a positive number"],
    ),
    (
        "exit-above-entry",
        'strategy:\n  entry_annualised: "0.05"\n  exit_annualised: "0.2"\n',
        "strategy.exit_annualised",
        ["0.2 is above entry_annualised 0.05"],
    ),
    (
        "funding-window-0",
        "strategy:\n  funding_window: 0\n",
        "strategy.funding_window",
        ["must be at least 1, got 0"],
    ),
    (
        "zero-max-basis",
        'strategy:\n  max_basis: "0"\n',
        "strategy.max_basis",
        ["must be a positive number"],
    ),
    # pairs
    ("empty-pairs", "pairs: []\n", "pairs", ["at least one pair"]),
    (
        "duplicate-pair",
        PAIR + "  - spot: ETH/USDT\n    perp: ETH/USDT:USDT\n" + PAIR.removeprefix("pairs:\n"),
        "pairs[2]",
        ["BTC/USDT is already pairs[0]"],
    ),
    (
        "spot-and-perp-of-different-markets",
        "pairs:\n  - spot: BTC/USDT\n    perp: ETH/USDT:USDT\n",
        "pairs[0].perp",
        ["not the perpetual of spot 'BTC/USDT'", "'BTC/USDT:USDT'"],
    ),
    (
        "inverse-perp",
        'pairs:\n  - spot: BTC/USD\n    perp: BTC/USD:BTC\nbalances:\n  USD: "1000"\n',
        "pairs[0].perp",
        ["settles in BTC", "linear"],
    ),
    (
        "malformed-spot-symbol",
        "pairs:\n  - spot: btc-usdt\n    perp: BTC/USDT:USDT\n",
        "pairs[0].spot",
        ["'btc-usdt' is not a spot symbol like 'BTC/USDT'"],
    ),
    (
        "malformed-perp-symbol",
        PAIR + "  - spot: ETH/USDT\n    perp: ETHUSDT\n",
        "pairs[1].perp",
        ["'ETHUSDT' is not a perp symbol like 'BTC/USDT:USDT'"],
    ),
    (
        "pair-without-perp",
        "pairs:\n  - spot: BTC/USDT\n",
        "pairs[0].perp",
        ["required, but missing"],
    ),
    # choices
    ("unknown-venue", "venue: kraken\n", "venue", ["expected 'bybit'", '"kraken"']),
    ("unknown-mode", "mode: backtest\n", "mode", ["expected 'paper' or 'live'", '"backtest"']),
    ("live-bad-url", "live:\n  url: ftp://x\n", "live.url", ["is not an http(s) URL"]),
    # unknown keys
    ("unknown-top-level-key", "tradng: {}\n", "tradng", ["unknown key; did you mean 'trading'?"]),
    (
        "unknown-nested-key",
        'trading:\n  max_position_size: "10"\n',
        "trading.max_position_size",
        ["unknown key; did you mean 'max_position_size_usd'?"],
    ),
    (
        "unknown-key-in-a-pair",
        PAIR + "    leverage: 2\n",
        "pairs[0].leverage",
        ["unknown key; expected one of: spot, perp"],
    ),
    (
        "unknown-key-with-dashes",
        "strategy:\n  funding-window: 3\n",
        "strategy.funding-window",
        ["did you mean 'funding_window'?"],
    ),
    (
        "unknown-key-nothing-close",
        "colour: blue\n",
        "colour",
        ["unknown key; expected one of: mode, market, venue, network, pairs"],
    ),
    # balances
    (
        "negative-balance",
        'balances:\n  USDT: "-1"\n',
        "balances.USDT",
        ["must be >= 0, got -1"],
    ),
    (
        "missing-quote-balance",
        'balances:\n  USDC: "1000"\n',
        "balances.USDT",
        ["positive starting balance", "BTC/USDT"],
    ),
    (
        "zero-quote-balance",
        'balances:\n  USDT: "0"\n',
        "balances.USDT",
        ["positive starting balance"],
    ),
    (
        "balance-not-a-number",
        "balances:\n  USDT: [1]\n",
        "balances.USDT",
        ["expected a decimal", "got a list"],
    ),
    (
        "balance-currency-lowercase",
        'balances:\n  usdt: "1000"\n',
        "balances.usdt",
        ["not a currency code like 'USDT'"],
    ),
    (
        "balance-key-not-text",
        'balances:\n  1: "1000"\n',
        "balances[1]",
        ["expected a text key", "got 1"],
    ),
    # data window, output, tracing
    (
        "data-end-before-start",
        "data:\n  start: 2024-02-01\n  end: 2024-01-01\n",
        "data.end",
        ["'2024-01-01' must be after start '2024-02-01'"],
    ),
    (
        "data-start-not-a-date",
        'data:\n  start: "2024-13-01"\n',
        "data.start",
        ["'2024-13-01' is not an ISO date or time"],
    ),
    (
        "stale-after-infinite",
        "data:\n  stale_after_seconds: .inf\n",
        "data.stale_after_seconds",
        ["must be a positive number, got inf"],
    ),
    (
        "stale-after-negative",
        "data:\n  stale_after_seconds: -1\n",
        "data.stale_after_seconds",
        ["must be a positive number"],
    ),
    ("empty-data-dir", 'data:\n  dir: ""\n', "data.dir", ["must not be empty"]),
    ("empty-output-dir", 'output:\n  dir: " "\n', "output.dir", ["must not be empty"]),
    (
        "endpoint-without-scheme",
        "tracing:\n  otlp_endpoint: localhost:4318\n",
        "tracing.otlp_endpoint",
        ["'localhost:4318' is not an http(s) URL"],
    ),
    (
        "endpoint-not-http",
        "tracing:\n  otlp_endpoint: grpc://collector:4317\n",
        "tracing.otlp_endpoint",
        ["is not an http(s) URL"],
    ),
    (
        "endpoint-bad-port",
        "tracing:\n  otlp_endpoint: http://collector:port/v1/traces\n",
        "tracing.otlp_endpoint",
        ["is not an http(s) URL"],
    ),
    # values that parse but make no sense: every number has a sane range
    (
        "funding-window-2**70",
        "strategy:\n  funding_window: 1180591620717411303424\n",
        "strategy.funding_window",
        ["must be at most 10,000 settlements", "got 1,180,591,620,717,411,303,424"],
    ),
    (
        "funding-window-of-40-digits",
        "strategy:\n  funding_window: " + "9" * 40 + "\n",
        "strategy.funding_window",
        ["must be at most 10,000", "got a number of 40 digits"],
    ),
    (
        "funding-window-negative",
        "strategy:\n  funding_window: -3\n",
        "strategy.funding_window",
        ["must be at least 1, got -3"],
    ),
    (
        "negative-streak-huge",
        "strategy:\n  negative_streak: 10001\n",
        "strategy.negative_streak",
        ["must be at most 10,000 settlements", "got 10,001"],
    ),
    (
        "min-hold-hours-huge",
        "strategy:\n  min_hold_hours: 1000000\n",
        "strategy.min_hold_hours",
        ["must be at most 100,000 hours", "got 1,000,000"],
    ),
    (
        "funding-window-infinite",
        "strategy:\n  funding_window: .inf\n",
        "strategy.funding_window",
        ["expected a whole number", "inf"],
    ),
    (
        "stale-after-a-century",
        "data:\n  stale_after_seconds: 3153600000\n",
        "data.stale_after_seconds",
        ["between 1 and 604800 seconds", "got 3.1536e+09"],
    ),
    (
        "stale-after-a-nanosecond",
        "data:\n  stale_after_seconds: 1.0e-9\n",
        "data.stale_after_seconds",
        ["between 1 and 604800 seconds", "got 1e-09"],
    ),
    (
        "stale-after-nan",
        "data:\n  stale_after_seconds: .nan\n",
        "data.stale_after_seconds",
        ["must be a positive number, got nan"],
    ),
    (
        "timeout-a-nanosecond",
        "trading:\n  order_timeout_seconds: 1.0e-9\n",
        "trading.order_timeout_seconds",
        ["must be at least 1 second, got 1e-09", "round trip", "rolled back"],
    ),
    (
        "timeout-half-a-second",
        "trading:\n  order_timeout_seconds: 0.5\n",
        "trading.order_timeout_seconds",
        ["must be at least 1 second, got 0.5"],
    ),
    (
        "timeout-nan",
        "trading:\n  order_timeout_seconds: .nan\n",
        "trading.order_timeout_seconds",
        ["must be > 0, got nan"],
    ),
    (
        "timeout-huge-whole-number",
        "trading:\n  order_timeout_seconds: 1" + "0" * 90 + "\n",
        "trading.order_timeout_seconds",
        ["must be at most 300 seconds", "got 1e+90"],
    ),
    (
        "data-end-beyond-datetime",
        'data:\n  end: "9999-12-31T23:59:59-12:00"\n',
        "data.end",
        ["'9999-12-31T23:59:59-12:00' is outside the years 1970 to 2099"],
    ),
    (
        "data-start-year-1",
        'data:\n  start: "0001-01-01T00:00:00+01:00"\n',
        "data.start",
        ["is outside the years 1970 to 2099"],
    ),
    (
        "data-start-before-1970",
        "data:\n  start: 1969-12-31\n",
        "data.start",
        ["'1969-12-31' is outside the years 1970 to 2099"],
    ),
    (
        "data-end-2100-by-its-offset",
        'data:\n  end: "2099-12-31T23:00:00-12:00"\n',
        "data.end",
        ["is outside the years 1970 to 2099"],
    ),
    (
        "data-end-equals-start",
        "data:\n  start: 2024-01-01\n  end: 2024-01-01T00:00:00Z\n",
        "data.end",
        ["must be after start"],
    ),
    (
        "balance-huge-exponent",
        'balances:\n  USDT: "1E+999999"\n',
        "balances.USDT",
        ["must be at most 1,000,000,000,000,000, got 1E+999999"],
    ),
    (
        "balance-infinite",
        'balances:\n  USDT: "Infinity"\n',
        "balances.USDT",
        ["must be >= 0, got Infinity"],
    ),
    (
        "balance-nan",
        'balances:\n  USDT: "NaN"\n',
        "balances.USDT",
        ["must be >= 0, got NaN"],
    ),
    (
        "balance-negative-in-another-currency",
        'balances:\n  USDT: "1000"\n  BTC: "-0.5"\n',
        "balances.BTC",
        ["must be >= 0, got -0.5"],
    ),
    (
        "balance-negative-zero-quote",
        'balances:\n  USDT: "-0"\n',
        "balances.USDT",
        ["positive starting balance"],
    ),
    (
        "size-huge-exponent",
        'trading:\n  max_position_size_usd: "1E+999999"\n',
        "trading.max_position_size_usd",
        ["must be at most 1,000,000,000,000,000, got 1E+999999"],
    ),
    (
        "size-nan",
        'trading:\n  max_position_size_usd: "NaN"\n',
        "trading.max_position_size_usd",
        ["must be a positive number, got NaN"],
    ),
    (
        "leverage-a-billion",
        'paper:\n  leverage: "1e9"\n',
        "paper.leverage",
        ["must be between 1 and 100, got 1E+9"],
    ),
    (
        "leverage-below-1",
        'paper:\n  leverage: "0.5"\n',
        "paper.leverage",
        ["must be between 1 and 100, got 0.5"],
    ),
    (
        "slippage-100-percent",
        'paper:\n  slippage: "1"\n',
        "paper.slippage",
        ["[0, 0.1)", "got 1"],
    ),
    (
        "slippage-negative",
        'paper:\n  slippage: "-0.001"\n',
        "paper.slippage",
        ["[0, 0.1)", "got -0.001"],
    ),
    (
        "fee-above-1",
        'fees:\n  spot_maker: "1.5"\n',
        "fees.spot_maker",
        ["between -0.1 and 0.1", "got 1.5"],
    ),
    (
        "negative-taker-fee",
        'fees:\n  perp_taker: "-0.0001"\n',
        "fees.perp_taker",
        ["must be >= 0, got -0.0001", "never to takers"],
    ),
    (
        "negative-spot-taker-fee",
        'fees:\n  spot_taker: "-0.05"\n',
        "fees.spot_taker",
        ["must be >= 0, got -0.05"],
    ),
    (
        "max-basis-above-1",
        'strategy:\n  max_basis: "1.5"\n',
        "strategy.max_basis",
        ["must be at most 1", "got 1.5"],
    ),
    (
        "entry-huge-exponent",
        'strategy:\n  entry_annualised: "1E+999999"\n',
        "strategy.entry_annualised",
        ["[-10, 10]", "got 1E+999999"],
    ),
    (
        "pair-listed-twice-through-an-alias",
        "pairs:\n  - &btc {spot: BTC/USDT, perp: BTC/USDT:USDT}\n  - *btc\n",
        "pairs[1]",
        ["BTC/USDT is already pairs[0]"],
    ),
]


@pytest.mark.parametrize(
    ("text", "yaml_path", "words"),
    [pytest.param(text, where, words, id=name) for name, text, where, words in MALFORMED],
)
def test_a_malformed_config_names_the_yaml_path(
    tmp_path: Path, text: str, yaml_path: str, words: list[str]
) -> None:
    message = error_for(write(tmp_path, text))
    assert message.startswith(f"{yaml_path}: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("text", "yaml_path"),
    [
        pytest.param(f"api_key: {SECRET}\n", "api_key", id="api-key-top-level"),
        pytest.param(f"API-SECRET: {SECRET}\n", "API-SECRET", id="api-secret-any-case-and-dash"),
        pytest.param(f"bybit:\n  apiKey: {SECRET}\n", "bybit.apiKey", id="api-key-nested"),
        pytest.param(
            f"trading:\n  passphrase: {SECRET}\n", "trading.passphrase", id="passphrase-nested"
        ),
        pytest.param(
            PAIR + f"    private_key: {SECRET}\n", "pairs[0].private_key", id="key-inside-a-list"
        ),
        pytest.param(f"tracing:\n  token: {SECRET}\n", "tracing.token", id="token"),
        pytest.param(f"password: {SECRET}\n", "password", id="password"),
        pytest.param(f"secret:\n  - {SECRET}\n", "secret", id="secret-holding-a-list"),
    ],
)
def test_a_secret_in_the_file_is_refused_without_echoing_it(
    tmp_path: Path, text: str, yaml_path: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert SECRET not in message
    # Not in a chained exception either (a traceback would print it).
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    expected = f"{yaml_path}: keys and secrets are read only from environment variables"
    assert message.split(": ", 1)[1].startswith(expected), message
    assert "BYBIT_API_KEY" in message and "BYBIT_API_SECRET" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param(
            "trading:\n  order_timeout_seconds: [1, 2\n",
            ["line 3, column 1", "not valid YAML", "flow sequence at line 2, column 26"],
            id="unclosed-bracket",
        ),
        pytest.param(
            "mode: paper\nvenue: bybit: x\n",
            ["line 2, column 13", "mapping values are not allowed"],
            id="colon-in-value",
        ),
        pytest.param(
            'trading:\n\tmax_position_size_usd: "1"\n',
            ["line 2, column 1", "tab character", "only spaces"],
            id="tab-indent",
        ),
        pytest.param(
            "trading: {}\nmode: paper\ntrading: {}\n",
            ["line 3, column 1", "'trading' appears twice (first at line 1)"],
            id="duplicate-key",
        ),
        pytest.param(
            "mode: paper\n---\nmode: paper\n",
            ["line 2, column 1", "expected a single document", "found another document"],
            id="two-documents",
        ),
        pytest.param(
            "mode: pa\x07per\n",
            ["line 1, column 9", "character 0x0007 is not allowed"],
            id="control-character",
        ),
        pytest.param(
            "pairs: &a\n  - *a\n",
            ["pairs[0]", "alias refers to a mapping or list that contains it"],
            id="recursive-alias",
        ),
    ],
)
def test_unreadable_yaml_says_where(tmp_path: Path, text: str, words: list[str]) -> None:
    message = error_for(write(tmp_path, text))
    for word in words:
        assert word in message, message
    assert SECRET not in message


def test_a_missing_file(tmp_path: Path) -> None:
    assert error_for(tmp_path / "missing.yaml") == "cannot read the config: no such file"


def test_a_directory(tmp_path: Path) -> None:
    assert error_for(tmp_path) == "cannot read the config: it is a directory, not a file"


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"]
)
def test_an_empty_file(tmp_path: Path, text: str) -> None:
    assert error_for(write(tmp_path, text)).startswith("the file holds no settings")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param("- mode: paper\n", "found a list", id="list"),
        pytest.param("paper\n", 'found the string "paper"', id="string"),
        pytest.param("42\n", "found 42", id="number"),
    ],
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    message = error_for(write(tmp_path, text))
    assert message.startswith("the top level must be a mapping of settings"), message
    assert found in message


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"mode: \xff\n")
    assert error_for(path) == "not UTF-8 text (invalid byte at offset 6)"


def test_the_shipped_schema_is_the_generated_one(tmp_path: Path) -> None:
    generated = tmp_path / "config.schema.json"
    write_schema(generated)
    shipped = (ROOT / "config.schema.json").read_text(encoding="utf-8")
    assert shipped == generated.read_text(encoding="utf-8"), (
        "config.schema.json is out of date: run `python -m orchestrator.config`"
    )


def test_the_schema_describes_the_file() -> None:
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    config = schema["$defs"]["Config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == {
        "mode",
        "market",
        "venue",
        "network",
        "live",
        "pairs",
        "balances",
        "trading",
        "fees",
        "paper",
        "strategy",
        "risk",
        "data",
        "output",
        "tracing",
        "alerts",
        "universe",
    }
    assert schema["$defs"]["TradingSettings"]["properties"]["delta_drift_tolerance"] == {
        "type": "string",
        "format": "decimal",
        "default": "0.02",
    }
    assert schema["$defs"]["Pair"]["properties"]["spot"]["pattern"] == "^[A-Z0-9]+/[A-Z0-9]+$"
    json.dumps(schema)  # serialisable as it stands


# --- files built to hurt: alias bombs, deep nesting, endless numbers -------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level a list of `width` aliases of the one before."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def mapping_bomb(levels: int = 9) -> str:
    lines = ["m0: &m0 {k: lol}"]
    for level in range(1, levels + 1):
        keys = ", ".join(f"k{i}: *m{level - 1}" for i in range(9))
        lines.append(f"m{level}: &m{level} {{{keys}}}")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 12) -> str:
    # Merge keys copy the merged mapping's entries: twice per level doubles them.
    lines = ["m0: &m0 {k0: lol}"]
    for level in range(1, levels + 1):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: x}}")
    return "\n".join(lines) + "\n"


BOMBS = [
    pytest.param(alias_bomb(), "line 5", id="billion-laughs-9-levels-of-9"),
    pytest.param(alias_bomb(40, 2), "line 12", id="40-levels-of-2"),
    pytest.param(mapping_bomb(), "line 5", id="mappings-of-aliases"),
    pytest.param(
        "pairs:\n  - &a0 [lol]\n"
        + "".join(f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),
        "line 6",
        id="inside-a-setting",
    ),
    pytest.param(
        'a: &a "' + "x" * 200_000 + '"\nb: [*a, *a, *a, *a, *a, *a]\n',
        "line 2",
        id="long-text-aliased",
    ),
]


@pytest.mark.parametrize(("text", "where"), BOMBS)
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, text: str, where: str) -> None:
    started = time.process_time()
    message = error_for(write(tmp_path, text))
    assert time.process_time() - started < 0.5
    assert message.startswith(f"{where}, column "), message
    assert "the aliases (*name) expand the file to more than" in message
    assert "billion laughs" in message


def test_a_merge_key_bomb_is_refused_at_once(tmp_path: Path) -> None:
    started = time.process_time()
    message = error_for(write(tmp_path, merge_bomb()))
    assert time.process_time() - started < 0.5
    assert "the aliases (*name) expand the file to more than 10,000 values" in message


def test_a_file_of_too_many_values_without_aliases(tmp_path: Path) -> None:
    text = "balances:\n" + "".join(f'  C{i}: "1"\n' for i in range(6000))
    message = error_for(write(tmp_path, text))
    assert "the file holds more than 10,000 values; a config holds a few dozen" in message


def test_a_config_using_aliases_sensibly_loads(tmp_path: Path) -> None:
    text = (
        "fees: &fees {spot_maker: '0.001', spot_taker: '0.001'}\n"
        "pairs:\n"
        + "".join(f"  - {{spot: C{i}/USDT, perp: C{i}/USDT:USDT}}\n" for i in range(50))
        + "balances: {USDT: '1000'}\n"
    )
    config = load_config(write(tmp_path, text))
    assert len(config.pairs) == 50 and config.fees.spot_taker == Decimal("0.001")


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + closing * depth


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("pairs: " + nested(10_000) + "\n", id="10000-nested-lists"),
        pytest.param("pairs: " + nested(33) + "\n", id="33-nested-lists"),
        pytest.param("trading: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", id="nested-mappings"),
        pytest.param(
            "".join(f"{'  ' * i}- \n" for i in range(200)) + "  " * 200 + "x\n",
            id="nested-block-lists",
        ),
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    message = error_for(write(tmp_path, text))
    assert re.match(r"line \d+, column \d+: lists or mappings nested more than 32 deep", message)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("strategy:\n  funding_window: " + "1" * 5000 + "\n", "line 2, column 19"),
        pytest.param("balances:\n  USDT: " + "9" * 4301 + "\n", "line 2, column 9"),
        pytest.param("strategy:\n  min_hold_hours: 0x" + "f" * 5000 + "\n", "line 2, column 19"),
        pytest.param("strategy:\n  negative_streak: -" + "1" * 200 + "\n", "line 2, column 20"),
    ],
    ids=["5000-digits", "4301-digits-balance", "hexadecimal", "negative-200-digits"],
)
def test_an_endless_number_is_refused_with_its_place(tmp_path: Path, text: str, where: str) -> None:
    message = error_for(write(tmp_path, text))
    assert message.startswith(f"{where}: a number "), message
    assert "characters long; no setting needs more than 100" in message


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    text = "mode: paper\n" + "# padding\n" * 200_000
    message = error_for(write(tmp_path, text))
    assert (
        message
        == f"the file is {len(text):,} bytes; a config is a few kilobytes (at most 1,048,576 bytes)"
    )


class CountingDict(dict[str, object]):
    """A mapping that counts how often its entries are walked."""

    walks = 0

    def items(self) -> dict_items[str, object]:
        CountingDict.walks += 1
        return super().items()


def test_the_secrets_check_looks_at_each_shared_mapping_once() -> None:
    # 12 levels, each holding the level below twice: 8191 paths, 13 mappings.
    level = CountingDict(mode="paper")
    for _ in range(12):
        level = CountingDict(left=level, right=level)
    CountingDict.walks = 0
    _refuse_secrets(level, "", set(), set())
    assert CountingDict.walks == 13


# --- warnings: allowed, but probably a mistake -----------------------------------


def test_the_default_config_has_no_warnings() -> None:
    assert load(ROOT / "config.yaml").warnings == []


@pytest.mark.parametrize(
    ("text", "yaml_path", "words"),
    [
        pytest.param('fees:\n  spot_taker: "0.05"\n', "fees.spot_taker", ["5.00% per fill"]),
        pytest.param(
            'fees:\n  perp_taker: "0.02"\n', "fees.perp_taker", ["the unit is a fraction"]
        ),
        pytest.param('paper:\n  slippage: "0.05"\n', "paper.slippage", ["5.00% per fill"]),
        pytest.param('paper:\n  leverage: "50"\n', "paper.leverage", ["50x", "liquidat"]),
        pytest.param(
            'trading:\n  delta_drift_tolerance: "0.5"\n',
            "trading.delta_drift_tolerance",
            ["differ by 50%", "unhedged"],
        ),
        pytest.param('strategy:\n  max_basis: "0.2"\n', "strategy.max_basis", ["never fires"]),
        pytest.param(
            'strategy:\n  entry_annualised: "-0.05"\n  exit_annualised: "-0.1"\n',
            "strategy.entry_annualised",
            ["pays funding instead of receiving it"],
        ),
        pytest.param(
            "strategy:\n  min_hold_hours: 0\n", "strategy.min_hold_hours", ["no position opens"]
        ),
    ],
    ids=["spot-taker", "perp-taker", "slippage", "leverage", "drift", "basis", "entry", "hold-0"],
)
def test_an_implausible_setting_loads_with_a_warning(
    tmp_path: Path, text: str, yaml_path: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    loaded = load(path)
    assert len(loaded.warnings) == 1, loaded.warnings
    (warning,) = loaded.warnings
    assert warning.startswith(f"{path}: {yaml_path}: "), warning
    for word in words:
        assert word in warning, warning


def test_min_hold_hours_0_is_fine_when_trading_costs_nothing(tmp_path: Path) -> None:
    text = (
        "strategy:\n  min_hold_hours: 0\n"
        'fees: {spot_taker: "0", perp_taker: "0"}\npaper:\n  slippage: "0"\n'
    )
    assert load(write(tmp_path, text)).warnings == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("live:\n  recv_window_ms: 50\n", "live.recv_window_ms: must be between 100 and 60000"),
        ("live:\n  request_timeout_ms: 0\n", "live.request_timeout_ms: must be between"),
        ("live:\n  clock_skew_ms: -1\n", "live.clock_skew_ms: must be between 0 and 10000"),
        ("live:\n  poll_seconds: 0.01\n", "live.poll_seconds: must be between 0.5 and 300"),
        ('live:\n  leverage: "0"\n', "live.leverage: must be between 1 and 100"),
        ("network: prod\n", "network"),
        (
            "mode: live\ntrading:\n  order_timeout_seconds: 2\n",
            "order_timeout_seconds: 2 s leaves no room for a create and a read of its fill",
        ),
    ],
)
def test_live_settings_are_bounded_and_consistent(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)
