"""The run's configuration: one msgspec schema, read from YAML, checked before anything runs.

Decimals are quoted strings in the YAML (an unquoted number would pass through a
float). Unknown keys are refused. Every error names the YAML path.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from orchestrator.exceptions import OrchestratorError
from orchestrator.models import require_positive
from orchestrator.settings import FeeSettings, TradingSettings

DATA_ENV = "ORCHESTRATOR_DATA"


class ConfigError(OrchestratorError):
    """The configuration cannot be used; the message names the file and the YAML path."""


SPOT_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+$"
PERP_SYMBOL = r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$"


class Pair(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    spot: str  # ccxt unified spot symbol, e.g. BTC/USDT
    perp: str  # ccxt unified linear perpetual, e.g. BTC/USDT:USDT

    def __post_init__(self) -> None:
        if not re.match(SPOT_SYMBOL, self.spot):
            raise ValueError(f"spot: {self.spot!r} is not a spot symbol like 'BTC/USDT'")
        if not re.match(PERP_SYMBOL, self.perp):
            raise ValueError(f"perp: {self.perp!r} is not a perp symbol like 'BTC/USDT:USDT'")
        if self.spot != self.perp.split(":")[0]:
            raise ValueError(f"spot {self.spot!r} and perp {self.perp!r} are not the same market")

    @property
    def name(self) -> str:
        return self.spot.replace("/", "")  # BTCUSDT


class DataSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Relative to the config file; the environment variable ORCHESTRATOR_DATA wins.
    dir: str = "../shared/data"
    start: str | None = None  # ISO date or time (UTC), inclusive; None: from the first record
    end: str | None = None  # exclusive; None: to the last record
    # Hourly candles: a price is usable until two hours have passed without a new one.
    stale_after_seconds: float = 7200.0

    def __post_init__(self) -> None:
        if not self.stale_after_seconds > 0:
            raise ValueError(f"stale_after_seconds must be > 0, got {self.stale_after_seconds}")


class PaperSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slippage: Decimal = Decimal("0.0005")  # against the taker, a fraction of the price
    leverage: Decimal = Decimal(1)  # of the perp short: margin = notional / leverage

    def __post_init__(self) -> None:
        if not self.slippage.is_finite() or not 0 <= self.slippage < Decimal("0.1"):
            raise ValueError(f"slippage must be a fraction in [0, 0.1), got {self.slippage}")
        require_positive("leverage", self.leverage)
        if self.leverage > 100:
            raise ValueError(f"leverage must be at most 100, got {self.leverage}")


class StrategySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    funding_window: int = 3  # settlements averaged for the entry and exit rules
    entry_annualised: Decimal = Decimal("0.10")  # enter above 10 %/year
    exit_annualised: Decimal = Decimal("0.02")  # leave below 2 %/year
    negative_streak: int = 3  # leave after this many negative settlements in a row
    max_basis: Decimal = Decimal("0.005")  # leave when |perp / spot - 1| exceeds this
    min_hold_hours: int = 72  # expected funding over this long must beat the round trip

    def __post_init__(self) -> None:
        if self.funding_window < 1:
            raise ValueError(f"funding_window must be at least 1, got {self.funding_window}")
        if self.negative_streak < 1:
            raise ValueError(f"negative_streak must be at least 1, got {self.negative_streak}")
        if self.min_hold_hours < 0:
            raise ValueError(f"min_hold_hours must be >= 0, got {self.min_hold_hours}")
        for name in ("entry_annualised", "exit_annualised"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or not -10 <= value <= 10:
                raise ValueError(f"{name} must be a fraction per year in [-10, 10], got {value}")
        if self.exit_annualised > self.entry_annualised:
            raise ValueError(
                f"exit_annualised {self.exit_annualised} is above entry_annualised "
                f"{self.entry_annualised}: every position would leave as it enters"
            )
        require_positive("max_basis", self.max_basis)


class OutputSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dir: str = "runs"  # relative to the config file; one folder per run inside
    chart: bool = True


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    otlp_endpoint: str | None = None  # e.g. http://localhost:4318/v1/traces


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: Literal["paper", "live"] = "paper"
    venue: Literal["bybit"] = "bybit"
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

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("pairs: at least one pair is needed")
        seen: set[str] = set()
        for i, pair in enumerate(self.pairs):
            for symbol in (pair.spot, pair.perp):
                if symbol in seen:
                    raise ValueError(f"pairs[{i}]: {symbol} appears twice")
                seen.add(symbol)
        for currency, amount in self.balances.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"balances.{currency}: must be >= 0, got {amount}")
        quotes = {p.spot.split("/")[1] for p in self.pairs}
        for quote in sorted(quotes):
            if self.balances.get(quote, Decimal(0)) <= 0:
                raise ValueError(f"balances.{quote}: a positive starting balance is needed")


class Loaded(msgspec.Struct, frozen=True):
    """A config and where it came from: relative paths resolve against its folder."""

    config: Config
    path: Path

    def data_dir(self) -> Path:
        env = os.environ.get(DATA_ENV)
        return Path(env) if env else (self.path.parent / self.config.data.dir).resolve()

    def output_dir(self) -> Path:
        return (self.path.parent / self.config.output.dir).resolve()


_AT = re.compile(r"^(?P<msg>.*) - at `\$\.?(?P<path>[^`]*)`$")


def load_config(path: Path) -> Config:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from exc
    try:
        return msgspec.yaml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        if match:
            raise ConfigError(f"{path}: {match['path']}: {match['msg']}") from exc
        raise ConfigError(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
