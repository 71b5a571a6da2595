"""The progress bar of long work: the replay's, the rehearsal's."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal; otherwise a line every 10 %,
    or nothing with ``pipe=False`` (a rehearsal in a pipe stays quiet)."""

    def __init__(self, label: str, out: TextIO, *, unit: str = "events", pipe: bool = True) -> None:
        self._label, self._out, self._unit = label, out, unit
        self._tty = out.isatty()
        self._pipe = pipe
        self._last_decile = -1
        self._started = time.perf_counter()

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
        if self._tty and done >= total:
            self._out.write("\n")
        self._out.flush()
