"""The run's configuration, read from YAML and checked before anything runs.

Decimals are quoted strings in the YAML (an unquoted number would pass through a
float). Unknown keys are refused. Every error names the YAML path.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import FeeSettings, TradingSettings


class ConfigError(OrchestratorError):
    """The configuration cannot be used; the message names the file and the YAML path."""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: Literal["paper"] = "paper"
    starting_balance_usdt: Decimal = Decimal(100_000)
    trading: TradingSettings = TradingSettings()
    fees: FeeSettings = FeeSettings()

    def __post_init__(self) -> None:
        if not self.starting_balance_usdt.is_finite() or self.starting_balance_usdt <= 0:
            raise ValueError(
                f"starting_balance_usdt must be a positive amount, got {self.starting_balance_usdt}"
            )


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
