"""``orchestrator venue``: the loopback venue in its own process, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from orchestrator.venue.account import Account

KEY_ENV = "BYBIT_API_KEY"  # the variables the orchestrator reads its credentials from
SECRET_ENV = "BYBIT_API_SECRET"
DATA_ENV = "ORCHESTRATOR_DATA"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
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
    parser.add_argument("--start", help="recorded: market time to start at, e.g. 2024-06-01")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="recorded: market seconds per wall second (0: still)",
    )
    parser.add_argument(
        "--price", action="append", default=[], metavar="SYMBOL=PRICE", help="e.g. BTCUSDT=60000"
    )
    parser.add_argument(
        "--balance", action="append", default=[], metavar="COIN=AMOUNT", help="default USDT=100000"
    )
    parser.add_argument("--slippage", default="0", help="fraction of the price, e.g. 0.0005")
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


def account_of(args: argparse.Namespace) -> Account:
    read_only, barred = KEY_PERMISSIONS[args.key_permissions]
    account = Account(
        unified=args.account == "unified", mode=args.position_mode, read_only=read_only
    )
    for product in barred:
        account.permissions[product] = []
    return account


def _pairs(items: list[str], what: str) -> dict[str, Decimal]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = Decimal(value)
        except InvalidOperation:
            raise SystemExit(f"error: --{what} {item!r}: expected NAME=NUMBER") from None
    return out


def main(args: argparse.Namespace) -> int:
    from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET
    from orchestrator.venue.faults import load_faults
    from orchestrator.venue.server import Venue

    data_dir = args.data_dir or Path(os.environ.get(DATA_ENV) or "../shared/data")
    key = args.key or os.environ.get(KEY_ENV) or DEFAULT_API_KEY
    secret = args.secret or os.environ.get(SECRET_ENV) or DEFAULT_SECRET
    start_ms = None
    if args.start:
        when = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        start_ms = int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)
    venue = Venue(
        data_dir=data_dir,
        keys={key: secret},
        balances=_pairs(args.balance, "balance") or None,
        prices=_pairs(args.price, "price"),
        slippage=_pairs([f"slippage={args.slippage}"], "slippage")["slippage"],
        recorded=args.recorded,
        start_ms=start_ms,
        faults=load_faults(args.faults) if args.faults else None,
        port=args.port,
        account=account_of(args),
    )

    stopped_by: list[int] = []

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_on(sig: int) -> None:
            stopped_by.append(sig)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_on, sig)
        url = await venue.start()
        clock = asyncio.ensure_future(venue.run_clock(args.speed)) if args.speed else None
        try:
            print(url, flush=True)
            print(
                f"loopback Bybit v5 venue on {url} (API key {key}); admin: {url}/admin/state; "
                "Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
        finally:
            if clock is not None:
                clock.cancel()
            await venue.stop()
            print("venue stopped", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve())
    except OSError as exc:  # the port is taken, most likely
        reason = exc.strerror or exc
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {reason}", file=sys.stderr)
        return 2
    # Stopped as asked: 128 + the signal's number, as the other commands report it.
    return 128 + stopped_by[0] if stopped_by else 0
