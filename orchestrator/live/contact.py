"""Whether the venue answers, said as it changes: the run is never silent about losing
its venue, nor about finding it again.

Times are the machine's wall clock (what the trader's own clock says), in UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

MAX_BACKOFF_SECONDS = 60.0


def _clock(at: float) -> str:
    return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S} UTC"


class VenueContact:
    """The last successful contact, and since when and why the venue does not answer."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self.say = say
        self.clock = clock
        self.last_ok: float | None = None
        self.down_since: float | None = None
        self.cause = ""
        self.failures = 0  # cycles in a row that could not read the venue
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def reached(self) -> None:
        now = self.clock()
        if self.down_since is not None:
            self.say(
                f"the venue answers again, after {now - self.down_since:.0f} s unreachable "
                f"(since {_clock(self.down_since)}); reading prices before any decision"
            )
        self.last_ok, self.down_since, self.failures = now, None, 0

    def lost(self, cause: str) -> None:
        """A cycle's reads failed (each retried): said at once, the first time."""
        self.failures += 1
        self.cause = cause
        if self.down_since is not None:
            return
        self.down_since = self.clock()
        self.outages += 1
        last = f"; last answer {_clock(self.last_ok)}" if self.last_ok else ""
        self.say(
            f"the venue is unreachable since {_clock(self.down_since)}: {cause}{last}. "
            "Positions are left as they are, nothing is opened while prices are stale; "
            "reading again with backoff"
        )

    def wait_seconds(self, poll_seconds: float) -> float:
        """How long until the next cycle: the poll, doubled for each failed cycle in a
        row up to a minute."""
        if not self.failures:
            return poll_seconds
        doubled: float = poll_seconds * 2.0 ** min(self.failures, 16)
        return min(doubled, max(poll_seconds, MAX_BACKOFF_SECONDS))

    def last_contact(self) -> str:
        if self.last_ok is None:
            return "never"
        ago = self.clock() - self.last_ok
        return f"{_clock(self.last_ok)} ({ago:.0f} s ago)"

    def note(self) -> str | None:
        """What the summary says of the outages, if there were any."""
        if not self.outages:
            return None
        still = (
            f"; unreachable at the end, since {_clock(self.down_since)}"
            if self.down_since is not None
            else ""
        )
        return (
            f"the venue was unreachable {self.outages} time(s) during the run; the last "
            f"cause: {self.cause}{still}"
        )
