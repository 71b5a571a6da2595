"""Where trials run: one after another in this process, or on Dask.

Dask (``dask.distributed``) is the engine. By default the sweep starts a local
cluster on 127.0.0.1 (one single-threaded worker process per core, no
dashboard) and stops it at the end; with ``scheduler: tcp://HOST:8786`` the same
trials go to an existing cluster. The in-process loop runs the same function on
the same data: the figures are identical to the last digit.

A worker dying mid-trial is Dask's business: the scheduler runs the trial again
on another worker, and since a trial is a pure function the result is the same.
The sweep says so: the scheduler's remove-worker events name the worker and the
trials it was running (``notices``, and the engine's description).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

import msgspec

from orchestrator.sweep.connect import StopFlag, Stopped, probe
from orchestrator.sweep.trial import (
    DataSource,
    Market,
    TrialResult,
    TrialSpec,
    check_worker,
    run_trial,
)
from orchestrator.sweep.yamlfile import SweepError

# The local cluster: this machine only (every port on 127.0.0.1, chosen by the system),
# one single-threaded worker process per core, no dashboard.
LOCAL_CLUSTER: dict[str, Any] = {
    "threads_per_worker": 1,
    "processes": True,
    "host": "127.0.0.1",
    "scheduler_port": 0,
    "dashboard_address": "127.0.0.1:0",  # its HTTP routes (health, metrics), not 8787
    "scheduler_kwargs": {"dashboard": False},
    "worker_dashboard_address": None,
    "silence_logs": logging.ERROR,
}


LOST_RESULTS = 3  # times a trial's result may be lost with its worker before it counts as failed


class Outcome(msgspec.Struct, frozen=True):
    spec: TrialSpec
    result: TrialResult | None  # None when the trial failed
    error: str | None = None


class Engine(Protocol):
    @property
    def description(self) -> str: ...  # said in the report: where the trials ran (and losses)

    slots: int  # trials that run at once

    def notices(self) -> list[str]:
        """What happened to the engine since the last call (a worker lost), to be said."""
        ...

    def submit(self, spec: TrialSpec) -> None: ...

    def collect(self, timeout: float) -> list[Outcome]:
        """Trials finished (or failed) since the last call; waits up to ``timeout``
        for the first one."""
        ...

    def in_flight(self) -> int: ...

    def cancel(self) -> None:
        """Forget every trial not collected yet (the running ones finish unseen)."""
        ...

    def close(self) -> None: ...


class InProcess:
    """The trials one after another in this process: no Dask at all."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.description = "in this process, one trial after another"
        self.slots = 1
        self._queue: list[TrialSpec] = []

    def submit(self, spec: TrialSpec) -> None:
        self._queue.append(spec)

    def notices(self) -> list[str]:
        return []

    def collect(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        spec = self._queue.pop(0)
        try:
            return [Outcome(spec, run_trial(spec, self.market))]
        except Exception as exc:  # a failed trial is reported, the sweep goes on
            return [Outcome(spec, None, f"{type(exc).__name__}: {exc}")]

    def in_flight(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()


def _ignore_interrupts() -> None:
    """In a local worker process: Ctrl-C at the terminal reaches every process of the
    group; the sweep's own process decides what stops, the workers finish their trial."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Worker processes started meanwhile inherit SIGINT ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Dask:
    """Trials as Dask tasks, on a local cluster this process starts or on an existing one."""

    def __init__(
        self,
        client: Any,
        cluster: Any | None,
        data: DataSource | Any,
        description: str,
        slots: int,
    ) -> None:
        self.client = client
        self.cluster = cluster  # ours to stop; None for a remote cluster
        self.data = data  # the DataSource, or the future of the Market scattered once
        self._description = description
        self.slots = slots
        self._futures: dict[Any, TrialSpec] = {}
        self._lost: dict[Any, int] = {}  # results lost on their way here, by future
        self._token = os.urandom(4).hex()
        # Workers that left unexpectedly, told by the scheduler (in Dask's event thread):
        # (address, the trials it was running, which Dask hands to the other workers).
        self._removed: list[tuple[str, list[str]]] = []
        self._said = 0
        client.subscribe_topic("all", self._event)

    def _event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        if msg.get("expected"):  # closed on purpose (the end of the sweep, a scale-down)
            return
        # Ours among the trials it was running and the results it held not yet collected:
        # the scheduler computes each of them again elsewhere.
        prefix, suffix = "trial-", f"-{self._token}"
        keys = {*(msg.get("processing-tasks") or ()), *(msg.get("lost-computed-tasks") or ())}
        trials = sorted(
            str(key)[len(prefix) : -len(suffix)]
            for key in keys
            if str(key).startswith(prefix) and str(key).endswith(suffix)
        )
        self._removed.append((str(msg.get("worker", "a worker")), trials))

    @property
    def description(self) -> str:
        removed = list(self._removed)
        if not removed:
            return self._description
        rerun = sum(len(trials) for _, trials in removed)
        return (
            f"{self._description}; {len(removed)} worker{'s' * (len(removed) != 1)} lost "
            f"mid-sweep ({', '.join(w for w, _ in removed)}), {rerun} "
            f"trial{'s' * (rerun != 1)} run again on the others"
        )

    def notices(self) -> list[str]:
        removed = self._removed[self._said :]
        self._said += len(removed)
        return [
            f"Dask worker {worker} was lost mid-sweep; "
            + (
                f"the trials it held ({', '.join(trials)}) are run again on the others"
                if trials
                else "it held no trial"
            )
            for worker, trials in removed
        ]

    def submit(self, spec: TrialSpec) -> None:
        future = self.client.submit(
            run_trial, spec, self.data, key=f"trial-{spec.trial}-{self._token}", pure=False
        )
        self._futures[future] = spec

    def collect(self, timeout: float) -> list[Outcome]:
        from distributed import wait

        if not self._futures:
            return []
        try:
            done, _ = wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        outcomes: list[Outcome] = []
        for future in done:
            spec = self._futures[future]
            status = future.status
            if status == "finished":
                try:
                    outcome = Outcome(spec, future.result(timeout=60))
                except Exception as exc:
                    # Its result was lost with its worker on the way here: the scheduler
                    # computes it again. Said as a failure only if that keeps happening.
                    self._lost[future] = self._lost.get(future, 0) + 1
                    if self._lost[future] < LOST_RESULTS:
                        continue
                    outcome = Outcome(spec, None, f"result lost: {type(exc).__name__}: {exc}")
            elif status in ("error", "cancelled"):
                outcome = Outcome(spec, None, _describe_error(future))
            else:
                continue  # finished, then lost with its worker: it is being run again
            outcomes.append(outcome)
            del self._futures[future]
            self._lost.pop(future, None)
            future.release()
        return outcomes

    def in_flight(self) -> int:
        return len(self._futures)

    def cancel(self) -> None:
        if self._futures:
            self.client.cancel(list(self._futures))
        self._futures.clear()
        self._lost.clear()

    def close(self) -> None:
        _quiet()
        with contextlib.suppress(Exception):  # else the scheduler's goodbye finds us gone
            self.client.unsubscribe_topic("all")
        with contextlib.suppress(Exception):
            self.cancel()
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)


class _Never:
    def is_set(self) -> bool:
        return False


def _describe_error(future: Any) -> str:
    if future.status == "cancelled":
        return "cancelled by the scheduler"
    try:
        exc = future.exception(timeout=5)
    except Exception as problem:
        return f"{type(problem).__name__}: {problem}"
    name = type(exc).__name__
    if name == "KilledWorker":
        return f"KilledWorker: every worker that ran it died ({exc})"
    return f"{name}: {exc}"


def _quiet() -> None:
    """Dask's loggers say every start and stop at INFO; only its errors are news here."""
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("distributed", "dask", "tornado"):
            logging.getLogger(name).setLevel(logging.ERROR)


def local_cluster(workers: int) -> Any:
    """A local Dask cluster (``LOCAL_CLUSTER``) whose scratch folder is its own, removed
    once the cluster is gone: Dask's default one in the temporary folder kept its lock
    files after every sweep."""
    import dask
    from distributed import LocalCluster

    scratch = tempfile.mkdtemp(prefix="orchestrator-dask-")
    try:
        # The nannies read the configured folder (local_directory alone is the workers').
        with dask.config.set({"temporary-directory": scratch}):
            cluster = LocalCluster(n_workers=workers, local_directory=scratch, **LOCAL_CLUSTER)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    weakref.finalize(cluster, shutil.rmtree, scratch, ignore_errors=True)
    return cluster


def open_dask(
    scheduler: str | None,
    workers: int | None,
    connect_timeout: float,
    source: DataSource,
    market: Market,
    send_data: bool,
    stop: StopFlag | None = None,
) -> Dask:
    """Start the local cluster (``scheduler`` None) or connect to ``scheduler``; check every
    worker can read the data. SweepError, with nothing left running, when not; Stopped
    when ``stop`` is set while connecting or waiting for workers."""
    from distributed import Client

    _quiet()
    stop = stop or _Never()

    cluster: Any | None = None
    if scheduler is None:
        count = workers or os.cpu_count() or 1
        with _interrupts_ignored():
            cluster = local_cluster(count)
        try:
            client = Client(cluster, timeout=connect_timeout)
        except BaseException:
            cluster.close()
            raise
        description = f"a local Dask cluster of {count} worker process{'es' * (count != 1)}"
    else:
        probe(scheduler, connect_timeout, stop)  # a scheduler greeted: Dask's connect is safe
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except Exception as exc:  # whatever the peer did: refused, timed out, garbled
            raise SweepError(
                f"scheduler: cannot reach the Dask scheduler at {scheduler} within "
                f"{connect_timeout:g} s ({type(exc).__name__}: {exc}); nothing was started"
            ) from None
        description = f"the Dask cluster at {scheduler}"
    try:
        return _ready(
            client, cluster, description, source, market, send_data, connect_timeout, stop
        )
    except BaseException:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
        raise


def _ready(
    client: Any,
    cluster: Any | None,
    description: str,
    source: DataSource,
    market: Market,
    send_data: bool,
    connect_timeout: float,
    stop: StopFlag,
) -> Dask:
    deadline = time.monotonic() + connect_timeout
    while True:  # in short slices: a Ctrl-C while waiting stops at once
        if stop.is_set():
            raise Stopped
        try:
            client.wait_for_workers(1, timeout=max(min(0.2, deadline - time.monotonic()), 0.01))
            break
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise SweepError(
                    f"scheduler: the Dask cluster has no worker (waited {connect_timeout:g} s): "
                    "start some with `dask worker SCHEDULER_ADDRESS`; nothing was started"
                ) from None
    if cluster is not None:
        client.run(_ignore_interrupts)
    if send_data:
        data: Any = client.scatter(market, broadcast=True, hash=False)
    else:
        data = source
        problems = {
            worker: problem
            for worker, problem in client.run(check_worker, source).items()
            if problem is not None
        }
        if problems:
            listed = "; ".join(f"{w}: {p}" for w, p in sorted(problems.items()))
            raise SweepError(
                f"{len(problems)} worker(s) cannot read the data at {source.data_dir}: {listed}. "
                "Give the workers the same data at that path, or set send_data: true; "
                "nothing was started"
            )
    nthreads: dict[str, int] = client.nthreads()
    threads = sum(nthreads.values()) or 1
    if cluster is None:
        count = len(nthreads)
        description += f" ({count} worker{'s' * (count != 1)}, {threads} threads)"
    return Dask(client, cluster, data, description, threads)
