"""The one retry policy for reads from a venue through ccxt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import ccxt
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

T = TypeVar("T")


async def retry_network_errors(
    call: Callable[[], Awaitable[T]], *, attempts: int, base_delay: float, max_delay: float
) -> T:
    """``call()``, again after a ccxt.NetworkError, up to ``attempts`` times, with
    exponential backoff and jitter; the last error is raised as it came.

    Only network errors: a predicate that matched more could swallow cancellation.
    Never for order creation, whose failure is ambiguous (look the order up instead).
    """
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=base_delay, max=max_delay, jitter=base_delay),
        retry=retry_if_exception_type(ccxt.NetworkError),
        sleep=anyio.sleep,
        reraise=True,
    ):
        with attempt:
            result = await call()
    return result


async def read_venue(call: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """A live run's read (prices, funding, account), with the run's backoff."""
    return await retry_network_errors(call, attempts=attempts, base_delay=0.2, max_delay=3.0)
