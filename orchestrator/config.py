"""The run's configuration: one msgspec schema, read from YAML, checked before anything runs.

Decimals are quoted strings in the YAML (an unquoted number would pass through a
float). Unknown keys are refused. Every error names the file and the YAML path:
``config.yaml: trading.delta_drift_tolerance: must be between 0 and 1, got 1.5``.
Keys and secrets are never read from the file (DESIGN rule 8).

Every number has a sane range (a value beyond it is an error, with the range);
a value inside it that is still implausible (a 5 % taker fee, 50x leverage) loads
with a warning in ``Loaded.warnings``. A file built to hurt is refused as fast as
it is read: over 1 MiB, nested over 32 deep, aliases expanding it beyond 10,000
values (a "billion laughs"), an integer of over 100 digits.

``python -m orchestrator.config [PATH]`` writes the JSON Schema (default
``config.schema.json``), which editors use to check the YAML as it is typed.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import types
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
import yaml

from orchestrator.exceptions import OrchestratorError
from orchestrator.models import require_positive
from orchestrator.settings import FeeSettings, TradingSettings, VenueTiming
from orchestrator.yaml_errors import (
    describe_value,
    is_struct,
    struct_fields,
    union_members,
    unknown_key,
)

DATA_ENV = "ORCHESTRATOR_DATA"
API_KEY_ENV = "BYBIT_API_KEY"
API_SECRET_ENV = "BYBIT_API_SECRET"
SCHEMA_FILE = "config.schema.json"

SPOT_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+$"
PERP_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$"
CURRENCY = r"^[A-Z0-9]+$"
# Both legs are market orders that fill in well under a second; minutes mean a
# typo (milliseconds written as seconds) and a leg left unhedged for that long.
MAX_ORDER_TIMEOUT_SECONDS = 300.0
# A market order's round trip to a real venue (request, match, answer) takes tens
# to hundreds of milliseconds, more under load; a deadline below a second times
# out legs that were filling and rolls healthy positions back, paying fees twice.
MIN_ORDER_TIMEOUT_SECONDS = 1.0
# Counts of funding settlements (funding_window, negative_streak): 10,000 is about
# nine years of 8-hourly settlements.
MAX_SETTLEMENTS = 10_000
MAX_HOLD_HOURS = 100_000  # about 11 years
# A price known this long ago is not a price (hourly candles need two hours).
MAX_STALE_SECONDS = 7 * 86_400.0
# Money in the quote currency (a balance, a position's size): more than a
# quadrillion is a typo or a unit mistake, and would only overflow later.
MAX_AMOUNT = Decimal(10) ** 15
MAX_LEVERAGE = Decimal(100)  # Bybit's highest, on BTCUSDT
# The data window: times before 1970 or from 2100 on are not market data.
FIRST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
END_TIME = datetime(2100, 1, 1, tzinfo=UTC)

# What a config file may hold. A config is a few kilobytes and a few dozen values,
# nested three or four deep; far beyond that is a mistake or an attack (a "billion
# laughs" file: aliases that refer to lists of aliases, expanding exponentially).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32  # lists and mappings nested in one another
MAX_VALUES = 10_000  # values (scalars, lists, mappings), counting each alias expanded
MAX_TEXT = 1_000_000  # characters of all scalars, counting each alias expanded
MAX_NUMBER_LENGTH = 100  # characters of an unquoted whole number

# Beyond these a setting is allowed but implausible: load() warns (Loaded.warnings).
PLAUSIBLE_TAKER_FEE = Decimal("0.01")  # 10x Bybit's base spot taker fee of 0.1 %
PLAUSIBLE_SLIPPAGE = Decimal("0.01")
PLAUSIBLE_LEVERAGE = Decimal(10)
PLAUSIBLE_DRIFT = Decimal("0.1")
PLAUSIBLE_BASIS = Decimal("0.05")


class ConfigError(OrchestratorError):
    """The configuration cannot be used; the message names the file and the YAML path."""


# The patterns go into the JSON Schema only (for editors); __post_init__ checks
# them with a message that shows an example.
SpotSymbol = Annotated[
    str,
    msgspec.Meta(
        description="ccxt unified spot symbol",
        examples=["BTC/USDT"],
        extra_json_schema={"pattern": SPOT_SYMBOL},
    ),
]
PerpSymbol = Annotated[
    str,
    msgspec.Meta(
        description="ccxt unified linear perpetual, settled in the quote currency",
        examples=["BTC/USDT:USDT"],
        extra_json_schema={"pattern": PERP_SYMBOL},
    ),
]


class Pair(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A spot market and its linear perpetual: long the spot, short the perp."""

    spot: SpotSymbol  # e.g. BTC/USDT
    perp: PerpSymbol  # e.g. BTC/USDT:USDT

    def __post_init__(self) -> None:
        if not re.fullmatch(SPOT_SYMBOL, self.spot):
            raise ValueError(f"spot: {self.spot!r} is not a spot symbol like 'BTC/USDT'")
        if not re.fullmatch(PERP_SYMBOL, self.perp):
            raise ValueError(f"perp: {self.perp!r} is not a perp symbol like 'BTC/USDT:USDT'")
        market, settle = self.perp.split(":")
        quote = self.spot.split("/")[1]
        if market != self.spot:
            raise ValueError(
                f"perp: {self.perp!r} is not the perpetual of spot {self.spot!r} "
                f"(that would be '{self.spot}:{quote}')"
            )
        if settle != quote:
            raise ValueError(
                f"perp: {self.perp!r} settles in {settle}; only linear perps settled in "
                f"the quote currency are supported ('{self.spot}:{quote}')"
            )

    @property
    def name(self) -> str:
        return self.spot.replace("/", "")  # BTCUSDT


