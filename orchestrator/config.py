"""The run's configuration: one msgspec schema, read from YAML, checked before anything runs.

Decimals are quoted strings in the YAML (an unquoted number would pass through a
float). Unknown keys are refused. Every error names the file and the YAML path:
``config.yaml: trading.delta_drift_tolerance: must be between 0 and 1, got 1.5``.
Keys and secrets are never read from the file (DESIGN rule 8).

Every number has a sane range (a value beyond it is an error, with the range);
a value inside it that is still implausible (a 5 % taker fee, 50x leverage) loads
with a warning in ``Loaded.warnings``. Reading the file, and refusing one built
to hurt, is config_file.py's.

``python -m orchestrator.config [PATH]`` writes the JSON Schema (default
``config.schema.json``), which editors use to check the YAML as it is typed.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from orchestrator import config_file
from orchestrator.alerts.settings import AlertSettings
from orchestrator.exceptions import OrchestratorError
from orchestrator.models import require_positive
from orchestrator.risk import PortfolioLimits
from orchestrator.settings import FeeSettings, TradingSettings, VenueTiming

DATA_ENV = "ORCHESTRATOR_DATA"
SCHEMA_FILE = "config.schema.json"

SPOT_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+$"
PERP_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$"
CURRENCY = r"^[A-Z0-9]+$"
MARKET_ID = r"^[A-Z0-9]{2,30}USDT$"  # a USDT pair's market id: BTCUSDT
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
# Positions open at once: more than this is a typo (Bybit lists a few hundred perps).
MAX_OPEN_POSITIONS = 10_000
# The data window: times before 1970 or from 2100 on are not market data.
FIRST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
END_TIME = datetime(2100, 1, 1, tzinfo=UTC)

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


def market_time(name: str, text: str) -> datetime:
    """``text`` as a time of market data (an ISO date or time, UTC without a zone,
    within FIRST_TIME..END_TIME); ValueError naming ``name`` otherwise."""
    try:
        moment = parse_time(text)
    except ValueError:
        raise ValueError(
            f"{name}: {text[:40]!r} is not an ISO date or time, e.g. '2024-01-01' or "
            "'2024-01-01T08:00:00Z'"
        ) from None
    # The year first: turning 9999-12-31T23:59:59-12:00 into UTC would overflow.
    if not FIRST_TIME.year <= moment.year < END_TIME.year or not (FIRST_TIME <= moment < END_TIME):
        raise ValueError(
            f"{name}: {text[:40]!r} is outside the years {FIRST_TIME.year} to "
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
        start = None if self.start is None else market_time("start", self.start)
        end = None if self.end is None else market_time("end", self.end)
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
    # Bybit's lowest risk tier for BTCUSDT and ETHUSDT: the margin guard's model of the
    # short (trading/margin.py) in a replay and a dry run.
    maintenance_margin_rate: Decimal = Decimal("0.005")

    def __post_init__(self) -> None:
        if not self.slippage.is_finite() or not 0 <= self.slippage < Decimal("0.1"):
            raise ValueError(f"slippage: must be a fraction in [0, 0.1), got {self.slippage}")
        require_positive("leverage", self.leverage)
        mmr = self.maintenance_margin_rate
        if not mmr.is_finite() or not 0 < mmr < Decimal("0.5"):
            raise ValueError(f"maintenance_margin_rate: must be in (0, 0.5), got {mmr}")
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


class RiskSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The breaker: what repeated failure pauses (a pair) or stops (all opening); and the
    portfolio's limits across pairs, checked before every open (risk.py)."""

    # A pair whose opens fail this many times in a row opens nothing more this run.
    max_failed_opens: int = 2
    # A pair whose closes fail this many times in a row is left to the operator: its
    # exposure is reported, the close is not tried again blindly.
    max_failed_closes: int = 3
    # Opening stops for the whole run once failed opens have cost more than this
    # fraction of the starting balance (fees and slippage paid to roll them back).
    failed_open_budget: Decimal = Decimal("0.005")
    # The margin guard: the maintenance margin as a fraction of the margin that holds it
    # (the venue liquidates at 1). At ``margin_warn`` the run says so; at ``margin_act``
    # it closes the position nearest to liquidation, both legs together.
    margin_warn: Decimal = Decimal("0.5")
    margin_act: Decimal = Decimal("0.8")
    # How many positions may be open or opening at once, across all pairs (null: no
    # limit beyond one per pair). An open beyond it is refused, and tried again once a
    # position has closed.
    max_open_positions: int | None = None
    # What the positions open or opening may hold together, in USD: each position's
    # spot and perp notional (both legs) at the prices its open was checked at (null:
    # no limit). One position of trading.max_position_size_usd holds about twice that.
    max_total_exposure_usd: Decimal | None = None

    def __post_init__(self) -> None:
        positions = self.max_open_positions
        if positions is not None and not 1 <= positions <= MAX_OPEN_POSITIONS:
            raise ValueError(
                f"max_open_positions: must be between 1 and {MAX_OPEN_POSITIONS:,} (null: no "
                f"limit), got {_count(positions)}"
            )
        exposure = self.max_total_exposure_usd
        if exposure is not None and (not exposure.is_finite() or not 0 < exposure <= MAX_AMOUNT):
            raise ValueError(
                f"max_total_exposure_usd: must be a positive amount of at most {MAX_AMOUNT:,f} "
                f"USD (null: no limit), got {exposure}"
            )
        for name in ("max_failed_opens", "max_failed_closes"):
            count: int = getattr(self, name)
            if not 1 <= count <= 100:
                raise ValueError(f"{name}: must be between 1 and 100, got {_count(count)}")
        warn, act = self.margin_warn, self.margin_act
        if not (warn.is_finite() and act.is_finite() and 0 < warn < act < 1):
            raise ValueError(
                f"margin_warn and margin_act: must be 0 < margin_warn < margin_act < 1 "
                f"(the venue liquidates at 1), got {warn} and {act}"
            )
        budget = self.failed_open_budget
        if not budget.is_finite() or not 0 <= budget <= Decimal("0.1"):
            raise ValueError(
                f"failed_open_budget: must be a fraction of the balance in [0, 0.1], got {budget}"
            )

    def portfolio_limits(self) -> PortfolioLimits:
        return PortfolioLimits(self.max_open_positions, self.max_total_exposure_usd)


class UniverseSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which pairs ``pairs: auto`` considers, and how they are ranked and rotated
    (orchestrator/universe). A pair is a linear USDT perpetual with a spot market."""

    # Considered only with this much 24 h perp turnover, in USD (the venue's ticker live,
    # the last 24 hourly candles in a replay).
    min_turnover_usd: Decimal = Decimal(0)
    # Considered only once this many days of settled funding are known.
    min_history_days: int = 7
    # At most this many pairs considered at once: the most 24 h turnover first.
    max_pairs: int = 200
    include: list[str] = msgspec.field(default_factory=list)  # market ids always considered
    exclude: list[str] = msgspec.field(default_factory=list)  # market ids never considered
    # The settled rates a rank reads: the last this many days.
    history_days: int = 30
    # The holding horizon: the round trip's cost is spread over this many hours.
    horizon_hours: int = 720  # strategy.min_hold_hours
    # A held position is closed for a better pair only when the better one's expected
    # net yield (annualised) beats it by this much after both round trips' costs ...
    rotate_margin: Decimal = Decimal("0.05")
    # ... and the held one has been open at least this long.
    rotate_cooldown_hours: int = 24

    def __post_init__(self) -> None:
        turnover = self.min_turnover_usd
        if not turnover.is_finite() or not 0 <= turnover <= MAX_AMOUNT:
            raise ValueError(
                f"min_turnover_usd: must be between 0 and {MAX_AMOUNT:,f} USD, got {turnover}"
            )
        bounds = {
            "min_history_days": (0, 3650),
            "max_pairs": (1, MAX_OPEN_POSITIONS),
            "history_days": (1, 3650),
            "horizon_hours": (1, MAX_HOLD_HOURS),
            "rotate_cooldown_hours": (0, MAX_HOLD_HOURS),
        }
        for name, (low, high) in bounds.items():
            value: int = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: must be between {low} and {high:,}, got {_count(value)}")
        margin = self.rotate_margin
        if not margin.is_finite() or not 0 <= margin <= 10:
            raise ValueError(f"rotate_margin: must be a fraction per year in [0, 10], got {margin}")
        for name in ("include", "exclude"):
            for i, market in enumerate(getattr(self, name)):
                if not re.fullmatch(MARKET_ID, market):
                    raise ValueError(
                        f"{name}[{i}]: {market[:40]!r} is not a market id like 'BTCUSDT'"
                    )
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ValueError(f"include and exclude both name {', '.join(both)}")


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
    # A line on stderr this often while the run trades: venue time, equity, positions,
    # funding, the last venue contact, why the strategy waits. 0: none.
    heartbeat_seconds: float = 60.0
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
        beat = self.heartbeat_seconds
        if not (beat == 0 or 1 <= beat <= 86_400):
            raise ValueError(
                f"heartbeat_seconds: must be 0 (none) or between 1 and 86400 (a day), got {beat}"
            )
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
    # Where a paper run's prices and funding come from: the recorded data (a replay), or
    # the venue's live market (a dry run: paper fills on live prices, no key needed).
    # A live run trades on the live market.
    market: Literal["recorded", "live"] | None = None
    venue: Literal["bybit"] = "bybit"
    network: Literal["mainnet", "testnet", "demo"] = "testnet"  # live mode: which Bybit
    # The pairs traded: a list, or "auto": every pair the universe section lets in,
    # ranked (a session resolves it: Config.resolved).
    pairs: list[Pair] | Literal["auto"] = msgspec.field(
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
    risk: RiskSettings = RiskSettings()
    data: DataSettings = DataSettings()
    output: OutputSettings = OutputSettings()
    tracing: TracingSettings = TracingSettings()
    live: LiveSettings = LiveSettings()
    alerts: AlertSettings = AlertSettings()
    universe: UniverseSettings = UniverseSettings()

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("pairs: at least one pair is needed (or auto)")
        first: dict[str, int] = {}
        for i, pair in enumerate(self.pair_list):
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
        for pair in self.pair_list:
            quote = pair.spot.split("/")[1]
            if self.balances.get(quote, Decimal(0)) <= 0:
                raise ValueError(
                    f"balances.{quote}: a positive starting balance is needed to buy {pair.spot}"
                )
        # auto names no pair yet: every pair it can choose is quoted in USDT.
        if self.auto and self.balances.get("USDT", Decimal(0)) <= 0:
            raise ValueError(
                "balances.USDT: a positive starting balance is needed to buy the pairs "
                "pairs: auto chooses (each is bought with USDT)"
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
        if self.mode == "live" and self.market == "recorded":
            raise ValueError(
                "market: a live run trades on the live market; for paper fills on the "
                "recorded data use mode: paper (market: recorded), on live prices "
                "mode: paper with market: live (a dry run)"
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

    @property
    def auto(self) -> bool:
        """``pairs: auto``: the universe section chooses the pairs."""
        return self.pairs == "auto"

    @property
    def pair_list(self) -> list[Pair]:
        """The pairs written in ``pairs:``, or those ``pairs: auto`` was resolved to;
        empty while auto is unresolved."""
        return [] if self.pairs == "auto" else self.pairs

    def resolved(self, pairs: list[Pair]) -> Config:
        """This config trading ``pairs`` (what auto chose), the universe kept."""
        return msgspec.structs.replace(self, pairs=pairs)

    @property
    def dry_run(self) -> bool:
        """Paper fills on the venue's live prices and funding (``market: live``)."""
        return self.mode == "paper" and self.market == "live"

    @property
    def on_live_market(self) -> bool:
        """A live run or a dry run: the venue's market drives it, on the wall clock."""
        return self.mode == "live" or self.dry_run


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
        config = config_file.read(path, Config)
    except config_file.Invalid as exc:
        # No chained cause: YAML errors quote source lines, which may hold a secret.
        raise ConfigError(f"{path}: {exc}") from None
    return Loaded(config, path.resolve(), [f"{path}: {w}" for w in config_warnings(config)])


