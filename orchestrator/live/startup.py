"""A live run's startup, read-only, stopping with a clear message before the first
order if anything is off: load the markets; check every pair is listed and trading on
both legs; check the account (preflight.py: its type, the key's permissions, each
perp's position mode, the fee rates, the funding intervals); read balances and
positions (a perp position the run did not open is reported and its pair left alone).
Each perp's leverage is set later, when the run starts (run.py), after a resume's
reconciliation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import ccxt
import msgspec
from opentelemetry.trace import Tracer

from orchestrator.bybit.client import describe
from orchestrator.bybit.retry import read_venue as read
from orchestrator.config import Config
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.account import LiveAccount
from orchestrator.live.preflight import (
    StartupError,
    check_account,
    check_markets,
    public_terms,
)
from orchestrator.live.run import LiveRun
from orchestrator.position.legs import new_run_nonce
from orchestrator.strategy.funding import FundingStrategy, Strategy
from orchestrator.trading.run import PairRun


async def connect(
    config: Config,
    exchange: Any,
    strategies: Sequence[Strategy],
    *,
    tracer: Tracer | None = None,
    label: str = "strategy",
    speed: float = 1.0,
    poll_seconds: float | None = None,
    run_nonce: str | None = None,
    recorder: JournalRecorder | None = None,
    own_perps: Collection[str] = (),
    dry_run: bool = False,
) -> LiveRun:
    """Markets, pairs, account, in that order; the run, or StartupError if off.
    ``own_perps``: perp symbols whose positions a resumed run's journal holds (its
    own, not another's). ``dry_run``: paper fills on the live market; only the
    venue's public data is read (no key, no account)."""
    try:
        await read(exchange.load_markets)
        instruments = check_markets(exchange, config.pair_list)
        pairs = [
            PairRun(p, instruments[p.spot], instruments[p.perp], s)
            for p, s in zip(config.pair_list, strategies, strict=True)
        ]
        legs = [(r.spot, r.perp) for r in pairs]
        # Read-only until the account is known to take the run's orders.
        if dry_run:
            shape = public_terms(exchange, legs, config.fees)
        else:
            shape = await check_account(exchange, legs, config.fees)
        for run in pairs:
            terms = shape.terms[run.perp.symbol]
            # Its own interval, as a replay's instrument has it (the ranking annualises
            # with it).
            run.perp = msgspec.structs.replace(
                run.perp, funding_interval_hours=terms.interval_hours
            )
            if isinstance(run.strategy, FundingStrategy):
                run.strategy.adopt(terms.fees, terms.interval_hours)
        account = None if dry_run else LiveAccount(exchange, [run.perp.symbol for run in pairs])
        skipped: list[str] = []
        if account is not None:
            await account.refresh()
            for run in pairs:
                foreign = account.get_perp_position(run.perp.symbol)
                if foreign.size and run.perp.symbol not in own_perps:
                    # Not this run's: reported and left alone, and so is its pair.
                    run.ended = True
                    skipped.append(
                        f"{run.perp.symbol}: the account already holds {foreign.size} "
                        f"contracts at {foreign.entry_price} that this run did not open; "
                        f"left alone, and {run.name} is not traded"
                    )
        return LiveRun(
            config,
            exchange,
            pairs,
            account,
            tracer=tracer,
            label=label,
            speed=speed,
            poll_seconds=config.live.poll_seconds if poll_seconds is None else poll_seconds,
            run_nonce=run_nonce or new_run_nonce(),
            skipped=skipped,
            shape=shape,
            recorder=recorder,
        )
    except ccxt.BaseError as exc:
        raise StartupError(
            f"live run not started, nothing sent: the venue could not be used: "
            f"{describe(exchange, exc)}"
        ) from None