def parse_time(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window_bound(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = parse_time(text)
    except ValueError:
        raise ValueError(
            f"{name}: {text!r} is not an ISO date or time, e.g. '2024-01-01' or "
            "'2024-01-01T08:00:00Z'"
        ) from None
    # The year first: turning 9999-12-31T23:59:59-12:00 into UTC would overflow.
    if not FIRST_TIME.year <= moment.year < END_TIME.year or not (FIRST_TIME <= moment < END_TIME):
        raise ValueError(
            f"{name}: {text!r} is outside the years {FIRST_TIME.year} to "
            f"{END_TIME.year - 1}: not a time of market data"
        )
    return moment


class DataSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The recorded market data replayed in paper mode."""

    # Relative to the config file; the environment variable ORCHESTRATOR_DATA wins.
    dir: str = "../shared/data"
    start: str | None = None  # ISO date or time (UTC), inclusive; None: from the first record
    end: str | None = None  # exclusive; None: to the last record
    # Hourly candles: a price is usable until two hours have passed without a new one.
    stale_after_seconds: float = 7200.0

    def __post_init__(self) -> None:
        if not self.dir.strip():
            raise ValueError("dir: must not be empty (write . for the config file's folder)")
        start = _window_bound("start", self.start)
        end = _window_bound("end", self.end)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"end: {self.end!r} must be after start {self.start!r}")
        # Infinity (or a year) would turn the stale-price guard off.
        stale = self.stale_after_seconds
        if not math.isfinite(stale) or stale <= 0:
            raise ValueError(f"stale_after_seconds: must be a positive number, got {stale}")
        if not 1 <= stale <= MAX_STALE_SECONDS:
            raise ValueError(
                f"stale_after_seconds: must be between 1 and {MAX_STALE_SECONDS:.0f} seconds "
                f"(a week), got {stale:g}"
            )


class PaperSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The simulated venue of paper mode."""

    slippage: Decimal = Decimal("0.0005")  # against the taker, a fraction of the price
    leverage: Decimal = Decimal(1)  # of the perp short: margin = notional / leverage

    def __post_init__(self) -> None:
        if not self.slippage.is_finite() or not 0 <= self.slippage < Decimal("0.1"):
            raise ValueError(f"slippage: must be a fraction in [0, 0.1), got {self.slippage}")
        require_positive("leverage", self.leverage)
        # Below 1 the margin would exceed the notional: Bybit's lowest leverage is 1.
        if not 1 <= self.leverage <= MAX_LEVERAGE:
            raise ValueError(f"leverage: must be between 1 and {MAX_LEVERAGE}, got {self.leverage}")


class StrategySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When to enter and leave a position, from the funding rates (fractions per year)."""

    funding_window: int = 9  # settlements (3 days at 8 h) averaged for the entry and exit rules
    entry_annualised: Decimal = Decimal("0.10")  # enter above 10 %/year
    exit_annualised: Decimal = Decimal("0.02")  # leave below 2 %/year
    negative_streak: int = 3  # leave after this many negative settlements in a row
    max_basis: Decimal = Decimal("0.005")  # leave when |perp / spot - 1| exceeds this
    min_hold_hours: int = 720  # expected funding over this long must beat the round trip

    def __post_init__(self) -> None:
        for name in ("funding_window", "negative_streak"):
            count: int = getattr(self, name)
            if count < 1:
                raise ValueError(f"{name}: must be at least 1, got {count}")
            if count > MAX_SETTLEMENTS:
                raise ValueError(
                    f"{name}: must be at most {MAX_SETTLEMENTS:,} settlements (about nine "
                    f"years at 8 h), got {_count(count)}"
                )
        if self.min_hold_hours < 0:
            raise ValueError(f"min_hold_hours: must be >= 0, got {self.min_hold_hours}")
        if self.min_hold_hours > MAX_HOLD_HOURS:
            raise ValueError(
                f"min_hold_hours: must be at most {MAX_HOLD_HOURS:,} hours (about 11 years), "
                f"got {_count(self.min_hold_hours)}"
            )
        for name in ("entry_annualised", "exit_annualised"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or not -10 <= value <= 10:
                raise ValueError(f"{name}: must be a fraction per year in [-10, 10], got {value}")
        if self.exit_annualised > self.entry_annualised:
            raise ValueError(
                f"exit_annualised: {self.exit_annualised} is above entry_annualised "
                f"{self.entry_annualised}: every position would leave as it enters"
            )
        require_positive("max_basis", self.max_basis)
        if self.max_basis > 1:
            raise ValueError(
                f"max_basis: must be at most 1 (the perp at twice the spot price), "
                f"got {self.max_basis}"
            )


def _count(number: int) -> str:
    """A whole number for a message: in full, or its length when too long to read."""
    if number.bit_length() <= 100:  # up to 31 digits
        return f"{number:,}"
    if number.bit_length() < 13_000:  # str() refuses over 4,300 digits
        return f"a number of {len(str(abs(number)))} digits"
    return "a number of thousands of digits"


class OutputSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a run writes its record."""

    dir: str = "runs"  # relative to the config file; one folder per run inside
    chart: bool = True

    def __post_init__(self) -> None:
        if not self.dir.strip():
            raise ValueError("dir: must not be empty (write . for the config file's folder)")


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenTelemetry spans of every position's machine."""

    enabled: bool = True
    otlp_endpoint: str | None = None  # e.g. http://localhost:4318/v1/traces

    def __post_init__(self) -> None:
        if self.otlp_endpoint is not None and not _is_http_url(self.otlp_endpoint):
            raise ValueError(
                f"otlp_endpoint: {self.otlp_endpoint!r} is not an http(s) URL like "
                "'http://localhost:4318/v1/traces'"
            )


class LiveSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """mode: live only. The venue's timing (one place: ccxt's timeout, Bybit's
    recvWindow and how long a lost order may still land all come from here), how
    often prices and funding are read, and the perp's leverage."""

    request_timeout_ms: int = 3000  # ccxt's timeout for one request
    recv_window_ms: int = 5000  # Bybit accepts a signed request until its timestamp + this
    clock_skew_ms: int = 1000  # how far this machine's clock may be from Bybit's
    poll_seconds: float = 5.0  # tickers and funding are read this often
    leverage: Decimal = Decimal(1)  # set on each perp at startup
    # On Ctrl-C / SIGTERM / SIGHUP: leave the open positions open on the venue (hedged,
    # journaled: ``run --resume`` carries them on), or close them.
    on_stop: Literal["close", "leave"] = "leave"
    # A Bybit v5 compatible venue to trade with instead of Bybit's own (``network``),
    # e.g. the loopback venue of ``orchestrator venue``: http://127.0.0.1:8999
    url: str | None = None

    def __post_init__(self) -> None:
        VenueTiming(self.request_timeout_ms, self.recv_window_ms, self.clock_skew_ms)  # checked
        if self.url is not None and not _is_http_url(self.url):
            raise ValueError(
                f"url: {self.url!r} is not an http(s) URL like 'http://127.0.0.1:8999'"
            )
        if not 0.5 <= self.poll_seconds <= 300:
            raise ValueError(f"poll_seconds: must be between 0.5 and 300, got {self.poll_seconds}")
        if not self.leverage.is_finite() or not 1 <= self.leverage <= MAX_LEVERAGE:
            raise ValueError(f"leverage: must be between 1 and {MAX_LEVERAGE}, got {self.leverage}")

    @property
    def timing(self) -> VenueTiming:
        return VenueTiming(self.request_timeout_ms, self.recv_window_ms, self.clock_skew_ms)


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    try:
        port = parts.port  # ValueError when not a number in 0-65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A run: decimals are quoted strings; API keys come only from the environment."""

    mode: Literal["paper", "live"] = "paper"
    venue: Literal["bybit"] = "bybit"
    network: Literal["mainnet", "testnet", "demo"] = "testnet"  # live mode: which Bybit
    pairs: list[Pair] = msgspec.field(
        default_factory=lambda: [
            Pair("BTC/USDT", "BTC/USDT:USDT"),
            Pair("ETH/USDT", "ETH/USDT:USDT"),
        ]
    )
    balances: dict[str, Decimal] = msgspec.field(default_factory=lambda: {"USDT": Decimal(100_000)})
    trading: TradingSettings = TradingSettings()
    fees: FeeSettings = FeeSettings()
    paper: PaperSettings = PaperSettings()
    strategy: StrategySettings = StrategySettings()
    data: DataSettings = DataSettings()
    output: OutputSettings = OutputSettings()
    tracing: TracingSettings = TracingSettings()
    live: LiveSettings = LiveSettings()

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("pairs: at least one pair is needed")
        first: dict[str, int] = {}
        for i, pair in enumerate(self.pairs):
            # Pair ties the perp to the spot, so the spot symbol names the pair.
            if pair.spot in first:
                raise ValueError(f"pairs[{i}]: {pair.spot} is already pairs[{first[pair.spot]}]")
            first[pair.spot] = i
        for currency, amount in self.balances.items():
            if not re.fullmatch(CURRENCY, currency):
                raise ValueError(f"balances.{currency}: not a currency code like 'USDT'")
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"balances.{currency}: must be >= 0, got {amount}")
            if amount > MAX_AMOUNT:
                raise ValueError(
                    f"balances.{currency}: must be at most {MAX_AMOUNT:,f}, got {amount}"
                )
        for pair in self.pairs:
            quote = pair.spot.split("/")[1]
            if self.balances.get(quote, Decimal(0)) <= 0:
                raise ValueError(
                    f"balances.{quote}: a positive starting balance is needed to buy {pair.spot}"
                )
        # TradingSettings and FeeSettings (settings.py) check what the execution core
        # needs; a config must also make sense for a run.
        size = self.trading.max_position_size_usd
        if size > MAX_AMOUNT:
            raise ValueError(
                f"trading.max_position_size_usd: must be at most {MAX_AMOUNT:,f}, got {size}"
            )
        timeout = self.trading.order_timeout_seconds
        if timeout > MAX_ORDER_TIMEOUT_SECONDS:
            raise ValueError(
                f"trading.order_timeout_seconds: must be at most {MAX_ORDER_TIMEOUT_SECONDS:g} "
                f"seconds, got {timeout:g} (the unit is seconds, not milliseconds)"
            )
        if timeout < MIN_ORDER_TIMEOUT_SECONDS:
            raise ValueError(
                f"trading.order_timeout_seconds: must be at least {MIN_ORDER_TIMEOUT_SECONDS:g} "
                f"second, got {timeout:g}: a market order's round trip to the venue takes up "
                "to a second, and a leg timed out while filling is rolled back, paying fees twice"
            )
        request_timeout = self.live.request_timeout_ms / 1000
        if self.mode == "live" and timeout < 2 * request_timeout:
            raise ValueError(
                f"trading.order_timeout_seconds: {timeout:g} s leaves no room for a create and "
                f"a read of its fill at live.request_timeout_ms {self.live.request_timeout_ms} "
                f"ms each: make it at least {2 * request_timeout:g} s"
            )
        for name in ("spot_taker", "perp_taker"):
            rate: Decimal = getattr(self.fees, name)
            if rate < 0:
                raise ValueError(
                    f"fees.{name}: must be >= 0, got {rate} (rebates are paid to makers, "
                    "never to takers)"
                )


class Loaded(msgspec.Struct, frozen=True):
    """A config and where it came from: relative paths resolve against its folder."""

    config: Config
    path: Path
    # Settings that are allowed but implausible, each "<file>: <YAML path>: ...".
    warnings: list[str] = msgspec.field(default_factory=list)

    def data_dir(self) -> Path:
        env = os.environ.get(DATA_ENV)
        return Path(env) if env else (self.path.parent / self.config.data.dir).resolve()

    def output_dir(self) -> Path:
        return (self.path.parent / self.config.output.dir).resolve()


def load_config(path: Path) -> Config:
    """Read and check a config file; every problem raises ConfigError naming the YAML path."""
    return load(path).config


def load(path: Path) -> Loaded:
    """As load_config, keeping the (absolute) path the relative directories resolve against."""
    try:
        config = _decode(_read(path))
    except _Invalid as exc:
        # No chained cause: YAML errors quote source lines, which may hold a secret.
        raise ConfigError(f"{path}: {exc}") from None
    return Loaded(config, path.resolve(), [f"{path}: {w}" for w in config_warnings(config)])


def config_warnings(config: Config) -> list[str]:
    """What a valid config holds that is probably a mistake, as "<YAML path>: why"."""
    found: list[str] = []
    for name in ("spot_taker", "perp_taker"):
        rate: Decimal = getattr(config.fees, name)
        if rate > PLAUSIBLE_TAKER_FEE:
            found.append(
                f"fees.{name}: {rate} is {rate:.2%} per fill; Bybit's base taker fees are "
                "0.1 % (spot) and 0.055 % (perp): the unit is a fraction (0.001 = 0.1 %)"
            )
    slippage = config.paper.slippage
    if slippage > PLAUSIBLE_SLIPPAGE:
        found.append(
            f"paper.slippage: {slippage} is {slippage:.2%} per fill; a market order for "
            "BTC or ETH on Bybit moves the price by a few basis points"
        )
    leverage = config.paper.leverage
    if leverage > PLAUSIBLE_LEVERAGE:
        found.append(
            f"paper.leverage: {leverage}x: paper mode does not simulate liquidation; at "
            f"this leverage a {1 / leverage:.1%} move against the perp would liquidate it"
        )
    drift = config.trading.delta_drift_tolerance
    if drift > PLAUSIBLE_DRIFT:
        found.append(
            f"trading.delta_drift_tolerance: {drift} accepts legs that differ by "
            f"{drift:.0%}: that much of the position would be unhedged"
        )
    strategy = config.strategy
    if strategy.max_basis > PLAUSIBLE_BASIS:
        found.append(
            f"strategy.max_basis: {strategy.max_basis} ({strategy.max_basis:.1%}): the basis "
            "of BTC and ETH stays within a fraction of a percent, so this exit never fires"
        )
    if strategy.entry_annualised <= 0:
        found.append(
            f"strategy.entry_annualised: {strategy.entry_annualised}: positions open even "
            "while the perp short pays funding instead of receiving it"
        )
    costly = any(getattr(config.fees, n) > 0 for n in ("spot_taker", "perp_taker"))
    if strategy.min_hold_hours == 0 and (costly or config.paper.slippage > 0):
        found.append(
            "strategy.min_hold_hours: 0: no funding is expected to pay for the round trip's "
            "fees and slippage within 0 hours, so no position opens"
        )
    return found


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML file (draft 2020-12), for editors and documentation."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "funding-orchestrator configuration",
        "description": (
            "config.yaml of funding-orchestrator. Decimals are quoted strings; "
            "keys and secrets come only from the environment."
        ),
        **msgspec.json.schema(Config),
    }


