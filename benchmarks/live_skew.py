"""Leg skew where the orders arrive: the loopback venue in its own process, real ccxt.

    python benchmarks/live_skew.py [--opens N] [--throttled-opens N] [--burst N]

The venue (``orchestrator venue``) runs in a subprocess on 127.0.0.1, started and
stopped here; this process trades with it through the live path: ccxt's Bybit
client from ``make_exchange`` (url = the venue) and the ``LiveExecutor``. Every
order create is timed by the venue as it arrives (its audit: ``time.time_ns`` and
``time.perf_counter_ns`` before anything else is done with the request), so:

- leg skew = |arrival of the spot create - arrival of the perp create|, both read
  on the venue's perf_counter;
- signal -> both arrived = the later of the two arrivals (the venue's ``time_ns``)
  minus ``time.time_ns()`` taken here just before the open is called (one machine:
  one wall clock for both processes).

Ways of sending the pair of an open (each open is followed by its close):

- manager: ``PositionManager.open_position`` / ``close_position`` over the
  LiveExecutor, ccxt's throttle off: the live path, both legs from one task group;
- sequential: ``LiveExecutor.place_order`` of the spot leg, awaited, then the perp;
- throttled: the manager again with ccxt's throttle on (``enableRateLimit``, Bybit's
  ``rateLimit`` 20 ms): the old configuration, for the record;
- and, to show where the manager's skew comes from, the same concurrent pair with
  less and less of our code before the request leaves: two ``place_order`` calls
  from a plain task group (executor), two ``create_order`` calls straight to ccxt
  (ccxt), two requests signed beforehand and handed to ccxt's HTTP call (pre-signed:
  the floor of this setup: loop, aiohttp, loopback and the venue's own handling).

The LiveExecutor's limiter keeps Bybit's real budgets (10 linear creates a second)
in a live run; here it is given budgets nothing reaches, so 1,000 opens take
seconds, not minutes; it still runs on every request. The burst section then uses
the real budgets. Figures, not asserts: the machine has 2 cores shared with other
work, so the tails are noisy; modes are interleaved in rounds so noise hits all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from orchestrator import Category, Instrument, OrderRequest, PositionManager, Side, TickerService
from orchestrator.bybit.client import make_exchange
from orchestrator.execution.limits import BYBIT_LIMITS, RateLimiter
from orchestrator.execution.live import LiveExecutor
from orchestrator.market.recorded import load_instruments
from orchestrator.position.legs import Action, client_order_id
from orchestrator.position.sizing import round_down
from orchestrator.settings import TradingSettings, VenueTiming
from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET

D = Decimal
ROOT = Path(__file__).resolve().parents[1]
PRICE = D(60000)
BUDGET = D(1000)  # per open: 0.016 BTC at PRICE
QTY = D("0.016")  # what the manager sizes BUDGET to; the bare modes send the same
TIMING = VenueTiming()
SETTINGS = TradingSettings(max_position_size_usd=BUDGET)
THROTTLE_MS = 20  # Bybit's ccxt rateLimit
WARMUP = 20  # lifecycles per mode before the measured ones
TARGET_P99_MS = 1.0


def unlimited() -> RateLimiter:
    """Our limiter with budgets the benchmark never reaches: it runs, never waits."""
    return RateLimiter({key: 10**9 for key in BYBIT_LIMITS}, default=10**9)


# -- the venue in its own process


@dataclass
class VenueProcess:
    url: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as reply:
            return json.load(reply)


@contextmanager
def venue_process(data_dir: Path) -> Iterator[VenueProcess]:
    """``orchestrator venue`` in a subprocess on 127.0.0.1 (its URL is its first stdout
    line), stopped with SIGTERM on the way out."""
    command = [sys.executable, "-m", "orchestrator", "venue", "--port", "0"]
    command += ["--data-dir", str(data_dir), "--price", f"BTCUSDT={PRICE}"]
    command += ["--balance", "USDT=1000000000"]  # never the limit: no balance resets needed
    with (
        tempfile.TemporaryFile(mode="w+") as errors,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http://127.0.0.1:"):
                errors.seek(0)
                raise SystemExit(f"the venue did not start:\n{errors.read()}")
            yield VenueProcess(url)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# -- the ways of sending a pair


@dataclass
class Pair:
    """One pair of creates sent: which client ids, and when the signal was."""

    mode: str
    action: Action
    spot_id: str
    perp_id: str
    signal_ns: int  # time.time_ns() just before the open (or close) was called


@dataclass
class Mode:
    """One way of sending both legs, with its own ccxt client (and so its own
    connections and throttle) and its own run nonce in the client order ids."""

    name: str
    nonce: str  # 6 characters: the client ids' prefix, so the audit tells modes apart
    url: str
    spot: Instrument
    perp: Instrument
    pairs: list[Pair] = field(default_factory=list)
    exchange: Any = None

    async def start(self) -> None:
        self.exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, TIMING, url=self.url)
        await self.exchange.load_markets()

    async def stop(self) -> None:
        await self.exchange.close()

    def ids(self, pid: str, action: Action) -> tuple[str, str]:
        return (
            client_order_id(self.nonce, pid, "spot", action, 1),
            client_order_id(self.nonce, pid, "perp", action, 1),
        )

    async def lifecycle(self, pid: str, record: bool) -> None:
        steps: tuple[tuple[Action, Callable[[str], Awaitable[None]]], ...] = (
            ("open", self.open),
            ("close", self.close),
        )
        for action, send in steps:
            signal_ns = time.time_ns()
            await send(pid)
            if record:
                self.pairs.append(Pair(self.name, action, *self.ids(pid, action), signal_ns))

    async def open(self, pid: str) -> None:
        raise NotImplementedError

    async def close(self, pid: str) -> None:
        raise NotImplementedError

    # The bare modes' requests: the manager's, with a fixed quantity.
    def requests(self, pid: str, action: Action) -> tuple[OrderRequest, OrderRequest]:
        spot_id, perp_id = self.ids(pid, action)
        if action == "open":
            return (
                OrderRequest(self.spot.symbol, Side.BUY, QTY, Category.SPOT, spot_id),
                OrderRequest(self.perp.symbol, Side.SELL, QTY, Category.LINEAR, perp_id),
            )
        # The spot buy's fee is taken in BTC: sell a little less than bought (dust stays).
        held = round_down(QTY * D("0.998"), self.spot.qty_step)
        return (
            OrderRequest(self.spot.symbol, Side.SELL, held, Category.SPOT, spot_id),
            OrderRequest(
                self.perp.symbol, Side.BUY, QTY, Category.LINEAR, perp_id, reduce_only=True
            ),
        )


async def together(*calls: Callable[[], Awaitable[object]]) -> None:
    """Start the calls from one task group, in order, and wait for all."""

    async def run(call: Callable[[], Awaitable[object]]) -> None:
        await call()

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(run, call)


@dataclass
class Manager(Mode):
    throttled: bool = False
    limiter: RateLimiter | None = None
    manager: PositionManager | None = None

    async def start(self) -> None:
        await super().start()
        if self.throttled:  # the old configuration: ccxt paces every request of the client
            self.exchange.enableRateLimit = True
            self.exchange.rateLimit = THROTTLE_MS
        ticker = TickerService(clock=lambda: 1_700_000_000.0)  # a still clock: never stale
        for symbol in (self.spot.symbol, self.perp.symbol):
            ticker.update(symbol, PRICE)
        executor = LiveExecutor(self.exchange, timing=TIMING, limiter=self.limiter or unlimited())
        self.manager = PositionManager(executor, ticker, SETTINGS, run_nonce=self.nonce)

    async def open(self, pid: str) -> None:
        assert self.manager is not None
        position = await self.manager.open_position(self.spot, self.perp, BUDGET, position_id=pid)
        assert position.quantity == QTY, position.quantity

    async def close(self, pid: str) -> None:
        assert self.manager is not None
        await self.manager.close_position(pid)


@dataclass
class Executor(Mode):
    """LiveExecutor.place_order of both legs: from one task group, or one after the other."""

    sequential: bool = False
    executor: LiveExecutor | None = None

    async def start(self) -> None:
        await super().start()
        self.executor = LiveExecutor(self.exchange, timing=TIMING, limiter=unlimited())

    async def _send(self, pid: str, action: Action) -> None:
        executor = self.executor
        assert executor is not None
        spot, perp = self.requests(pid, action)
        if self.sequential:
            await executor.place_order(spot)
            await executor.place_order(perp)
        else:
            await together(lambda: executor.place_order(spot), lambda: executor.place_order(perp))

    async def open(self, pid: str) -> None:
        await self._send(pid, "open")

    async def close(self, pid: str) -> None:
        await self._send(pid, "close")


@dataclass
class Ccxt(Mode):
    """ccxt's create_order for both legs from one task group: no executor, no checks."""

    def _create(self, request: OrderRequest) -> Callable[[], Awaitable[object]]:
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        qty = str(request.quantity)
        return lambda: self.exchange.create_order(
            request.symbol, "market", request.side.value, qty, None, params
        )

    async def open(self, pid: str) -> None:
        await together(*map(self._create, self.requests(pid, "open")))

    async def close(self, pid: str) -> None:
        await together(*map(self._create, self.requests(pid, "close")))


