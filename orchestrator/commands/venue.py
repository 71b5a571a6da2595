"""``orchestrator venue``: the loopback venue in its own process, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from orchestrator.market.recorded import DataMissing
from orchestrator.venue.account import Account
from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET
from orchestrator.venue.faults import load_faults
from orchestrator.venue.options import DATA_ENV, KEY_ENV, KEY_PERMISSIONS, SECRET_ENV, TOKEN_ENV
from orchestrator.venue.server import Venue


def account_of(args: argparse.Namespace) -> Account:
    read_only, barred = KEY_PERMISSIONS[args.key_permissions]
    account = Account(
        unified=args.account == "unified", mode=args.position_mode, read_only=read_only
    )
    for product in barred:
        account.permissions[product] = []
    return account


def _credentials(args: argparse.Namespace) -> tuple[str, str, str]:
    """(key, secret, where they come from, in words that never include them)."""

    key_from = "--key" if args.key else f"${KEY_ENV}" if os.environ.get(KEY_ENV) else None
    secret_from = (
        "--secret" if args.secret else f"${SECRET_ENV}" if os.environ.get(SECRET_ENV) else None
    )
    key = args.key or os.environ.get(KEY_ENV) or DEFAULT_API_KEY
    secret = args.secret or os.environ.get(SECRET_ENV) or DEFAULT_SECRET
    if key_from is None and secret_from is None:
        return key, secret, f"the defaults {DEFAULT_API_KEY}/{DEFAULT_SECRET}"
    where = f"API key from {key_from or 'the default'}, secret from {secret_from or 'the default'}"
    return key, secret, where


def main(args: argparse.Namespace) -> int:

    data_dir = args.data_dir or Path(os.environ.get(DATA_ENV) or "../shared/data")
    key, secret, credentials = _credentials(args)
    if args.start is not None and not args.recorded:
        return _refuse("--start: only with --recorded (the market time of the recorded data)")
    if args.speed and not args.recorded:
        return _refuse("--speed: only with --recorded (it runs the recorded market's clock)")
    token = os.environ.get(TOKEN_ENV) or None
    try:
        venue = Venue(
            data_dir=data_dir,
            keys={key: secret},
            balances=dict(args.balance) or None,
            recorded=args.recorded,
            start_ms=args.start,
            faults=load_faults(args.faults) if args.faults else None,
            port=args.port,
            slippage=args.slippage,
            admin_token=token,
            account=account_of(args),
        )
    except (DataMissing, ValueError) as exc:
        message = str(exc)
        return _refuse(f"--start: {message}" if message.startswith("the market start") else message)
    for name, price in args.price:
        try:
            venue.set_price(name, price)
        except (KeyError, ValueError) as exc:
            return _refuse(f"--price {name}={price}: {exc.args[0]}")
    admin = f" (needs the {TOKEN_ENV} token in the X-Venue-Token header)" if token else ""

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
        speed = float(args.speed)  # a pace, not money
        clock = asyncio.ensure_future(venue.run_clock(speed)) if speed else None
        try:
            print(url, flush=True)
            # Never the key or the secret: say where they come from (they may be live).
            print(
                f"loopback Bybit v5 venue on {url} ({credentials}); "
                f"admin: {url}/admin/state{admin}; Ctrl-C stops it",
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


def _refuse(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