def write_schema(path: Path) -> None:
    path.write_text(json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n", "utf-8")


class _Invalid(Exception):
    """A problem at a place in the file (a YAML path, or a line and column)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES and path.is_file():
            raise _Invalid(
                "",
                f"the file is {size:,} bytes; a config is a few kilobytes "
                f"(at most {MAX_FILE_BYTES:,} bytes)",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _Invalid("", "cannot read the config: no such file") from None
    except IsADirectoryError:
        raise _Invalid("", "cannot read the config: it is a directory, not a file") from None
    except OSError as exc:
        raise _Invalid("", f"cannot read the config: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Invalid("", f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def _decode(text: str) -> Config:
    try:
        loader = _Loader(text)  # refuses control characters here, before parsing
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _Invalid(
            f"line {line}, column {column}",
            f"not valid YAML: character {exc.character:#06x} is not allowed",
        ) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:  # the composer stops at MAX_DEPTH first; this is a safety net
        raise _Invalid("", f"values nested too deeply (a config needs {_NEEDED_DEPTH})") from None
    finally:
        loader.dispose()
    _refuse_secrets(data, "", set(), set())
    if data is None:
        raise _Invalid(
            "", "the file holds no settings (empty or only comments); expected mode, pairs, ..."
        )
    if not isinstance(data, dict):
        raise _Invalid(
            "",
            "the top level must be a mapping of settings (mode, pairs, trading, ...), "
            f"found {describe_value(data)}",
        )
    _check_shape(data, Config, "", loader.float_text)
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise _translate(exc, "", data, Config) from None
    return config


_NEEDED_DEPTH = "3 or 4 levels"


def _at(mark: Any) -> str:
    """Where a YAML mark points, as "line L, column C" (nothing without a mark)."""
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, made stricter and more literal for a config file.

    It also refuses, while composing and before anything is built, a file nested
    deeper than MAX_DEPTH, or one whose aliases expand it beyond MAX_VALUES values
    or MAX_TEXT characters: an alias costs the size of what it refers to, which is
    known once that is composed, so a "billion laughs" file stops at its first
    lines, in microseconds.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        # The source text of every float, by object id (they live as long as the
        # loaded tree), so a float-for-decimal hint shows the digits as written.
        self.float_text: dict[int, str] = {}
        self._depth = 0
        self._values = 0  # values composed so far, aliases expanded
        self._text = 0  # characters of scalars composed so far, aliases expanded
        self._aliases = 0
        # Expanded (values, characters) of each composed node, by id (the nodes
        # live as long as the composed tree).
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._aliases += 1
            # An alias to a list or mapping still being composed (it contains the
            # alias) counts once here; _refuse_secrets refuses it.
            values, text = self._sizes.get(id(node), (1, 0))
            self._count(values, text, mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Invalid(
                _at(mark),
                f"lists or mappings nested more than {MAX_DEPTH} deep; a config needs "
                f"{_NEEDED_DEPTH}",
            )
        values, text = self._values, self._text
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            self._count(1, len(node.value), mark)
        else:
            self._count(1, 0, mark)
        self._sizes[id(node)] = (self._values - values, self._text - text)
        return node

    def _count(self, values: int, text: int, mark: Any) -> None:
        self._values += values
        self._text += text
        if self._values <= MAX_VALUES and self._text <= MAX_TEXT:
            return
        what = (
            f"more than {MAX_VALUES:,} values"
            if self._values > MAX_VALUES
            else f"more than {MAX_TEXT:,} characters of text"
        )
        if self._aliases:
            raise _Invalid(
                _at(mark),
                f"the aliases (*name) expand the file to {what}; a config holds a few "
                "dozen values (refusing a 'billion laughs' file)",
            )
        raise _Invalid(_at(mark), f"the file holds {what}; a config holds a few dozen values")

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to read an integer of over 4,300 digits (a ValueError).
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise _Invalid(
                _at(node.start_mark),
                f"a number {len(node.value):,} characters long; no setting needs more than "
                f"{MAX_NUMBER_LENGTH}",
            )
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        self.float_text[id(value)] = str(node.value)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys; a second `trading:` would silently
        # replace the first.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    problem=f"the key {key!r} appears twice (first at line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_timestamp_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_yaml_str(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# An unquoted 2024-01-01 would become a date; data.start and data.end are text.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_as_text)


def _syntax_error(exc: yaml.MarkedYAMLError) -> _Invalid:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "cannot parse"
    if "'\\t'" in problem:
        return _Invalid(where, "not valid YAML: a tab character where YAML allows only spaces")
    if exc.context and problem.startswith("but "):  # "expected a single document ..., but ..."
        problem = f"{exc.context}, {problem}"
    elif exc.context and exc.context_mark and exc.problem:
        context = exc.context_mark
        problem += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
    return _Invalid(where, f"not valid YAML: {problem}")


_SECRET_KEY = re.compile(
    r"(?:^|_)(?:api_?key|api_?secret|secret(?:_?key)?|password|passwd|passphrase"
    r"|token|private_?key)(?:_|$)"
)


def _refuse_secrets(value: Any, path: str, open_containers: set[int], done: set[int]) -> None:
    """Refuse any key that looks like a credential, wherever it is, without its value.

    Each mapping and list is looked at once, however many aliases refer to it
    (``done``): walking every alias again costs as much as expanding them.
    """
    if not isinstance(value, dict | list) or id(value) in done:
        return
    if id(value) in open_containers:
        raise _Invalid(path, "a YAML alias refers to a mapping or list that contains it")
    open_containers.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        where = _join(path, key) if isinstance(value, dict) else f"{path}[{key}]"
        if isinstance(value, dict) and _SECRET_KEY.search(str(key).lower().replace("-", "_")):
            raise _Invalid(
                where,
                "keys and secrets are read only from environment variables "
                f"({API_KEY_ENV} and {API_SECRET_ENV}); remove it from the file",
            )
        _refuse_secrets(item, where, open_containers, done)
    open_containers.remove(id(value))
    done.add(id(value))


def _check_shape(value: Any, typ: Any, path: str, float_text: dict[int, str]) -> None:
    """What msgspec cannot say well: unknown keys (with a suggestion), floats given for
    decimals, and the real key of a bad mapping entry (msgspec prints ``[...]``)."""
    typ = _bare(typ)
    if is_struct(typ) and isinstance(value, dict):
        fields = struct_fields(typ)
        for key, item in value.items():
            where = _join(path, key)
            if key not in fields:
                raise _Invalid(where, unknown_key(key, list(fields)))
            _check_shape(item, fields[key], where, float_text)
    elif get_origin(typ) is list and isinstance(value, list):
        (item_type,) = get_args(typ)
        for i, item in enumerate(value):
            _check_shape(item, item_type, f"{path}[{i}]", float_text)
    elif get_origin(typ) is dict and isinstance(value, dict):
        _, item_type = get_args(typ)
        for key, item in value.items():
            where = _join(path, key)
            if not isinstance(key, str):
                raise _Invalid(where, f"expected a text key, got {describe_value(key)}")
            _check_shape(item, item_type, where, float_text)
            try:
                msgspec.convert(item, item_type)
            except msgspec.ValidationError as exc:
                raise _translate(exc, where, item, item_type) from None
    # An unquoted 0.1 is a binary float by the time it reaches msgspec. Integers are
    # accepted: YAML reads them as exact Python ints and msgspec converts those to
    # Decimal exactly (even beyond 64 bits), so `leverage: 1` loses nothing.
    elif typ is Decimal and isinstance(value, float):
        written = float_text.get(id(value), repr(value))
        raise _Invalid(path, f'write decimals as quoted strings, e.g. "{written}"')


# A msgspec error: "<message>" or "<message> - at `$.pairs[1].perp`".
_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_TYPE_MISMATCH = re.compile(
    r"Expected `[^`]+`, got `[^`]+`|Invalid enum value .*|Invalid decimal string"
)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def _translate(exc: msgspec.ValidationError, path: str, value: Any, typ: Any) -> _Invalid:
    """msgspec's error, relative to ``value`` of type ``typ`` found at ``path``, in the
    file's terms: the YAML path, what was expected and what was found."""
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    where = path
    typ = _bare(typ)
    # Struct fields and list indexes only: _check_shape has checked every mapping entry.
    for field, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", match["path"] or ""):
        if field:
            where = _join(where, field)
            typ = _bare(struct_fields(typ)[field])
            value = value[field]
        else:
            where = f"{where}[{index}]"
            typ = _bare(get_args(typ)[0])
            value = value[int(index)]
    if _TYPE_MISMATCH.fullmatch(message):
        return _Invalid(where, _expected(typ, value))
    missing = _MISSING_FIELD.fullmatch(message)
    if missing:
        return _Invalid(_join(where, missing["field"]), "required, but missing")
    return _from_post_init(where, typ, message)


def _from_post_init(where: str, typ: Any, message: str) -> _Invalid:
    """Move the field a ``__post_init__`` message starts with into the path:
    "delta_drift_tolerance must be ..." at trading -> trading.delta_drift_tolerance."""
    fields = struct_fields(typ) if is_struct(typ) else {}
    # "field: ...", "field[1]: ...", "field.sub: ..." (config.py's form)
    lead = re.match(r"(?P<field>\w+)(?P<tail>(?:\[\d+\]|\.\w+)*): (?P<rest>.+)", message, re.S)
    if lead and lead["field"] in fields:
        return _Invalid(_join(where, lead["field"]) + lead["tail"], lead["rest"])
    # "field must ..." (settings.py's form)
    for field in fields:
        if message.startswith(field + " "):
            return _Invalid(_join(where, field), message[len(field) + 1 :])
    return _Invalid(where, message)


def _expected(typ: Any, value: Any) -> str:
    text = f"expected {_describe_type(typ)}, got {describe_value(value)}"
    accepts = set(union_members(typ))
    if accepts & {int, float} and isinstance(value, str) and _is_number(value):
        if re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()):
            return text + "; YAML reads 1e-4 as text: write 1.0e-4"
        return text + "; write the number without quotes"
    if str in accepts and isinstance(value, bool):
        return text + "; YAML reads yes, no, on, off, true and false as booleans: quote the text"
    if value is None and is_struct(typ):
        return text + "; remove the key to keep the defaults"
    return text


def _describe_type(typ: Any) -> str:
    if get_origin(typ) is Literal:
        return " or ".join(repr(v) for v in get_args(typ))
    members = union_members(typ)
    if len(members) > 1:
        return " or ".join(_describe_type(m) for m in members)
    names: dict[Any, str] = {
        Decimal: 'a decimal (a quoted string such as "0.02")',
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        types.NoneType: "null",
    }
    if typ in names:
        return names[typ]
    return "a list" if get_origin(typ) is list else "a mapping"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _bare(typ: Any) -> Any:
    return get_args(typ)[0] if get_origin(typ) is Annotated else typ


if __name__ == "__main__":
    write_schema(Path(sys.argv[1] if len(sys.argv) > 1 else SCHEMA_FILE))