@dataclass
class PreSigned(Mode):
    """Both requests built and signed first, then handed to ccxt's HTTP call (``fetch``)
    from one task group: what is left is the loop, aiohttp, loopback and the venue."""

    def _signed(self, request: OrderRequest) -> Callable[[], Awaitable[object]]:
        body: dict[str, Any] = {
            "category": request.category.value,
            "symbol": "BTCUSDT",
            "side": request.side.value.capitalize(),
            "orderType": "Market",
            "qty": str(request.quantity),
            "orderLinkId": request.client_order_id,
        }
        if request.category is Category.SPOT:
            body["marketUnit"] = "baseCoin"
        if request.reduce_only:
            body["reduceOnly"] = True
        signed = self.exchange.sign("v5/order/create", ["private"], "POST", body)
        args = (signed["url"], signed["method"], signed["headers"], signed["body"])
        return lambda: self._fetch(*args)

    async def _fetch(self, *args: Any) -> None:
        reply = await self.exchange.fetch(*args)
        if reply.get("retCode") != 0:
            raise RuntimeError(f"the venue refused a pre-signed create: {reply}")

    async def open(self, pid: str) -> None:
        await together(*map(self._signed, self.requests(pid, "open")))

    async def close(self, pid: str) -> None:
        await together(*map(self._signed, self.requests(pid, "close")))


