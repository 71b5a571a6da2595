"""Stopping on SIGINT, SIGTERM or SIGHUP: the first asks to stop at the next instant,
the second stops at once. Exit codes follow the shell's 128 + the signal's number.
A run also stops on SIGUSR1, closing every position whatever ``live.on_stop`` says
(the emergency stop; ``orchestrator stop --close-all`` asks the same through the run
folder)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CLOSE_ALL_SIGNAL = signal.SIGUSR1


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + signum


class StoppedAtOnce(BaseException):
    """Raised by the second signal's handler: unwinds the run from wherever it is.

    A BaseException, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """The replay's stop flag, set by the first SIGINT, SIGTERM or SIGHUP; the
    second raises StoppedAtOnce; any later one is ignored (already stopping)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.first: int | None = None
        self.second: int | None = None
        self.cause: str | None = None  # why the run stopped itself (stop_for), not a signal
        self.close_all = False  # SIGUSR1: close every position on the way out
        self._when_stopping: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        if not self._stop.is_set():
            return False
        # Told here, in the run's own flow, not in the handler: a handler runs between
        # any two bytecodes, in the middle of a journal write as well.
        callbacks, self._when_stopping = self._when_stopping, []
        for callback in callbacks:
            callback()
        return True

    def when_stopping(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the run first sees that it is to stop."""
        self._when_stopping.append(callback)

    def stop_for(self, cause: str) -> None:
        """The run stops itself as on a first signal (no exit code of a signal)."""
        if self.cause is None:
            self.cause = cause
        self._stop.set()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == CLOSE_ALL_SIGNAL:
            self.close_all = True
        if self.first is None:
            self.first = signum
            self._stop.set()
        elif self.second is None:
            self.second = signum
            raise StoppedAtOnce(signum)


@contextlib.contextmanager
def stop_on_signals(*, close_all: bool = False) -> Iterator[Signals]:
    """Ctrl-C, SIGTERM or SIGHUP ask the replay to stop at the next instant: no new
    positions, open ones closed on the last prices, everything written. A second
    one stops at once. A signal ignored when the process started (``nohup``, a
    background job) stays ignored. ``close_all``: SIGUSR1 too, the emergency stop."""
    signals = Signals()
    previous = {}
    for s in (*HANDLED_SIGNALS, *((CLOSE_ALL_SIGNAL,) if close_all else ())):
        if signal.getsignal(s) is not signal.SIG_IGN:
            previous[s] = signal.signal(s, signals.handle)
    try:
        yield signals
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
