"""What a run is made of, whatever feeds it: each pair's part (``PairRun``), what a run
returns (``RunResult``), and what the trading loop (trader.py) needs of its
surroundings: a stop flag, the account, the journal that keeps the money."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import anyio

from orchestrator.config import Pair
from orchestrator.exceptions import OrchestratorError, RunMustStop
from orchestrator.execution.paper import PerpHolding
from orchestrator.models import ZERO, Instrument, Position
from orchestrator.strategy.funding import Strategy
from orchestrator.trading.curve import Curve
from orchestrator.trading.ledger import Ledger, LedgerEntry
from orchestrator.trading.margin import MarginLine

HOUR_MS = 3_600_000


Progress = Callable[[int, int], None]  # (done, in all): events in a replay, hours live


class StopFlag(Protocol):
    """Set from outside (a signal handler) to end the run at the next instant."""

    def is_set(self) -> bool: ...


class MoneyJournal(Protocol):
    """Where the ledger and the paper balances are made durable (the run's journal)."""

    def record_ledger(self, label: str, entries: Sequence[LedgerEntry]) -> None: ...

    def record_balances(
        self, label: str, wallet: dict[str, Decimal], perps: dict[str, tuple[Decimal, Decimal]]
    ) -> None: ...

    def record_meta(self, key: str, value: str) -> None: ...


class Readings(Protocol):
    """A venue's account read now and then (live/account.py): which reading is the last
    to have come, counted by when each began."""

    reads_begun: int
    read_through: int


class Account(Protocol):
    """The account as the run values it: the PaperExecutor, or the venue's last reading."""

    def balance(self, currency: str) -> Decimal: ...

    def available_balance(self, currency: str) -> Decimal: ...

    def get_perp_position(self, symbol: str) -> PerpHolding: ...


# repr=False: asyncio puts the task's result in a message at shutdown; a default repr
# of a long run's records took seconds and hundreds of MiB.
@dataclass(eq=False, repr=False)
class PairRun:
    """One pair's part of a run: its strategy, its position, and what happened."""

    pair: Pair
    spot: Instrument
    perp: Instrument
    strategy: Strategy
    position: Position | None = None
    close_requested: anyio.Event = field(default_factory=anyio.Event)
    released: anyio.Event = field(default_factory=anyio.Event)
    opened: int = 0  # positions started, for ids
    entries: list[tuple[int, str]] = field(default_factory=list)  # (time ms, reason)
    exits: list[tuple[int, str]] = field(default_factory=list)
    funding_rates: list[tuple[int, Decimal]] = field(default_factory=list)
    cash: Decimal = ZERO  # fills, fees and funding so far: the pair's PnL when flat
    # Spot its finished positions left, each below the minimum order size, so not sold
    # (a buy's fee is charged in the coin): (position id, quantity). Still the account's,
    # valued at the last price in the equity and marked at the end (books.py).
    dust: list[tuple[str, Decimal]] = field(default_factory=list)
    pnl: Curve = field(default_factory=Curve)  # hourly, held legs at price
    # The pair's own window: from its first event to the last instant both its
    # prices are known. Its positions are closed there, not when the run ends.
    first_ms: int = -1
    end_ms: int = -1
    ended: bool = False
    # The available balance at which no position could be sized: nothing is tried
    # again until it changes.
    starved_at: Decimal | None = None
    # A portfolio limit (risk.max_open_positions, risk.max_total_exposure_usd) refused its
    # open: (positions, exposure) open then. Not tried again until fewer are open or they
    # hold less: a limit reached is said once, and is no failure of the breaker.
    limited_at: tuple[int, Decimal] | None = None
    # The breaker: failures in a row, and why the pair opens (or closes) nothing more.
    failed_opens: int = 0
    failed_closes: int = 0
    open_paused: str | None = None
    close_paused: str | None = None
    busy: bool = False  # an open or close of it is under way (decided concurrently)
    # The margin guard (margin.py): the held short's prices of warning and acting (a
    # paper account's model), whether it was warned, a close the guard asked for (the
    # venue's own figure, live), and the highest ratio seen while holding (None: never
    # held).
    margin_line: MarginLine | None = None
    margin_warned: bool = False
    margin_due: str | None = None
    worst_margin: Decimal | None = None

    @property
    def name(self) -> str:
        return self.pair.name

    @property
    def dust_held(self) -> Decimal:
        """The spot all its finished positions left (``dust``), together."""
        return sum((qty for _, qty in self.dust), ZERO)


@dataclass(eq=False, repr=False)
class RunResult:
    label: str
    quote: str
    start_ms: int
    end_ms: int
    starting_balance: Decimal
    ending_balance: Decimal  # the wallet, in the quote currency
    ending_equity: Decimal  # the wallet plus what is still held, at the last prices
    ledger: Ledger
    positions: list[Position]
    pairs: list[PairRun]
    equity: Curve  # hourly: wallet plus what is held, at its price
    events: int
    interrupted: bool
    notes: list[str]  # what the run decided that a reader must know (said once each)
    # A stopped run: what became of the positions open when the stop came.
    stopped: str | None = None
    # pairs: auto: each held position closed for a better pair, and why.
    rotations: list[str] = field(default_factory=list)
    # A live run stopped because the venue refused its API key: why.
    refused: str | None = None


@contextlib.contextmanager
def stopping_whole() -> Iterator[None]:
    """A RunMustStop raised in a position's task arrives in an ExceptionGroup from the
    run's task group: it is raised as itself, to be told as it is."""
    try:
        yield
    except BaseExceptionGroup as group:
        must = group.subgroup(RunMustStop)
        if must is None:
            raise
        first: BaseException = must
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def quote_of(pairs: Sequence[PairRun]) -> str:
    """The one quote currency every pair trades in (the ledger is kept in it)."""
    quotes = {run.spot.quote for run in pairs} | {run.perp.quote for run in pairs}
    if len(quotes) != 1:
        raise OrchestratorError(f"all pairs must share one quote currency, got {sorted(quotes)}")
    return quotes.pop()
