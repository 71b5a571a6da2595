"""The live session (``mode: live``): the ccxt client built with ``make_exchange`` from
the config's ``live:`` timing, handed to ``LiveRun``, reconciled with the journal first
when resuming. The rehearsal (rehearsal.py) runs the same ``LiveRun`` against the
loopback venue: the same code path, only the URL differs.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import Tracer

from orchestrator.bybit.client import credentials, make_exchange
from orchestrator.config import Config
from orchestrator.control import ControlBox
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.resume import Journaled, reconcile
from orchestrator.live.run import LiveRun
from orchestrator.strategy.funding import Strategy
from orchestrator.trading.run import RunResult, StopFlag

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
    control: ControlBox | None = None,
    close_on_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Trade on Bybit (``config.network``) until stopped. Keys from the environment;
    a dry run (``mode: paper``, ``market: live``) fills on paper at the live prices.
    ``resumed``: what the journal of the run being resumed holds, reconciled with the
    venue before anything is sent. ``control``: the operator's requests, taken every
    cycle; ``close_on_stop``: whether a stop closes every position (the emergency
    stop), whatever ``live.on_stop`` says."""
    # A dry run reads only the venue's public data: it needs no key, and has none.
    key, secret = ("", "") if config.dry_run else credentials()
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
            dry_run=config.dry_run,
        )
        run.say = say
        run.control, run.close_on_stop = control, close_on_stop
        if resumed is not None:
            await reconcile(run, resumed)
            taken = ", ".join(f"{p.id} ({p.state})" for _, p in run.restored) or "none"
            say(
                f"reconciled with the venue: journal and venue agree; unfinished positions: {taken}"
            )
        return await run.run(stop)
    finally:
        await exchange.close()
