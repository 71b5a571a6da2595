"""The rehearsal session (``orchestrator rehearse``): the live path, ccxt and the
LiveExecutor included, against the loopback venue replaying the recorded data, then the
always-hedged baseline replayed on paper over the same window. It composes the live
session's ``LiveRun`` and the replay's ``Replay``: the one session above both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer

from orchestrator.bybit.client import make_exchange
from orchestrator.config import Config
from orchestrator.control import ControlBox
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.session import Strategies, journaling
from orchestrator.live.startup import connect
from orchestrator.market.recorded import DataError, PairData
from orchestrator.models import Instrument
from orchestrator.replay.engine import Replay
from orchestrator.replay.window import cut
from orchestrator.strategy.funding import AlwaysHedged
from orchestrator.trading.run import Progress, RunResult, StopFlag
from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, Venue
from orchestrator.venue.faults import FaultSpec

if TYPE_CHECKING:
    from orchestrator.alerts.sender import Alerts

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Rehearsal:
    """What to rehearse: ``hours`` of recorded market time from ``start_ms``, with
    ``faults`` (the venue's fault spec, read from its file before the run) if any.

    The window is the one a replay's ``data.start``/``data.end`` cut (window.py): the
    candles opening in ``[start, end)``, the settlements after the start and by the
    end, the rates settled by the start warming the strategy up. The market clock is
    compressed and moves in lockstep with the run: one recorded hour per read-decide
    cycle, so a cycle never reads one leg's price from one hour and the other's from
    the next."""

    start_ms: int
    hours: int
    faults: FaultSpec | None = None

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.hours * HOUR_MS


def _iso(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"


def plan(
    datasets: Sequence[PairData],
    start_ms: int | None,
    hours: int | None,
    faults: FaultSpec | None = None,
) -> tuple[Rehearsal, list[str]]:
    """The rehearsal of the recorded data asked for, and what was changed to fit it
    (said before it runs). The venue replays the hours every pair has: from the last
    first candle to the first last one. DataError when no hour of it is left."""
    first = max(max(d.spot[0].open_time_ms, d.perp[0].open_time_ms) for d in datasets)
    end = min(min(d.spot[-1].open_time_ms, d.perp[-1].open_time_ms) for d in datasets) + HOUR_MS
    notes: list[str] = []
    start = first if start_ms is None else start_ms
    if start % HOUR_MS:  # the market steps an hour at a time, from a whole hour
        start += HOUR_MS - start % HOUR_MS
        notes.append(f"the rehearsal starts at the next whole hour, {_iso(start)}")
    if start < first:
        notes.append(
            f"--start {_iso(start)} is before the recorded data; "
            f"the rehearsal starts at its first hour, {_iso(first)}"
        )
        start = first
    if start >= end:
        raise DataError(
            f"nothing to rehearse: the start {_iso(start)} is not before the end of the "
            f"recorded data every pair has, {_iso(end)}"
        )
    if hours is not None and hours <= 0:
        raise DataError(f"nothing to rehearse: --hours {hours} is not a positive number")
    most = (end - start) // HOUR_MS
    if hours is not None and hours > most:
        notes.append(
            f"--hours {hours} runs past the recorded data: {most} hours rehearsed, to {_iso(end)}"
        )
    return Rehearsal(start, most if hours is None else min(hours, most), faults), notes


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
    progress: Progress | None = None,
    control: ControlBox | None = None,
    close_on_stop: Callable[[], bool] = lambda: False,
    alerts: Alerts | None = None,
) -> tuple[RunResult, RunResult]:
    """The live path against the loopback venue replaying the recorded data, then the
    always-hedged baseline replayed on paper over the same window. ``control``,
    ``close_on_stop`` and ``alerts``: as for the live session (the rehearsal's alerts
    are the live run's, on the market's clock: a daily summary every 24 hours of it)."""

    venue = Venue(
        data_dir=data_dir,
        recorded=True,
        start_ms=rehearsal.start_ms,
        balances=dict(config.balances),
        slippage=config.paper.slippage,
        spot_fee_rate=config.fees.spot_taker,
        perp_fee_rate=config.fees.perp_taker,
        leverage=config.live.leverage,
        faults=rehearsal.faults,
    )
    assert venue.recorded is not None
    venue.recorded.end_at(rehearsal.end_ms)  # the window's data, as a replay of it loads it
    if alerts is not None:
        alerts.start()
        alerts.on_raised = journaling(recorder)
    async with venue:
        exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, config.live.timing, url=venue.url)
        try:
            run = await connect(
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
            run.control, run.close_on_stop = control, close_on_stop
            if alerts is not None:
                run.alert, alerts.hold_while = alerts.send, run.acting
                run.where = "the rehearsal's loopback venue (recorded data)"
            clock = venue.recorded
            assert clock is not None

            async def next_hour() -> None:
                venue.advance_to(min(clock.clock_ms + HOUR_MS, clock.end_ms))

            result = await run.run(
                stop,
                until_ms=min(rehearsal.end_ms, clock.end_ms),
                after_cycle=next_hour,
                progress=progress,
            )
        finally:
            await exchange.close()
            notes = await alerts.aclose() if alerts is not None else []
    result.notes.extend(notes)
    # The same window on paper, cut by the same rule (window.py).
    strategy = config.strategy
    cut_data, cut_window = cut(
        datasets,
        rehearsal.start_ms,
        min(rehearsal.end_ms, result.end_ms),
        max(strategy.funding_window, strategy.negative_streak),
    )
    baseline = await Replay(
        config,
        cut_data,
        instruments,
        [AlwaysHedged() for _ in config.pair_list],
        label="always hedged",
        window=cut_window,
    ).run(stop=stop)
    return result, baseline