# -- figures


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    n: int = 0
    skew_ms: list[float] = field(default_factory=list)
    to_both_ms: list[float] = field(default_factory=list)
    spot_first: int = 0


def figures(pairs: list[Pair], arrivals: dict[str, dict[str, Any]]) -> Figures:
    out = Figures()
    for pair in pairs:
        spot, perp = arrivals.get(pair.spot_id), arrivals.get(pair.perp_id)
        if spot is None or perp is None:
            continue
        out.n += 1
        out.skew_ms.append(abs(spot["arrival_perf_ns"] - perp["arrival_perf_ns"]) / 1e6)
        last = max(spot["arrival_ns"], perp["arrival_ns"])
        out.to_both_ms.append((last - pair.signal_ns) / 1e6)
        out.spot_first += spot["arrival_perf_ns"] <= perp["arrival_perf_ns"]
    return out


def arrivals_by_id(venue: VenueProcess) -> dict[str, dict[str, Any]]:
    creates: list[dict[str, Any]] = venue.get("/admin/requests")["creates"]
    refused = [c for c in creates if c["outcome"] != "placed"]
    if refused:
        print(f"warning: {len(refused)} creates not placed, e.g. {refused[0]}", file=sys.stderr)
    return {c["order_link_id"]: c for c in creates}


# -- in-process cost of a leg before its request leaves (no I/O)


class _Stop(Exception):
    """Raised instead of the HTTP call: the time up to it is what a leg costs locally."""


async def pre_send_costs(url: str, n: int) -> dict[str, float]:
    """Microseconds per call of each step a leg takes before its request leaves, best of 3."""
    exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, TIMING, url=url)
    await exchange.load_markets()

    async def stop(*_: Any, **__: Any) -> Any:
        raise _Stop

    exchange.fetch = stop  # the instance's HTTP call: nothing leaves from here on
    limiter = unlimited()
    executor = LiveExecutor(exchange, timing=TIMING, limiter=limiter)
    request = OrderRequest("BTC/USDT:USDT", Side.SELL, QTY, Category.LINEAR, "abcdef-p1-po1")
    params = {"clientOrderId": request.client_order_id}

    async def place() -> None:
        with contextlib.suppress(_Stop):
            await executor.place_order(request)

    async def create() -> None:
        with contextlib.suppress(_Stop):
            await exchange.create_order(request.symbol, "market", "sell", "0.016", None, params)

    async def precision() -> None:
        exchange.amount_to_precision(request.symbol, request.quantity)

    async def wait() -> None:
        await limiter.wait("order/create", "linear")

    steps: dict[str, Callable[[], Awaitable[None]]] = {
        "LiveExecutor.place_order, up to the HTTP call": place,
        "  of which ccxt create_order (build, sign)": create,
        "  of which amount_to_precision": precision,
        "  of which RateLimiter.wait (the create's budget)": wait,
    }
    costs: dict[str, float] = {}
    for name, step in steps.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                await step()
            best = min(best, (time.perf_counter_ns() - t0) / n / 1000)
        costs[name] = best
    await exchange.close()
    return costs


