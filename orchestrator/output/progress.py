"""The progress bar of long work: the replay's, the rehearsal's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal; otherwise a line every 10 %,
    or nothing with ``pipe=False`` (a rehearsal in a pipe stays quiet).

    On a terminal the line stays open while it is redrawn: ``end()`` closes it, so
    that whatever prints next (the next bar, the summary) starts on a line of its
    own even when the replay stopped short of 100 %."""

    def __init__(self, label: str, out: TextIO, *, unit: str = "events", pipe: bool = True) -> None:
        self._label, self._out, self._unit = label, out, unit
        self._tty = out.isatty()
        self._pipe = pipe
        self._last_decile = -1
        self._started = time.perf_counter()
        self._open = False  # a terminal line drawn and not yet ended

    def end(self) -> None:
        if self._open:
            self._open = False
            self._out.write("\n")
            self._out.flush()

    def __call__(self, done: int, total: int) -> None:
        if not self._tty and not self._pipe:
            return
        frac = done / total if total else 1.0
        decile = int(frac * 10)
        if not self._tty and decile == self._last_decile:
            return
        self._last_decile = decile
        bar = "#" * int(frac * 30)
        elapsed = time.perf_counter() - self._started
        line = (
            f"{self._label:14} [{bar:<30}] {frac:6.1%}  {done:,}/{total:,} {self._unit}  "
            f"{elapsed:5.1f} s"
        )
        self._out.write(("\r" + line) if self._tty else line + "\n")
        self._open = self._tty
        if done >= total:
            self.end()
        self._out.flush()


class ProgressBars:
    """The bars of one command, one after another: a new bar, and ``end()``, close
    the line of the one before."""

    def __init__(self, make: Callable[[str], ProgressBar]) -> None:
        self._make = make
        self._last: ProgressBar | None = None

    def __call__(self, label: str) -> ProgressBar:
        self.end()
        self._last = self._make(label)
        return self._last

    def end(self) -> None:
        if self._last is not None:
            self._last.end()
