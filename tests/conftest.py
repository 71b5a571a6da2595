from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fake_bybit import FakeBybit, make_exchange


@pytest.fixture
def anyio_backend() -> str:
    # python-statemachine's async engine and our code run on asyncio.
    return "asyncio"


@pytest.fixture
async def exchange(fake: FakeBybit) -> AsyncIterator[Any]:
    """Real ccxt (async bybit) pointed at the module's fake Bybit, closed after the test."""
    client = make_exchange(fake.url)
    try:
        yield client
    finally:
        await client.close()