# -- the run


async def run(venue: VenueProcess, args: argparse.Namespace) -> None:
    instruments = load_instruments(args.data_dir, ["BTC/USDT", "BTC/USDT:USDT"])
    spot, perp = instruments["BTC/USDT"], instruments["BTC/USDT:USDT"]
    at = (venue.url, spot, perp)
    manager = Manager("manager", "mngr01", *at)
    sequential = Executor("sequential", "seqn01", *at, sequential=True)
    throttled = Manager("throttled", "thrt01", *at, throttled=True)
    executor = Executor("executor", "exec01", *at)
    ccxt_mode = Ccxt("ccxt", "ccxt01", *at)
    presigned = PreSigned("pre-signed", "sign01", *at)
    modes: list[Mode] = [manager, sequential, throttled, executor, ccxt_mode, presigned]
    counts = {mode.name: args.opens for mode in modes} | {"throttled": args.throttled_opens}

    for mode in modes:
        await mode.start()
        for i in range(WARMUP if mode is not throttled else 2):
            await mode.lifecycle(f"w{i}", record=False)

    # Interleaved rounds, rotating the order, so the machine's noise hits every mode.
    rounds = max(1, min(args.rounds, args.opens))
    done = dict.fromkeys(counts, 0)
    t0 = time.perf_counter()
    for r in range(rounds):
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
            target = counts[mode.name] * (r + 1) // rounds
            while done[mode.name] < target:
                await mode.lifecycle(f"p{done[mode.name]}", record=True)
                done[mode.name] += 1
    elapsed = time.perf_counter() - t0
    for mode in modes:
        await mode.stop()

    # A burst on the real budgets: opens back to back, no closes.
    burst = Manager("burst", "brst01", *at, limiter=RateLimiter())
    await burst.start()
    for i in range(args.burst):
        signal_ns = time.time_ns()
        await burst.open(f"b{i}")
        burst.pairs.append(Pair("burst", "open", *burst.ids(f"b{i}", "open"), signal_ns))
    await burst.stop()

    costs = await pre_send_costs(venue.url, 2000)
    arrivals = arrivals_by_id(venue)
    report(modes, burst, arrivals, costs, elapsed, args)


