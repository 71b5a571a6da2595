from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # python-statemachine's async engine and our code run on asyncio.
    return "asyncio"
