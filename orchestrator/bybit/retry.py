"""The one retry policy for reads from a venue through ccxt."""

from __future__ import annotations

import socket
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


def venue_failure(exc: BaseException, attempts: int) -> str:
    """A venue read's failure in the words every command uses: a network error's cause
    (it was retried) then ccxt's text; any other ccxt error by its name."""
    if isinstance(exc, ccxt.NetworkError):
        tries = f"{attempts} attempt{'s' * (attempts > 1)}"
        return f"gave up after {tries}: {network_cause(exc)}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def network_cause(exc: BaseException) -> str:
    """What a network error comes down to, in words: ccxt's message is the request's URL
    and the library's text, which does not say whether the name, the port or the wait
    failed."""
    if isinstance(exc, ccxt.RequestTimeout):
        return "no answer in time (timeout)"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "the venue's host name could not be resolved (DNS)"
        if isinstance(seen, ConnectionRefusedError):
            return "the connection was refused (nothing listens there)"
        if isinstance(seen, TimeoutError):
            return "no answer in time (timeout)"
        os_error = getattr(seen, "os_error", None)  # aiohttp's connector errors
        if isinstance(os_error, BaseException) and os_error is not seen:
            seen = os_error
            continue
        seen = seen.__cause__ or seen.__context__
    return "a network error"