def report(
    modes: list[Mode],
    burst: Mode,
    arrivals: dict[str, dict[str, Any]],
    costs: dict[str, float],
    elapsed: float,
    args: argparse.Namespace,
) -> None:
    opens = {m.name: figures([p for p in m.pairs if p.action == "open"], arrivals) for m in modes}
    closes = {m.name: figures([p for p in m.pairs if p.action == "close"], arrivals) for m in modes}
    base = opens["manager"]
    base_p50, base_p99 = pct(base.skew_ms, 0.5), pct(base.skew_ms, 0.99)

    print("Leg skew where the creates arrive: the loopback venue in its own process (127.0.0.1),")
    print(f"real ccxt {versions()}, through make_exchange + LiveExecutor")
    print("(our limiter given budgets it never reaches). skew = |spot create's arrival - perp")
    print("create's|, venue perf_counter; signal->both = later arrival (venue time_ns) - time_ns")
    print("here just before the call. Each open is followed by its close; modes interleaved in")
    print(f"{args.rounds} rounds, {elapsed:.0f} s.")
    print(f"Machine: {os.cpu_count()} cores shared by this process, the venue and other work:")
    print("noisy, the p99s most; p50s vary up to 2x between runs.")
    print()
    print(
        f"{'opens':30}{'n':>5}{'skew p50':>10}{'p99':>8}{'x mgr p50':>11}{'p99':>7}"
        f"{'signal->both p50':>18}{'p99':>8}{'spot 1st':>10}"
    )
    print(f"{'':35}{'ms':>10}{'ms':>8}{'':18}{'ms':>18}{'ms':>8}")
    labels = {
        "manager": "concurrent (manager)",
        "sequential": "sequential (spot, then perp)",
        "throttled": "concurrent, ccxt throttle on",
        "executor": "  executor: 2 place_order",
        "ccxt": "  ccxt: 2 create_order",
        "pre-signed": "  pre-signed: 2 HTTP calls",
    }
    for name, label in labels.items():
        f = opens[name]
        if name == "executor":
            print("the same concurrent pair with less of our code before it leaves:")
        p50, p99 = pct(f.skew_ms, 0.5), pct(f.skew_ms, 0.99)
        print(
            f"{label:30}{f.n:5}{p50:10.3f}{p99:8.3f}{p50 / base_p50:10.1f}x{p99 / base_p99:6.1f}x"
            f"{pct(f.to_both_ms, 0.5):18.3f}{pct(f.to_both_ms, 0.99):8.3f}"
            f"{f.spot_first / max(f.n, 1):10.0%}"
        )
    print("(sequential: the perp waits for the spot's create and fill read, two loopback round")
    print(" trips here, two real ones against Bybit; throttled: back to back, each open starts")
    print(" with ccxt's bucket in debt from the close before; pre-signed: the floor of this setup,")
    print(" the venue stamps a request only once its loop gets to it.)")
    print()
    print("closes (after the manager reads the venue's holdings), skew p50 / p99 ms:")
    print(
        "  "
        + "   ".join(
            f"{n} {pct(c.skew_ms, 0.5):.3f}/{pct(c.skew_ms, 0.99):.3f}" for n, c in closes.items()
        )
    )
    print()
    place = next(iter(costs.values()))
    print("one leg's work in this process before its request leaves (no I/O), us per call:")
    for name, us in costs.items():
        print(f"  {name:52}{us:8.1f}  ({us / place:4.0%})")
    print("(aiohttp writes a request's body from a task it creates: on Python >= 3.12 eagerly,")
    print(" inside the leg's own step, so the second leg's work above lies between the two")
    print(" requests; on 3.11 on a later loop turn, so it mostly delays both.)")
    print()
    b = figures(burst.pairs, arrivals)
    spot_limit = BYBIT_LIMITS[("order/create", "spot")]
    linear_limit = BYBIT_LIMITS[("order/create", "linear")]
    print(
        f"burst: {b.n} opens back to back, no closes, on Bybit's budgets (RateLimiter():\n"
        f"  {spot_limit} spot, {linear_limit} linear creates/s); skew of each, ms:"
    )
    print("  " + " ".join(f"{s:.1f}" for s in b.skew_ms))
    print("(a pair draws on two budgets, spot and linear: the manager takes both at once")
    print(" (Executor.prepare), so when one is spent the pair waits and leaves together)")
    print()
    seq, thr = pct(opens["sequential"].skew_ms, 0.5), pct(opens["throttled"].skew_ms, 0.5)
    print(f"target concurrent leg skew p99 < {TARGET_P99_MS:g} ms:  {base_p99:.3f} ms")
    print(
        f"skew p50, concurrent {base_p50:.3f} ms; sequential {seq:.3f} ms ({seq / base_p50:.0f}x); "
        f"ccxt throttle on {thr:.3f} ms ({thr / base_p50:.0f}x)"
    )


def versions() -> str:
    import aiohttp
    import ccxt

    python = ".".join(map(str, sys.version_info[:3]))
    return f"{ccxt.__version__}, aiohttp {aiohttp.__version__}, Python {python}"


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=1000, help="per mode (default 1000)")
    parser.add_argument(
        "--throttled-opens",
        type=int,
        default=40,
        help="with ccxt's throttle on: ~0.7 s each (default 40)",
    )
    parser.add_argument("--burst", type=int, default=25, help="opens on the real budgets")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("ORCHESTRATOR_DATA") or ROOT.parent / "shared" / "data"),
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, once: that it runs (CI), not figures"
    )
    args = parser.parse_args()
    if args.quick:
        args.opens, args.throttled_opens, args.burst, args.rounds = 20, 4, 4, 2
    with venue_process(args.data_dir) as venue:
        anyio.run(run, venue, args)


if __name__ == "__main__":
    cli()
