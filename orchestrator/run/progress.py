"""The replay's progress bar."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, label: str, out: TextIO) -> None:
        self._label, self._out = label, out
        self._tty = out.isatty()
        self._last_decile = -1
        self._started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        decile = int(frac * 10)
        if not self._tty and decile == self._last_decile:
            return
        self._last_decile = decile
        bar = "#" * int(frac * 30)
        elapsed = time.perf_counter() - self._started
        line = (
            f"{self._label:14} [{bar:<30}] {frac:6.1%}  {done:,}/{total:,} events  {elapsed:5.1f} s"
        )
        self._out.write(("\r" + line) if self._tty else line + "\n")
        if self._tty and done >= total:
            self._out.write("\n")
        self._out.flush()
