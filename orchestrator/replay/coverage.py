"""Warnings about how the recorded data covers the run: a perp series shorter than
its spot, funding shorter than prices, one pair's data starting or ending long
before another's."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.market.recorded import PairData, market_id

HOUR_MS = 3_600_000
# Differences of coverage up to this are normal (a candle's hour, a settlement).
COVERAGE_TOLERANCE_MS = 24 * HOUR_MS


def _iso(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M}"


def _hours(ms: int) -> str:
    hours = ms / HOUR_MS
    text = f"{hours:,.0f} h"
    return text + f" ({hours / 24:,.0f} days)" if hours >= 48 else text


def coverage_warnings(datasets: list[PairData]) -> list[str]:
    """Series of one pair, or pairs, that start or end more than a day apart.

    Within a pair: the perp candles against the spot candles (and the other way
    round), the funding rates against the perp candles. Between pairs: the window
    where both of a pair's prices are known; each pair's positions are closed at
    the end of its own data.
    """
    warnings: list[str] = []
    windows: list[tuple[str, int, int]] = []
    late_start = "the pair trades only once both prices are known"
    early_end = (
        "the pair's positions are closed at the end of its own data, where both prices "
        "are last known"
    )
    for data in datasets:
        if not data.spot or not data.perp:
            continue
        name = market_id(data.spot_symbol)
        spot = (data.spot[0].open_time_ms, data.spot[-1].open_time_ms)
        perp = (data.perp[0].open_time_ms, data.perp[-1].open_time_ms)
        series = [
            ("perp candles", perp, "its spot candles", spot, late_start, early_end),
            ("spot candles", spot, "its perp candles", perp, late_start, early_end),
        ]
        if data.funding:
            funding = (data.funding[0].time_ms, data.funding[-1].time_ms)
            series.append(
                (
                    "funding rates",
                    funding,
                    "its perp candles",
                    perp,
                    "no funding is known before",
                    "no funding is collected after",
                )
            )
        for noun, (first, last), other, (other_first, other_last), after, before in series:
            if first - other_first > COVERAGE_TOLERANCE_MS:
                warnings.append(
                    f"{name}: {noun} start at {_iso(first)}, {_hours(first - other_first)} "
                    f"after {other} ({_iso(other_first)}): {after}"
                )
            if other_last - last > COVERAGE_TOLERANCE_MS:
                warnings.append(
                    f"{name}: {noun} end at {_iso(last)}, {_hours(other_last - last)} "
                    f"before {other} ({_iso(other_last)}): {before}"
                )
        windows.append((name, max(spot[0], perp[0]), min(spot[1], perp[1])))
    if len(windows) < 2:
        return warnings
    first_name, first_start, _ = min(windows, key=lambda w: w[1])
    last_name, _, last_end = max(windows, key=lambda w: w[2])
    for name, start, end in windows:
        if start - first_start > COVERAGE_TOLERANCE_MS:
            warnings.append(
                f"{name}: its data starts at {_iso(start)}, {_hours(start - first_start)} "
                f"after {first_name}'s ({_iso(first_start)}): it trades only from then"
            )
        if last_end - end > COVERAGE_TOLERANCE_MS:
            warnings.append(
                f"{name}: its data ends at {_iso(end)}, {_hours(last_end - end)} before "
                f"{last_name}'s ({_iso(last_end)}): each pair's positions are closed at the "
                "end of its own data"
            )
    return warnings
