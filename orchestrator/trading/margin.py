"""The perp short's margin, as a paper account holds it (the replay and the dry run):
its initial margin is the entry notional / leverage, set aside; its maintenance margin
the notional now x the maintenance margin rate; the venue liquidates when the
maintenance margin reaches what is left of the initial margin after the short's loss.
The spot leg is not counted as collateral (a paper account holds it apart), so this is
the cautious reading. A live run reads Bybit's own figure instead (live/run.py).

All per unit of quantity (it cancels): ``ratio`` = maintenance / (initial + PnL);
liquidation at 1. The prices at which the ratio reaches the run's thresholds are worked
out once per position, so the replay compares one price per instant."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orchestrator.models import ZERO

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class MarginLine:
    """The perp prices at which a short's ratio reaches ``warn``, ``act`` and 1."""

    warn: Decimal
    act: Decimal
    liquidation: Decimal

    def due(self, price: Decimal, warned: bool) -> bool:
        """Whether the guard has something to do at ``price``: act, or warn once."""
        return price >= self.act or (price >= self.warn and not warned)


def ratio(entry: Decimal, price: Decimal, leverage: Decimal, mmr: Decimal) -> Decimal:
    """Maintenance margin over what is left of the initial margin, for a short."""
    left = entry / leverage + entry - price
    if left <= ZERO:
        return Decimal("Infinity")  # the loss has taken the whole margin
    return price * mmr / left


def line(
    entry: Decimal, leverage: Decimal, mmr: Decimal, warn: Decimal, act: Decimal
) -> MarginLine:
    """price x mmr = r x (entry / leverage + entry - price), solved for each r."""
    top = entry * (ONE + ONE / leverage)
    return MarginLine(
        warn=warn * top / (mmr + warn),
        act=act * top / (mmr + act),
        liquidation=top / (mmr + ONE),
    )
