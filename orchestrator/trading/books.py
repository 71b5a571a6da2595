"""A run's money, whatever feeds it: the ledger (every fill, fee, slippage and funding
payment, and the marks of what is left), the positions the run made, the hourly equity
and per-pair PnL curves, and what of them the journal holds.

The trader (trader.py) owns one and tells it what happened; the replay and the live
run read it for their reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from machines import FINAL_STATES
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO, OrderResult, Position
from orchestrator.trading.curve import Curve
from orchestrator.trading.ledger import Ledger, LedgerEntry
from orchestrator.trading.margin import ratio as margin_ratio
from orchestrator.trading.run import HOUR_MS, Account, MoneyJournal, PairRun, Readings, quote_of


class Books:
    def __init__(
        self,
        pairs: list[PairRun],
        account: Account,
        ticker: TickerService,
        ledger: Ledger,
        *,
        label: str,
        journal: MoneyJournal | None,
        leverage: Decimal,
        maintenance_margin_rate: Decimal | None,
    ) -> None:
        self.pairs = pairs
        self.quote = quote_of(pairs)
        self.account = account
        self.ticker = ticker
        self.ledger = ledger
        self.label = label
        self.journal = journal
        self._journaled = 0  # ledger entries already in the journal
        # For the highest margin ratio each held short reaches (the summary's headroom).
        self.leverage = leverage
        self.mmr = maintenance_margin_rate
        self.positions: list[Position] = []
        # Hourly samples, compact: at most about 2**16 values of all curves together
        # are held as Decimal objects before they are stored as text (curve.py).
        compact_after = max(1024, 2**16 // (len(pairs) + 1))
        self.equity = Curve(compact_after)
        for run in pairs:
            run.pnl = self.equity.follow()
        # Hears of each hourly equity sample as it is taken (a live run's equity.csv).
        self.on_equity: Callable[[int, Decimal], None] | None = None
        # A live account, read now and then (None: the paper wallet, always current),
        # and the reading under way when the last fill was recorded: until a later one
        # comes, the wallet it shows predates the fill (equity_now).
        self.readings: Readings | None = None
        self._filled_during: int | None = None
        self._valued = [(run, run.spot.symbol, run.perp.symbol) for run in pairs]

    def take_back(self, positions: Sequence[Position], entries: Sequence[LedgerEntry]) -> None:
        """A resumed run: the positions and ledger its journal holds, as if made here.
        Marks are left out: they valued what was held when a run stopped, and this run
        values what it holds when it stops."""
        entries = [e for e in entries if e.kind != "mark"]
        self.positions[:0] = positions
        self.ledger.entries[:0] = entries
        self._journaled += len(entries)
        by_name = {run.name: run for run in self.pairs}
        for entry in entries:
            pair = by_name.get(entry.pair)
            if pair is not None and entry.kind in ("fill", "fee", "funding"):
                pair.cash += entry.amount
        by_symbols = {(run.spot.symbol, run.perp.symbol): run for run in self.pairs}
        for position in positions:
            run = by_symbols.get((position.spot_symbol, position.perp_symbol))
            if run is not None:
                self._left(run, position)

    # -- what happened

    def record(self, now_ms: int, run: PairRun, position: Position, since: int = 0) -> None:
        """The position's orders from ``since`` on (0: a new position, kept)."""
        if since == 0:
            self.positions.append(position)
        self.record_orders(now_ms, run, position, position.orders[since:])

    def record_orders(
        self,
        now_ms: int,
        run: PairRun,
        position: Position,
        results: Sequence[OrderResult],
        quotes: Mapping[str, Decimal] | None = None,
    ) -> None:
        """Each order's fill and fee in the ledger, its slippage against the quote now
        (or the one in ``quotes`` by client order id: the price quoted when it came)."""
        for result in results:
            quote = self.ticker.get_quote(result.symbol)
            reference = quote[0] if quote else result.avg_price or ZERO
            if quotes is not None:
                reference = quotes.get(result.client_order_id, reference)
            run.cash += self.ledger.record_order(now_ms, run.name, position.id, result, reference)
            if result.filled_qty and self.readings is not None:
                self._filled_during = self.readings.reads_begun
        self._left(run, position)
        self.journal_money()

    @staticmethod
    def _left(run: PairRun, position: Position) -> None:
        """A finished position's spot left unsold (dust), counted once."""
        if (
            position.state in FINAL_STATES
            and position.spot_qty > 0
            and all(pid != position.id for pid, _ in run.dust)
        ):
            run.dust.append((position.id, position.spot_qty))

    def funding(
        self,
        time_ms: int,
        run: PairRun,
        position_id: str,
        quantity: Decimal,
        price: Decimal,
        rate: Decimal,
        amount: Decimal,
    ) -> None:
        """A settlement paid to (or charged) the pair's short, in the ledger and its cash;
        journaled at the next journal_money."""
        run.cash += self.ledger.record_funding(
            time_ms, run.name, position_id, run.perp.symbol, quantity, price, rate, amount
        )

    def journal_money(self) -> None:
        """The ledger entries not yet in the journal, and the paper wallet."""
        if self.journal is None or self._journaled == len(self.ledger.entries):
            return
        self.journal.record_ledger(self.label, self.ledger.entries[self._journaled :])
        self._journaled = len(self.ledger.entries)
        if isinstance(self.account, PaperExecutor):  # its balances are the venue's truth
            account = self.account
            self.journal.record_balances(
                self.label, account.get_virtual_balance(), account.held_perps()
            )

    # -- valued

    def sample(self, t: int, *, force: bool, acting: bool) -> None:
        """An hourly sample of the equity (equity_now) and of each pair's PnL (its cash
        plus its open legs at their last prices), in one pass over the pairs; none while
        an open or close is under way (``acting``: the next cycle samples)."""
        if t <= 0 or (not force and (t - self.equity.last_ms < HOUR_MS or acting)):
            return
        quotes, perp_position = self.ticker.quotes, self.account.get_perp_position
        stale = self.stale()
        equity = self.recorded_equity() if stale else self.account.balance(self.quote)
        for run, spot_symbol, perp_symbol in self._valued:
            position = run.position
            if position is None and not run.dust:  # flat: nothing held beyond the wallet
                run.pnl.add(run.cash)
                continue
            spot = quotes.get(spot_symbol)
            spot_last = spot[0] if spot else ZERO
            pnl = run.cash
            if run.dust:
                dust = run.dust_held * spot_last
                equity += ZERO if stale else dust
                pnl += dust
            if position is None:
                run.pnl.add(pnl)
                continue
            perp = quotes.get(perp_symbol)
            perp_last = perp[0] if perp else ZERO
            held = position.spot_qty
            spot_value = held * spot_last  # once, for the PnL and the equity alike
            run.pnl.add(pnl + spot_value - position.perp_qty * perp_last)
            if held and not stale:
                equity += spot_value
            short = perp_position(perp_symbol)
            if short.size and not stale:
                equity += short.size * (perp_last - short.entry_price)
            if run.margin_line is not None and perp_last:
                self._note_margin(run, position, perp_last)
        self.equity.append(t, equity)
        if self.on_equity is not None:
            self.on_equity(t, equity)

    def _note_margin(self, run: PairRun, position: Position, perp: Decimal) -> None:
        """The highest margin ratio the pair's short has reached (summary: headroom)."""
        entry = position.perp_entry_price
        if self.mmr is None or entry is None or position.perp_qty <= 0:
            return  # no short left to guard
        now = margin_ratio(entry, perp, self.leverage, self.mmr)
        if run.worst_margin is None or now > run.worst_margin:
            run.worst_margin = now

    def equity_now(self) -> Decimal:
        """The wallet plus what the positions hold at its last price (and open perp
        PnL), and the spot their closes left below the minimum order size (dust). Other
        coins the account holds are not the run's and are not counted. Where the live
        account's last reading predates the last fill, the run's own record instead."""
        if self.stale():
            return self.recorded_equity()
        equity = self.account.balance(self.quote)
        for run in self.pairs:
            if run.dust:
                equity += run.dust_held * self.last(run.spot.symbol)
            if run.position is None:
                continue  # flat: nothing held beyond the wallet
            held = run.position.spot_qty
            if held:
                equity += held * self.last(run.spot.symbol)
            perp = self.account.get_perp_position(run.perp.symbol)
            if perp.size:
                equity += perp.size * (self.last(run.perp.symbol) - perp.entry_price)
        return equity

    def stale(self) -> bool:
        """Whether the live account's wallet, as last read, predates the last fill (the
        reading after it failed): its cash and the positions would count a fill twice."""
        readings, filled = self.readings, self._filled_during
        return readings is not None and filled is not None and readings.read_through <= filled

    def recorded_equity(self) -> Decimal:
        """The equity from the run's own record, as the ledger's identity has it: the
        starting balance, every fill's, fee's and settlement's cash, and what the
        positions (and their dust) hold at the last prices."""
        equity = self.ledger.starting.get(self.quote, ZERO)
        equity += sum(
            (e.amount for e in self.ledger.entries if e.kind in ("fill", "fee", "funding")),
            ZERO,
        )
        for run in self.pairs:
            spot = self.last(run.spot.symbol)
            equity += run.dust_held * spot
            if run.position is not None:
                equity += run.position.spot_qty * spot
                equity -= run.position.perp_qty * self.last(run.perp.symbol)
        return equity

    def last(self, symbol: str) -> Decimal:
        """The symbol's last price (zero before any)."""
        quote = self.ticker.quotes.get(symbol)
        return quote[0] if quote else ZERO

    def mark_what_is_left(self, now_ms: int) -> None:
        """Value whatever could not be closed at the last price, so the ledger balances
        against the equity; the position's state says it needs the operator. The dust
        finished positions left is valued too, each under its position."""
        for run in self.pairs:
            for position_id, qty in run.dust:
                price = self.last(run.spot.symbol)
                self.ledger.record_mark(now_ms, run.name, position_id, run.spot.symbol, qty, price)
            position = run.position
            if position is None:
                continue
            if position.spot_qty:
                self.ledger.record_mark(
                    now_ms,
                    run.name,
                    position.id,
                    run.spot.symbol,
                    position.spot_qty,
                    self.last(run.spot.symbol),
                )
            if position.perp_qty:
                self.ledger.record_mark(
                    now_ms,
                    run.name,
                    position.id,
                    run.perp.symbol,
                    -position.perp_qty,
                    self.last(run.perp.symbol),
                )
