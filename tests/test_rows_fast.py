"""The fast way through a recorded file against the careful way (csv.reader, row by
row), on randomly damaged files: the same rows kept, the same duplicates and notes,
or the same error at the same line."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market import rows
from orchestrator.market.parsers import (
    FUNDING_COLUMNS,
    KLINE_COLUMNS,
    FundingNotes,
    candle_parser,
    funding_parser,
)
from orchestrator.market.records import DataError, parse_interval
from orchestrator.market.rows import FileRows, _Place
from orchestrator.market.stamps import iso_times, regular_times

START = datetime(2024, 1, 1, tzinfo=UTC)


class Careful(FileRows[Any]):
    """Every row the careful way."""

    def chunks(self) -> Iterator[Any]:
        yield from self._careful(_Place())


def stamp(moment: datetime, suffix: str = "Z") -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + suffix


def test_regular_times_are_what_times_reads() -> None:
    rng = random.Random(5)
    for _ in range(400):
        step = rng.choice([60_000, 300_000, 3_600_000, 8 * 3_600_000, 86_400_000])
        suffix = rng.choice(["Z", "+00:00"])
        first = START + timedelta(milliseconds=step * rng.randrange(0, 200_000))
        if rng.random() < 0.1:  # off the step
            first += timedelta(seconds=rng.choice([1, 30, 60]))
        n = rng.randrange(1, 800)
        stamps = [stamp(first + timedelta(milliseconds=step * i), suffix) for i in range(n)]
        if rng.random() < 0.5:  # a gap, a repeat, another shape, a bad stamp
            i = rng.randrange(n)
            stamps[i] = rng.choice(
                [
                    stamp(first + timedelta(milliseconds=step * (i + 1)), suffix),
                    stamps[i - 1],
                    stamps[i].replace("Z", "+00:00") if suffix == "Z" else stamps[i][:-6] + "Z",
                    stamps[i][:-1],
                    stamps[i].replace("T", " "),
                    stamps[i] + "0",
                ]
            )
        found = regular_times(stamps, step)
        if found is not None:
            assert found == iso_times(stamps)
            assert len(found) == n


def candle_text(rng: random.Random, n: int, step: timedelta) -> list[str]:
    lines = [",".join(KLINE_COLUMNS)]
    close = 1000 + rng.randrange(100)
    for i in range(n):
        o = close
        close = max(1, o + rng.randrange(-3, 4))
        h, lo = max(o, close) + rng.randrange(2), max(1, min(o, close) - rng.randrange(2))
        values = [f"{x / 10:.1f}" for x in (o, h, lo, close)]
        lines.append(
            f"{stamp(START + i * step)},{','.join(values)},{rng.choice(['1.5', '2', '0.25'])},"
            "bybit,BTCUSDT,spot,0"
        )
    return lines


def funding_text(rng: random.Random, n: int) -> list[str]:
    lines = [",".join(FUNDING_COLUMNS)]
    for i in range(n):
        rate = rng.choice(["0.0001", "-0.00002", "0", "0.00035"])
        lines.append(f"{stamp(START + timedelta(hours=8 * i))},{rate},BTCUSDT,bybit")
    return lines


BAD_NUMBERS = ["0", "-1", "1e13", "NaN", "sNaN", "abc", "1_0", " 5", "1E-13", "Infinity", "-0"]
BAD_RATES = ["0", "-0", "1e-13", "0.06", "-0.2", "2", "NaN", "x", "-0.0E-8", "1E-999999"]


def damage(rng: random.Random, lines: list[str], funding: bool) -> None:
    for _ in range(rng.randrange(0, 4)):
        i = rng.randrange(1, len(lines))
        cells = lines[i].split(",")
        what = rng.randrange(6)
        if what == 0:  # a repeat, exact or not
            lines.insert(i, lines[i - 1] if rng.random() < 0.7 else lines[i - 1] + "0")
        elif what == 1:  # a number that may not be one, or out of bounds
            column = 1 if funding else rng.randrange(1, 6)
            cells[column] = rng.choice(BAD_RATES if funding else BAD_NUMBERS)
            lines[i] = ",".join(cells)
        elif what == 2:  # a time out of place or of another shape
            cells[0] = rng.choice(
                [
                    cells[0].replace("Z", "+00:00"),
                    cells[0].replace(":00:00Z", ":30:00Z"),
                    cells[0][:-1],
                    "1704067200000",
                    lines[max(1, i - 2)].split(",")[0],
                ]
            )
            lines[i] = ",".join(cells)
        elif what == 3:  # another symbol, or a column too many
            lines[i] = (
                lines[i].replace("BTCUSDT", "ETHUSDT") if rng.random() < 0.5 else lines[i] + ",x"
            )
        elif what == 4:  # a line dropped: a gap
            del lines[i]
        else:  # a blank line
            lines.insert(i, "")


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_way_reads_as_the_careful_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(rows, "PIECE_CHARACTERS", 2048)  # many pieces
    monkeypatch.setattr(rows, "_READ_BYTES", 1024)
    rng = random.Random(seed)
    funding = seed % 3 == 0
    lines = funding_text(rng, 300) if funding else candle_text(rng, 300, timedelta(hours=1))
    if seed % 2:
        damage(rng, lines, funding)
    gz = seed % 4 == 1
    path = tmp_path / f"f.csv{'.gz' if gz else ''}"
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    parse = (
        funding_parser("BTCUSDT")
        if funding
        else candle_parser(
            "BTCUSDT",
            "spot",
            parse_interval("1h"),  # type: ignore[arg-type]
        )
    )
    columns = FUNDING_COLUMNS if funding else KLINE_COLUMNS

    def read(kind: type[FileRows[Any]]) -> tuple[object, ...]:
        notes = FundingNotes(path) if funding else None
        file = kind(path, columns, parse, notes)
        try:
            found: object = list(file)
        except DataError as exc:
            found = str(exc)
        extra = (notes.beyond, notes.off_hour) if notes is not None else ()
        return found, file.duplicates, extra

    assert read(FileRows) == read(Careful)
