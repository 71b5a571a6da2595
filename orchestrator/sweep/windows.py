"""Walk-forward windows: train on some months, test on the months after, move on.

Windows are in calendar months from the start of the data (or ``walk_forward.start``):
step k trains on ``[start + k x step, + train)`` (rolling) or ``[start, ...)``
(anchored) and tests on the ``test_months`` after its train window. Test windows
lie inside the data; the last may be cut short where the data ends, when it keeps
at least half of ``test_months``. After the last step comes ``next``: a train
window ending where the data ends, whose choice is ``best.yaml``; its future is
not in the data, so it has no test.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from orchestrator.config import parse_time
from orchestrator.market.recorded import PairData
from orchestrator.sweep.spec import Span, Step, WalkForward
from orchestrator.sweep.yamlfile import Invalid

HOUR_MS = 3_600_000
NEXT = "next"


class Window(msgspec.Struct, frozen=True):
    start_ms: int  # inclusive: rows stamped at or after it
    end_ms: int  # exclusive

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ms / 1000, UTC)

    def label(self) -> str:
        return f"{stamp(self.start_ms)} to {stamp(self.end_ms)}"


class WalkStep(msgspec.Struct, frozen=True):
    name: str  # "1", "2", ... or "next"
    train: Window
    test: Window | None  # None for "next": its test is the future


def stamp(ms: int) -> str:
    """A window edge: the date, with the time when it is not midnight."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return (
        f"{moment:%Y-%m-%d}" if moment.time() == datetime.min.time() else f"{moment:%Y-%m-%d %H:%M}"
    )


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def data_span(datasets: Sequence[PairData]) -> tuple[int, int]:
    """(first row, end of the last hour with both prices of some pair), in ms."""
    firsts: list[int] = []
    ends: list[int] = []
    for data in datasets:
        firsts += [rows[0] for rows in _stamps(data) if rows]
        if data.spot and data.perp:
            ends.append(min(data.spot[-1].open_time_ms, data.perp[-1].open_time_ms) + HOUR_MS)
    if not firsts or not ends:
        return 0, 0
    return min(firsts), max(ends)


def _stamps(data: PairData) -> list[list[int]]:
    return [
        [c.open_time_ms for c in data.spot[:1]],
        [c.open_time_ms for c in data.perp[:1]],
        [f.time_ms for f in data.funding[:1]],
    ]


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the month's last day when it is shorter)."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(text: str, where: str) -> int:
    try:
        moment = parse_time(text)
    except ValueError:
        raise Invalid(
            where, f"{text!r} is not an ISO date or time, e.g. '2024-07-01' or '2024-07-01T08:00Z'"
        ) from None
    if not 1970 <= moment.year < 2100:
        raise Invalid(where, f"{text!r} is outside the years 1970 to 2099")
    return _ms(moment)


def plan(walk: WalkForward, span: tuple[int, int]) -> list[WalkStep]:
    """The walk-forward steps over the data's span; Invalid naming walk_forward.* when
    they do not fit, overlap, or leave the data."""
    first, last = span
    if walk.windows is not None:
        return _listed(walk.windows, first, last)
    assert walk.train_months is not None
    assert walk.test_months is not None
    start_ms, end_ms = first, last
    if walk.start is not None:
        start_ms = _time(walk.start, "walk_forward.start")
        if start_ms < first:
            raise Invalid(
                "walk_forward.start", f"{walk.start} is before the data begins ({stamp(first)})"
            )
    if walk.end is not None:
        end_ms = _time(walk.end, "walk_forward.end")
        if end_ms > last:
            raise Invalid("walk_forward.end", f"{walk.end} is after the data ends ({stamp(last)})")
    if end_ms <= start_ms:
        raise Invalid("walk_forward.end", f"{walk.end} is not after the start {stamp(start_ms)}")
    origin = datetime.fromtimestamp(start_ms / 1000, UTC)
    steps: list[WalkStep] = []
    k = 0
    while True:
        test_start = add_months(origin, walk.train_months + k * walk.step)
        test_end = add_months(origin, walk.train_months + k * walk.step + walk.test_months)
        if _ms(test_start) >= end_ms:
            break
        cut = _ms(test_end) > end_ms
        if cut:
            # The last test window, cut at the end of the data: kept when it holds at
            # least half of test_months (the data rarely ends on a window's edge).
            if (end_ms - _ms(test_start)) * 2 < _ms(test_end) - _ms(test_start):
                break
            test_end = datetime.fromtimestamp(end_ms / 1000, UTC)
        train_start = origin if walk.window == "anchored" else add_months(origin, k * walk.step)
        steps.append(
            WalkStep(
                str(k + 1),
                Window(_ms(train_start), _ms(test_start)),
                Window(_ms(test_start), _ms(test_end)),
            )
        )
        k += 1
        if cut:
            break
    if not steps:
        months = walk.train_months + walk.test_months
        raise Invalid(
            "walk_forward",
            f"train_months {walk.train_months} + test_months {walk.test_months} = {months} "
            f"months do not fit in the data ({stamp(start_ms)} to {stamp(end_ms)}, "
            f"{_months_between(start_ms, end_ms)})",
        )
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    next_start = origin if walk.window == "anchored" else add_months(end, -walk.train_months)
    steps.append(WalkStep(NEXT, Window(max(_ms(next_start), start_ms), end_ms), None))
    return steps


def _months_between(start_ms: int, end_ms: int) -> str:
    days = (end_ms - start_ms) / 86_400_000
    return f"about {days / 30.44:.1f} months"


def _listed(listed: list[Step], first: int, last: int) -> list[WalkStep]:
    steps: list[WalkStep] = []
    previous_test_end: int | None = None
    for i, step in enumerate(listed):
        where = f"walk_forward.windows[{i}]"
        train = _span(step.train, f"{where}.train", first, last)
        test = _span(step.test, f"{where}.test", first, last)
        if test.start_ms < train.end_ms:
            raise Invalid(
                f"{where}.test.start",
                f"{step.test.start} is before its train window ends ({step.train.end}): the "
                "test window must not overlap the train window (it would be judged on months "
                "it was chosen on)",
            )
        if previous_test_end is not None and test.start_ms < previous_test_end:
            raise Invalid(
                f"{where}.test.start",
                f"{step.test.start} is before the previous step's test window ends "
                f"({stamp(previous_test_end)}): test windows must follow one another",
            )
        previous_test_end = test.end_ms
        steps.append(WalkStep(str(i + 1), train, test))
    return steps


def _span(span: Span, where: str, first: int, last: int) -> Window:
    start = _time(span.start, f"{where}.start")
    end = _time(span.end, f"{where}.end")
    if end <= start:
        raise Invalid(f"{where}.end", f"{span.end} is not after the start {span.start}")
    if start < first:
        raise Invalid(f"{where}.start", f"{span.start} is before the data begins ({stamp(first)})")
    if end > last:
        raise Invalid(f"{where}.end", f"{span.end} is after the data ends ({stamp(last)})")
    return Window(start, end)
