"""The live session (``mode: live``): the ccxt client built with ``make_exchange`` from
the config's ``live:`` timing, handed to ``LiveRun``, reconciled with the journal first
when resuming. The rehearsal (rehearsal.py) runs the same ``LiveRun`` against the
loopback venue: the same code path, only the URL differs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from opentelemetry.trace import Tracer

from orchestrator.alerts.settings import URLS_ENV
from orchestrator.bybit.client import make_exchange
from orchestrator.config import Config
from orchestrator.control import ControlBox
from orchestrator.exceptions import OrchestratorError
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.live.auto import CHOSEN_PAIRS, choose
from orchestrator.live.resume import Journaled, reconcile
from orchestrator.live.startup import connect
from orchestrator.strategy.funding import Strategy
from orchestrator.trading.run import RunResult, StopFlag

if TYPE_CHECKING:
    from orchestrator.alerts.sender import Alerts

Strategies = Callable[[Config], list[Strategy]]


async def live_session(
    config: Config,
    strategies: Strategies,
    stop: StopFlag,
    tracer: Tracer | None,
    *,
    keys: tuple[str, str] | None,
    recorder: JournalRecorder | None = None,
    run_nonce: str | None = None,
    resumed: Journaled | None = None,
    say: Callable[[str], None] = lambda line: None,
    control: ControlBox | None = None,
    close_on_stop: Callable[[], bool] = lambda: False,
    alerts: Alerts | None = None,
    on_equity: Callable[[int, Decimal], None] | None = None,
) -> RunResult:
    """Trade on Bybit (``config.network``) until stopped. ``keys``: the API key and
    secret, read from the environment once (``credentials``), None for a dry run
    (``mode: paper``, ``market: live``), which fills on paper at the live prices.
    ``resumed``: what the journal of the run being resumed holds, reconciled with the
    venue before anything is sent. ``control``: the operator's requests, taken every
    cycle; ``close_on_stop``: whether a stop closes every position (the emergency
    stop), whatever ``live.on_stop`` says. ``alerts``: started here, drained at the end
    (their notes join the summary's). ``on_equity``: each hourly equity sample as it is
    taken (the run folder's equity.csv)."""
    # A dry run reads only the venue's public data: it needs no key, and has none.
    key, secret = ("", "") if config.dry_run or keys is None else keys
    exchange = make_exchange(
        key, secret, config.live.timing, network=config.network, url=config.live.url
    )
    if alerts is not None:
        alerts.start()
        alerts.on_raised = journaling(recorder)
    try:
        try:
            chosen = None
            if config.auto:
                chosen = await choose(
                    exchange,
                    config,
                    keep={p.perp_symbol for p in resumed.unfinished} if resumed else (),
                    only=resumed.chosen if resumed else None,
                    say=say,
                )
                for line in chosen.lines:
                    say(line)
                config = config.resolved(chosen.pairs)
                if recorder is not None and resumed is None:
                    recorder.record_meta(CHOSEN_PAIRS, chosen.journaled())
            run = await connect(
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
            run.books.on_equity = on_equity
            if chosen is not None:
                run.rank_pairs(chosen.rates)
            run.control, run.close_on_stop = control, close_on_stop
            if alerts is not None:
                run.alert, alerts.hold_while = alerts.send, run.acting
                run.resumed = resumed.how() if resumed is not None else None
            if resumed is not None:
                await reconcile(run, resumed)
                taken = ", ".join(f"{p.id} ({p.state})" for _, p in run.restored) or "none"
                say(
                    "reconciled with the venue: journal and venue agree; unfinished "
                    f"positions: {taken}"
                )
        except OrchestratorError as exc:
            if alerts is not None:
                alerts.send("stopped", f"the run did not start: {exc}")
            raise
        result = await run.run(stop)
    finally:
        await exchange.close()
        notes = await alerts.aclose() if alerts is not None else []
    result.notes.extend(notes)
    return result


def alerts_for(config: Config, err: TextIO) -> Alerts | None:
    """The run's alerts, if the environment names a service (ORCHESTRATOR_ALERT_URLS,
    ``alerts.url_envs``): said now if a URL cannot be used, before anything runs. Their
    lines go to ``err``, each in one write (the worker thread says them)."""
    if not os.environ.get(URLS_ENV, "").strip() and not config.alerts.url_envs:
        return None  # no alerts: apprise is not even imported
    # apprise is imported here, only when alerts are asked for: 0.3 s, and 0.4 s more to
    # load its plugins, that a live run without alerts never pays.
    from orchestrator.alerts.sender import Alerts

    def say(line: str) -> None:
        err.write(f"alerts: {line}\n")
        err.flush()

    return Alerts.from_environment(config.alerts, label="", say=say)


def journaling(recorder: JournalRecorder | None) -> Callable[[str, str], None] | None:
    """Each alert raised, in the journal (``status`` shows them): when, which, its words."""
    if recorder is None:
        return None

    def record(event: str, text: str) -> None:
        now = time.time()
        stamp = f"{datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC"
        recorder.record_meta(f"alert {time.time_ns()}", f"{stamp} {event}: {text}")

    return record
