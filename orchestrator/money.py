"""The Decimal context money is computed in.

Python's default context keeps 28 significant digits and rounds silently beyond
them: a quantity step of 1e-30 times a price, or years of funding amounts summed
into a six-figure balance, need more, and one rounded sum breaks the ledger's
identity. In this context the products and sums that make up money (fills, fees,
funding, balances, ledger totals) are exact for any input the loaders accept.
Divisions (budgets, averages, drift) still round, as they must; a quantity that
came from one is rounded down to the instrument's step before it becomes money.
"""

from __future__ import annotations

import decimal
from contextlib import AbstractContextManager

MONEY = decimal.Context(
    prec=200,  # libmpdec's cost follows the digits a number has, not this limit
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def exact() -> AbstractContextManager[decimal.Context]:
    """``with exact(): ...`` computes money in MONEY (tasks started inside inherit it)."""
    return decimal.localcontext(MONEY)