# What a running run may change (``orchestrator set``): the strategy's thresholds. The
# funding window and the negative streak are not: they size what a strategy remembers.
STEERABLE_SETTINGS = ("entry_annualised", "exit_annualised", "max_basis", "min_hold_hours")


def retuned(config: Config, changes: Mapping[str, str]) -> Config:
    """``config`` with the strategy's ``changes`` (names of STEERABLE_SETTINGS, values as
    text), checked by the config's own rules; ValueError saying what is wrong."""
    unknown = [name for name in changes if name not in STEERABLE_SETTINGS]
    if unknown or not changes:
        raise ValueError(
            f"{', '.join(unknown) or 'nothing'}: a running run may change "
            f"{', '.join(STEERABLE_SETTINGS)} (strategy.*), one or more as name=value"
        )
    values: dict[str, object] = dict(msgspec.structs.asdict(config.strategy))
    for name, text in changes.items():
        values[name] = int(text) if name == "min_hold_hours" and text.isdigit() else text
    for name, text in changes.items():
        if name != "min_hold_hours":  # a decimal, as the config file writes it
            try:
                number = Decimal(text)
            except ArithmeticError:
                number = None
            if number is None or not number.is_finite():
                raise ValueError(f"strategy.{name}: {text!r} is not a number (e.g. 0.15)")
        elif not text.isdigit():
            raise ValueError(f"strategy.{name}: {text!r} is not a whole number of hours")
    try:
        strategy = msgspec.convert(values, StrategySettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc).replace("Expected", "expected")) from None
    return msgspec.structs.replace(config, strategy=strategy)


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
    cap, size = config.risk.max_total_exposure_usd, config.trading.max_position_size_usd
    if cap is not None and cap < 2 * size:
        found.append(
            f"risk.max_total_exposure_usd: {cap} USD is less than one position of "
            f"trading.max_position_size_usd holds ({size} USD a leg, {2 * size} both legs): "
            "a position that size is refused even when nothing else is open"
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


if __name__ == "__main__":
    write_schema(Path(sys.argv[1] if len(sys.argv) > 1 else SCHEMA_FILE))
