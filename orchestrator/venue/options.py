"""``orchestrator venue``'s options and the checks of their values: what the venue
accepts on its command line (the command itself: commands/venue.py). Light to import:
the parser of every command is built before any command runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from orchestrator.venue.checks import COIN, MAX_AMOUNT

KEY_ENV = "BYBIT_API_KEY"  # the variables the orchestrator reads its credentials from


SECRET_ENV = "BYBIT_API_SECRET"


DATA_ENV = "ORCHESTRATOR_DATA"


TOKEN_ENV = "ORCHESTRATOR_VENUE_TOKEN"  # when set, the admin API needs it (X-Venue-Token)


MAX_SPEED = 1_000_000  # market seconds per wall second: a year in half a minute


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0: any free port)")
    return port


def _number(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip()) if len(text) <= 100 else Decimal("NaN")
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: expected a finite number ({what})")
    return value


def _speed(text: str) -> Decimal:
    value = _number(text, "market seconds per wall second")
    if not 0 <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"{value} is not from 0 (still) to {MAX_SPEED:,}")
    return value


def _slippage(text: str) -> Decimal:
    value = _number(text, "a fraction of the price")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction from 0 to below 1")
    return value


def _start(text: str) -> int:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a date or time, e.g. 2024-06-01 or 2024-06-01T08:00Z"
        ) from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _pair(kind: str) -> Callable[[str], tuple[str, Decimal]]:
    def parse(item: str) -> tuple[str, Decimal]:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise argparse.ArgumentTypeError(f"{item[:40]!r}: expected NAME=NUMBER")
        if kind == "a balance" and not COIN.fullmatch(name.strip()):
            raise argparse.ArgumentTypeError(
                f"{item[:40]!r}: the coin is capital letters and digits, e.g. USDT=100000"
            )
        amount = _number(value, f"{kind} in {item[:40]!r}")
        low_ok = amount >= 0 if kind == "a balance" else amount > 0
        if not low_ok or amount > MAX_AMOUNT:
            lowest = "from 0" if kind == "a balance" else "above 0"
            raise argparse.ArgumentTypeError(
                f"{item[:40]!r}: {kind} must be {lowest} to {MAX_AMOUNT:,f}"
            )
        return name.strip(), amount

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, default=0, help="default: any free port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help=f"instruments and recorded data (default: ${DATA_ENV}, else ../shared/data)",
    )
    parser.add_argument("--faults", type=Path, metavar="FILE", help="a fault spec, YAML or JSON")
    parser.add_argument(
        "--key", default=None, help=f"API key it accepts (default: ${KEY_ENV}, else venue-key)"
    )
    parser.add_argument(
        "--secret", default=None, help=f"its secret (default: ${SECRET_ENV}, else venue-secret)"
    )
    parser.add_argument(
        "--recorded", action="store_true", help="prices and funding from the recorded data"
    )
    parser.add_argument(
        "--start", type=_start, help="recorded: market time to start at, e.g. 2024-06-01"
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=Decimal(0),
        help="recorded: market seconds per wall second (0: still)",
    )
    parser.add_argument(
        "--price",
        type=_pair("a price"),
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="e.g. BTCUSDT=60000",
    )
    parser.add_argument(
        "--balance",
        type=_pair("a balance"),
        action="append",
        default=[],
        metavar="COIN=AMOUNT",
        help="default USDT=100000",
    )
    parser.add_argument(
        "--slippage", type=_slippage, default=Decimal(0), help="fraction of the price, e.g. 0.0005"
    )
    account = parser.add_argument_group("the account's settings (Bybit's: see venue/account.py)")
    account.add_argument(
        "--account",
        choices=["unified", "classic"],
        default="unified",
        help="a Unified Trading Account (default), or a classic one",
    )
    account.add_argument(
        "--position-mode",
        choices=["one-way", "hedge"],
        default="one-way",
        help="the USDT perps' position mode: one-way (default) or hedge (both sides)",
    )
    account.add_argument(
        "--key-permissions",
        choices=sorted(KEY_PERMISSIONS),
        default="trade",
        help="what the API key may do: trade (default), read-only, no-spot, no-contract",
    )


# What ``--key-permissions`` gives the key: (read only, products it may not trade).
KEY_PERMISSIONS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "trade": (False, ()),
    "read-only": (True, ()),
    "no-spot": (False, ("Spot",)),
    "no-contract": (False, ("ContractTrade",)),
}
