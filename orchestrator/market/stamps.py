"""The times of recorded rows: ``time_ms`` reads one (ISO-8601 with an offset, or
epoch milliseconds) and says what is wrong with it; the others read a column of them
at once for the fast way through a file (rows.py), giving None unless every one is of
a shape read there and right (then the rows are read one by one, with time_ms)."""

from __future__ import annotations

import re
from datetime import datetime
from operator import add, itemgetter

from orchestrator.market.records import (
    DAY_MS,
    END_MS,
    END_YEAR,
    EPOCH,
    FIRST_MS,
    FIRST_YEAR,
    HOUR_MS,
    MINUTE_MS,
    ONE_MS,
    shown,
)

_MAX_STAMP_DIGITS = 16  # int() refuses over 4,300 digits; 13 is the width of ms until 2286


def time_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 time with an offset, or of epoch milliseconds."""
    if text.isascii() and text.isdigit():
        # Epoch seconds (10 digits) fall before 2009 as milliseconds, microseconds after 2099.
        if len(text) > _MAX_STAMP_DIGITS or not FIRST_MS <= int(text) < END_MS:
            raise ValueError(
                f"timestamp {shown(text, quote=False)} is not epoch milliseconds of a "
                f"plausible date ({FIRST_YEAR} to {END_YEAR - 1})"
            )
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {shown(text)} is neither ISO-8601 (2024-01-01T08:00:00Z) nor "
            "epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone: write UTC as {text}Z")
    # The year first: year 1 at +01:00 cannot even be turned into UTC.
    if not FIRST_YEAR - 1 <= moment.year <= END_YEAR or not (
        FIRST_MS <= (ms := (moment - EPOCH) // ONE_MS) < END_MS
    ):
        raise ValueError(
            f"timestamp {text!r} is outside {FIRST_YEAR} to {END_YEAR - 1}: "
            "not a time of market data"
        )
    return ms


# The fast way's times: ISO-8601 of the usual shape (``2024-01-01T08:00:00Z``) read by
# their date and their time of day, each met once (a day of a series repeats its date
# in every row, every day its times of day). A date is kept only when the shape is
# exactly YYYY-MM-DD, a real day in 2009 to 2099; a time only when it is exactly
# Thh:mm:ssZ (or +00:00), h < 24, m < 60, s < 60: then time_ms reads date + time as
# the sum of the two (tests/test_recorded_data.py checks it). Both stay small: at most
# the days of 2009 to 2099, and the seconds of a day (twice).
_DAYS: dict[str, int] = {}
_CLOCK: dict[str, int] = {}
_DAY_SHAPE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_CLOCK_SHAPE = re.compile(r"T(\d{2}):(\d{2}):(\d{2})(?:Z|\+00:00)", re.ASCII)
_DATE_PART, _CLOCK_PART = itemgetter(slice(0, 10)), itemgetter(slice(10, None))
_WIDE_STAMP = len("2024-01-01T00:00:00+00:00")


def _learn(stamps: list[str]) -> None:
    for date in set(map(_DATE_PART, stamps)) - _DAYS.keys():
        found = _DAY_SHAPE.fullmatch(date)
        if found is None:
            continue
        try:
            day = datetime(int(found[1]), int(found[2]), int(found[3]), tzinfo=EPOCH.tzinfo)
        except ValueError:
            continue
        ms = (day - EPOCH) // ONE_MS
        if FIRST_MS <= ms < END_MS:
            _DAYS[date] = ms
    for clock in set(map(_CLOCK_PART, stamps)) - _CLOCK.keys():
        found = _CLOCK_SHAPE.fullmatch(clock)
        if found is not None:
            h, m, sec = int(found[1]), int(found[2]), int(found[3])
            if h < 24 and m < 60 and sec < 60:
                _CLOCK[clock] = h * HOUR_MS + m * MINUTE_MS + sec * 1000


def iso_times(stamps: list[str]) -> list[int] | None:
    """Epoch milliseconds of every stamp, as time_ms reads each; None unless every one
    is of a shape read here and right (then time_ms says what is wrong)."""
    for attempt in range(2):
        try:
            return list(
                map(
                    add,
                    map(_DAYS.__getitem__, map(_DATE_PART, stamps)),
                    map(_CLOCK.__getitem__, map(_CLOCK_PART, stamps)),
                )
            )
        except KeyError:
            if attempt or max(map(len, stamps)) > _WIDE_STAMP:
                return None
            _learn(stamps)
    return None


# The usual piece of a series: times one step apart, written alike. Its stamps are
# compared, all at once, with the text of the times they should be (a day of stamps per
# step and suffix, ``_PLACE`` where the date goes); equal, they are those times, as
# _times would read them.
_PLACE = "\x00"
_SUFFIXES = ("Z", "+00:00")
_DAY_TEXTS: dict[tuple[int, str], str] = {}
_DATES: dict[int, str] = {}
# Days of stamps with their date, per step of an hour or more (at most 24 stamps a
# day), of the days met lately.
_DAYS_WRITTEN: dict[tuple[int, str, int], str] = {}
_DAYS_WRITTEN_MAX = 4096


def _day_text(step: int, suffix: str) -> str:
    found = _DAY_TEXTS.get((step, suffix))
    if found is None:
        found = _DAY_TEXTS[(step, suffix)] = "".join(
            f"{_PLACE}T{ms // HOUR_MS:02d}:{ms // MINUTE_MS % 60:02d}:{ms // 1000 % 60:02d}"
            f"{suffix},"
            for ms in range(0, DAY_MS, step)
        )
    return found


def _date(day_ms: int) -> str:
    found = _DATES.get(day_ms)
    if found is None:
        found = _DATES[day_ms] = datetime.fromtimestamp(day_ms // 1000, EPOCH.tzinfo).strftime(
            "%Y-%m-%d"
        )
    return found


def _written(step: int, suffix: str, day: int, first: int, end: int) -> str:
    """The stamps ``first`` to ``end`` (excluded) of a day, each with its comma."""
    if step < HOUR_MS:  # only those of a day's many
        template = _day_text(step, suffix)
        size = len(template) * step // DAY_MS
        return template[first * size : end * size].replace(_PLACE, _date(day))
    key = (step, suffix, day)
    found = _DAYS_WRITTEN.get(key)
    if found is None:
        if len(_DAYS_WRITTEN) >= _DAYS_WRITTEN_MAX:
            _DAYS_WRITTEN.clear()
        found = _DAYS_WRITTEN[key] = _day_text(step, suffix).replace(_PLACE, _date(day))
    if first or end < DAY_MS // step:
        size = len(found) * step // DAY_MS
        return found[first * size : end * size]
    return found


def regular_times(stamps: list[str], step: int) -> list[int] | None:
    """The times of stamps ``step`` apart, each written as the first
    (``2024-01-01T08:00:00Z`` or ``+00:00``), as _times reads them; None unless they are
    exactly that (then _times reads them one by one)."""
    first = stamps[0]
    suffix = first[19:]
    if suffix not in _SUFFIXES or step < MINUTE_MS or DAY_MS % step or step % 1000:
        return None
    found = iso_times([first])
    if found is None:
        return None
    start = found[0]
    end = start + len(stamps) * step  # after the last
    if start % step or end - step >= END_MS:
        return None
    parts: list[str] = []
    day = start - start % DAY_MS
    at = start
    while at < end:
        until = min(end, day + DAY_MS)
        parts.append(_written(step, suffix, day, (at - day) // step, (until - day) // step))
        at = day = until
    written = ",".join(stamps)
    expected = parts[0] if len(parts) == 1 else "".join(parts)
    if len(expected) != len(written) + 1 or not expected.startswith(written):
        return None
    return list(range(start, end, step))


def epoch_times(stamps: list[str]) -> list[int] | None:
    """Epoch milliseconds written as integers, as time_ms reads them; None unless all are."""
    if not (
        all(map(str.isascii, stamps))
        and all(map(str.isdigit, stamps))
        and max(map(len, stamps)) <= _MAX_STAMP_DIGITS
    ):
        return None
    found = list(map(int, stamps))
    return found if min(found) >= FIRST_MS and max(found) < END_MS else None
