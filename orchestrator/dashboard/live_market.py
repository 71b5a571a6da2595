"""The market page on a live or dry-run config: the venue's market now, as
``orchestrator screen`` reads it (public data, no key, the venue's rate limits kept:
universe/live.py), read in the background so that no page waits on the venue.

A read starts when the page is asked for and the last one is older than ``FRESH_S``;
the page says how far it has got (the funding histories of hundreds of pairs take a
while) and shows the last complete read meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from orchestrator.config import Config
from orchestrator.dashboard.market import Market, add_heat
from orchestrator.output.screen import records
from orchestrator.universe.live import PairFailure, UniverseError, facts_now
from orchestrator.universe.rank import rank

FRESH_S = 300.0  # a read older than this is started again when the page is asked for


@dataclass
class Reading:
    market: Market | None  # the last complete read, if any
    status: str  # what the reader is doing, or when it last read
    busy: bool  # a read under way (the page refreshes itself)


class LiveMarket:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.market: Market | None = None
        self.read_at: float | None = None  # monotonic, the last complete read
        self.done = self.total = 0
        self.problem: str | None = None
        self._failed_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def view(self) -> Reading:
        """What there is now; starts a read (in the running loop) when the last one,
        done or failed, is older than FRESH_S and none is under way."""
        now = time.monotonic()
        busy = self._task is not None and not self._task.done()
        last = max((t for t in (self.read_at, self._failed_at) if t is not None), default=None)
        if not busy and (last is None or now - last > FRESH_S):
            self.done = self.total = 0
            self._task = asyncio.get_running_loop().create_task(self._read())
            busy = True
        if busy:
            of = f"{self.done} of {self.total} pairs" if self.total else "the market list"
            status = f"reading the venue's market now: {of}"
        elif self.problem is not None:
            status = (
                f"the venue's market could not be read: {self.problem}; tried again "
                f"{FRESH_S:.0f} s after"
            )
        else:
            status = (
                f"read {now - (self.read_at or now):.0f} s ago; read again after {FRESH_S:.0f} s"
            )
        return Reading(self.market, status, busy)

    async def _read(self) -> None:
        # ccxt is imported here: a dashboard over replays never loads it.
        from orchestrator.bybit.client import make_exchange

        config, u = self.config, self.config.universe
        exchange = make_exchange(
            "", "", config.live.timing, network=config.network, url=config.live.url
        )
        failures: list[PairFailure] = []

        def progress(done: int, total: int, market: str) -> None:
            self.done, self.total = done, total

        try:
            facts, now_ms = await facts_now(
                exchange, u.history_days, progress=progress, failures=failures
            )
        except (UniverseError, OSError) as exc:
            self.problem, self._failed_at = str(exc), time.monotonic()
            return
        except Exception as exc:  # ccxt's own: said on the page, tried again later
            self.problem, self._failed_at = f"{type(exc).__name__}: {exc}", time.monotonic()
            return
        finally:
            await exchange.close()
        ranked = rank(facts, u, config.fees, config.paper.slippage, now_ms)
        where = config.live.url or f"Bybit {config.network}"
        note = (
            f"the live market of {where}, as `orchestrator screen` ranks it; net/y = mean "
            f"settled rate x 8760 / interval over the last {u.history_days} days, less the "
            f"round trip over {u.horizon_hours} h"
        )
        if failures:
            note += f"; {len(failures)} pairs could not be read: " + "; ".join(
                str(f) for f in failures[:5]
            )
        market = Market(note, now_ms, records(ranked))
        for f in facts:
            add_heat(market, f.market, f.rates, f.interval_hours)
        self.market, self.read_at, self.problem = market, time.monotonic(), None
