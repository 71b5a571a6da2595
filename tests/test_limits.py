"""Bybit's request budgets kept by the project: the two legs of a pair wait together."""

from __future__ import annotations

import anyio
import trio.testing

from orchestrator.execution.limits import RateLimiter

SPOT, LINEAR = ("order/create", "spot"), ("order/create", "linear")


def on_virtual_time(test: object) -> None:
    anyio.run(
        test,
        backend="trio",
        backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
    )  # type: ignore[arg-type]


def test_a_pair_waits_for_both_budgets_and_leaves_together() -> None:
    async def scenario() -> None:
        limiter = RateLimiter({SPOT: 20, LINEAR: 10})
        starts = []
        for _ in range(21):
            await limiter.wait_all([SPOT, LINEAR])
            starts.append(anyio.current_time())
        # Ten pairs at once; the linear budget is spent, so the 11th pair (both legs)
        # waits for the rolling second, then ten more, then the 21st waits again.
        assert starts[9] - starts[0] < 0.001
        assert 1.0 <= starts[10] - starts[0] < 1.001
        assert starts[20] - starts[10] >= 1.0

    on_virtual_time(scenario)


def test_a_single_request_waits_only_for_its_own_budget() -> None:
    async def scenario() -> None:
        limiter = RateLimiter({LINEAR: 2})
        for _ in range(2):
            await limiter.wait(*LINEAR)
        before = anyio.current_time()
        await limiter.wait(*SPOT)  # another budget: no wait
        assert anyio.current_time() == before
        await limiter.wait(*LINEAR)  # the third linear create in one second waits
        assert anyio.current_time() - before >= 1.0

    on_virtual_time(scenario)
