"""The two ways the live path runs: against Bybit (``mode: live``), and rehearsed
against the loopback venue on the recorded data (``orchestrator rehearse``).

Both build the ccxt client with ``make_exchange`` from the config's ``live:``
timing and hand it to ``LiveRun``: the same code path, only the URL differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
from opentelemetry.trace import Tracer

from orchestrator.config import Config
from orchestrator.execution.bybit import credentials, make_exchange
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.resume import Journaled, reconcile
from orchestrator.live.run import LiveRun
from orchestrator.market.recorded import PairData
from orchestrator.models import Instrument
from orchestrator.run.engine import Replay, RunResult, StopFlag
from orchestrator.strategy.funding import AlwaysHedged, Strategy

HOUR_MS = 3_600_000
Strategies = Callable[[Config], list[Strategy]]


async def live_session(
    config: Config,
    strategies: Strategies,
    stop: StopFlag,
    tracer: Tracer | None,
    *,
    recorder: JournalRecorder | None = None,
    run_nonce: str | None = None,
    resumed: Journaled | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> RunResult:
    """Trade on Bybit (``config.network``) until stopped. Keys from the environment.
    ``resumed``: what the journal of the run being resumed holds, reconciled with the
    venue before anything is sent."""
    key, secret = credentials()  # a clear error before anything is sent
    exchange = make_exchange(
        key, secret, config.live.timing, network=config.network, url=config.live.url
    )
    try:
        run = await LiveRun.connect(
            config,
            exchange,
            strategies(config),
            tracer=tracer,
            recorder=recorder,
            run_nonce=run_nonce,
            own_perps={p.perp_symbol for p in resumed.unfinished} if resumed else (),
        )
        run.say = say
        if resumed is not None:
            await reconcile(run, resumed)
            taken = ", ".join(f"{p.id} ({p.state})" for _, p in run.restored) or "none"
            say(
                f"reconciled with the venue: journal and venue agree; unfinished positions: {taken}"
            )
        return await run.run(stop)
    finally:
        await exchange.close()


@dataclass(frozen=True)
class Rehearsal:
    """What to rehearse: ``hours`` of recorded market time from ``start_ms``, with
    ``faults`` (a fault spec file for the venue) if any.

    The market clock is compressed and moves in lockstep with the run: one
    recorded hour per read-decide cycle, so a cycle never reads one leg's price
    from one hour and the other's from the next."""

    start_ms: int
    hours: int
    faults: Path | None = None

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.hours * HOUR_MS


def window(datasets: Sequence[PairData], start_ms: int, end_ms: int) -> list[PairData]:
    """The recorded data known between the two times (a candle is known at its close)."""
    return [
        msgspec.structs.replace(
            d,
            spot=[c for c in d.spot if start_ms <= c.open_time_ms + HOUR_MS <= end_ms],
            perp=[c for c in d.perp if start_ms <= c.open_time_ms + HOUR_MS <= end_ms],
            funding=[f for f in d.funding if start_ms <= f.time_ms <= end_ms],
        )
        for d in datasets
    ]


async def rehearse(
    config: Config,
    data_dir: Path,
    datasets: Sequence[PairData],
    instruments: dict[str, Instrument],
    strategies: Strategies,
    rehearsal: Rehearsal,
    stop: StopFlag,
    tracer: Tracer | None,
    *,
    recorder: JournalRecorder | None = None,
    run_nonce: str | None = None,
) -> tuple[RunResult, RunResult]:
    """The live path against the loopback venue replaying the recorded data, then the
    always-hedged baseline replayed on paper over the same window."""
    from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, Venue, load_faults

    faults = load_faults(rehearsal.faults) if rehearsal.faults is not None else None
    venue = Venue(
        data_dir=data_dir,
        recorded=True,
        start_ms=rehearsal.start_ms,
        balances=dict(config.balances),
        slippage=config.paper.slippage,
        spot_fee_rate=config.fees.spot_taker,
        perp_fee_rate=config.fees.perp_taker,
        leverage=config.live.leverage,
        faults=faults,
    )
    async with venue:
        exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, config.live.timing, url=venue.url)
        try:
            run = await LiveRun.connect(
                config,
                exchange,
                strategies(config),
                tracer=tracer,
                label="rehearsal",
                speed=0.0,  # the market's time stands still within a cycle
                poll_seconds=0.0,
                recorder=recorder,
                run_nonce=run_nonce,
            )
            clock = venue.recorded
            assert clock is not None

            async def next_hour() -> None:
                venue.advance_to(min(clock.clock_ms + HOUR_MS, clock.end_ms))

            result = await run.run(
                stop, until_ms=min(rehearsal.end_ms, clock.end_ms), after_cycle=next_hour
            )
        finally:
            await exchange.close()
    baseline = await Replay(
        config,
        window(datasets, rehearsal.start_ms, min(rehearsal.end_ms, result.end_ms)),
        instruments,
        [AlwaysHedged() for _ in config.pairs],
        label="always hedged",
    ).run(stop=stop)
    return result, baseline
