"""The sweep folder: what a sweep writes as it goes, and reads back on ``--resume``.

``sweeps/<id>/`` holds the sweep file and its base config as used (``sweep.yaml``,
``base.yaml``, ``meta.json``: where they were, and a hash of the data), then
``trials.csv``: one row per finished trial, appended and flushed as each
finishes, so a sweep stopped anywhere (Ctrl-C, ``kill -9``) keeps every trial it
finished; ``--resume`` runs only the others. Every figure is the exact Decimal
text of the run's summary. The equity curves of the test windows go to
``curves.jsonl`` (written before their row). At the end both are rewritten in
the plan's order, atomically, and ``summary.json``, ``chart.html`` and
``best.yaml`` are written the same way.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec

from orchestrator.run import files
from orchestrator.run.report import Figures, Summary
from orchestrator.sweep.trial import Curve, TrialResult
from orchestrator.sweep.windows import Window, iso
from orchestrator.sweep.yamlfile import SweepError

TRIALS = "trials.csv"
CURVES = "curves.jsonl"
META = "meta.json"
SWEEP_COPY = "sweep.yaml"
BASE_COPY = "base.yaml"
LOCK = ".lock"
FIGURES = [f.encode_name for f in msgspec.structs.fields(Figures)]


class TrialInfo(msgspec.Struct, frozen=True):
    """What a trial is, in the plan: its row's first columns."""

    trial: str
    kind: str  # train | test | base
    step: str
    set: int | None  # the parameter set's index (train and test)
    window: Window
    params: tuple[str, ...]  # each swept setting's value, as text


class Meta(msgspec.Struct, frozen=True):
    id: str
    sweep_file: str  # where the sweep file was (its relative paths)
    base_config: str  # where the base config was (data.dir and output.dir resolve there)
    data_dir: str
    data_hash: str
    created: str


class CurveLine(msgspec.Struct, frozen=True):
    trial: str
    equity: Curve
    baseline: Curve


def header(paths: Sequence[str], pairs: Sequence[str]) -> list[str]:
    parts = ["total", *pairs]
    return [
        "trial",
        "kind",
        "step",
        "set",
        "window_start",
        "window_end",
        *paths,
        "objective",
        "excess_return",
        "drawdown_ok",
        *(f"{part}.{name}" for part in parts for name in FIGURES),
        *(f"baseline.{part}.{name}" for part in parts for name in FIGURES),
        "events",
        "starting_balance",
        "ending_equity",
        "ledger_balances",
        "baseline_ledger_balances",
        "positions",
        "baseline_positions",
        "alerts",
    ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _states(states: dict[str, int] | None) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted((states or {}).items()))


def row_of(
    info: TrialInfo, summary: Summary, objective: Decimal, excess: Decimal, ok: bool
) -> dict[str, str]:
    row = {
        "trial": info.trial,
        "kind": info.kind,
        "step": info.step,
        "set": "" if info.set is None else str(info.set),
        "window_start": iso(info.window.start_ms),
        "window_end": iso(info.window.end_ms),
        "objective": str(objective),
        "excess_return": str(excess),
        "drawdown_ok": _text(ok),
        "events": str(summary.events),
        "starting_balance": str(summary.starting_balance),
        "ending_equity": str(summary.ending_equity),
        "ledger_balances": _text(summary.ledger_balances),
        "baseline_ledger_balances": _text(summary.baseline_ledger_balances),
        "positions": _states(summary.positions),
        "baseline_positions": _states(summary.baseline_positions),
        "alerts": " | ".join(summary.alerts),
    }
    runs: list[tuple[str, dict[str, Figures] | None, Figures | None]] = [
        ("", summary.pairs, summary.total),
        ("baseline.", summary.baseline, summary.baseline_total),
    ]
    for prefix, pairs, total in runs:
        parts = {"total": total, **(pairs or {})}
        for part, figures in parts.items():
            if figures is None:
                continue
            for name, value in msgspec.structs.asdict(figures).items():
                row[f"{prefix}{part}.{'return' if name == 'return_' else name}"] = _text(value)
    return row


class Folder:
    """A sweep's folder, locked by this process while it runs (a second is refused)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None
        self._trials: IO[str] | None = None
        self._curves: IO[str] | None = None
        self._writer: Any = None
        self.columns: list[str] = []

    @classmethod
    def create(cls, path: Path, meta: Meta, sweep_text: str, base_text: str) -> Folder:
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise files.OutputError(f"sweep folder {path}: {files.describe(exc)}") from None
        folder = cls(path)
        folder.lock()
        files.write_text(path / SWEEP_COPY, sweep_text)
        files.write_text(path / BASE_COPY, base_text)
        files.write_bytes(path / META, msgspec.json.format(msgspec.json.encode(meta)))
        return folder

    def lock(self) -> None:
        handle = (self.path / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise SweepError(
                f"{self.path}: the sweep is being run by {holder}; nothing was started"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def meta(self) -> Meta:
        try:
            return msgspec.json.decode((self.path / META).read_bytes(), type=Meta)
        except (OSError, msgspec.DecodeError) as exc:
            raise SweepError(f"{self.path}: not a sweep folder ({META}: {exc})") from None

    # -- trials.csv and curves.jsonl, appended as trials finish

    def open(self, columns: list[str]) -> tuple[list[dict[str, str]], dict[str, CurveLine]]:
        """Open the files for appending; the rows and curves already recorded (resume)."""
        self.columns = columns
        rows = self._recorded_rows(columns)
        kept = {row["trial"] for row in rows}
        curves = {c.trial: c for c in self._recorded_curves() if c.trial in kept}
        self._rewrite_curves(list(curves.values()))
        self._trials = (self.path / TRIALS).open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._trials, columns, lineterminator="\n")
        if not rows:
            self._writer.writeheader()
            self._trials.flush()
        self._curves = (self.path / CURVES).open("a", encoding="utf-8")
        return rows, curves

    def _recorded_rows(self, columns: list[str]) -> list[dict[str, str]]:
        path = self.path / TRIALS
        if not path.exists():
            return []
        text = _whole_lines(path)
        if not text.strip():
            path.write_text("", encoding="utf-8")
            return []
        reader = csv.reader(io.StringIO(text))
        found = next(reader)
        if found != columns:
            raise SweepError(
                f"{path}: its columns are not those of this sweep's file (was the sweep file "
                "in the folder changed?); nothing was started"
            )
        rows = []
        for line, values in enumerate(reader, start=2):
            if len(values) != len(columns):
                raise SweepError(f"{path}:{line}: {len(values)} values, expected {len(columns)}")
            rows.append(dict(zip(columns, values, strict=True)))
        return rows

    def _recorded_curves(self) -> list[CurveLine]:
        path = self.path / CURVES
        if not path.exists():
            return []
        found = []
        decoder = msgspec.json.Decoder(CurveLine)
        for line in _whole_lines(path).splitlines():
            with contextlib.suppress(msgspec.DecodeError):
                found.append(decoder.decode(line))
        return found

    def _rewrite_curves(self, curves: list[CurveLine]) -> None:
        files.write_bytes(self.path / CURVES, b"".join(_curve_line(c) for c in curves))

    def append(self, row: dict[str, str], result: TrialResult | None = None) -> None:
        assert self._trials is not None
        assert self._curves is not None
        if result is not None and (result.equity or result.baseline_equity):
            line = CurveLine(row["trial"], result.equity, result.baseline_equity)
            self._curves.write(_curve_line(line).decode())
            self._curves.flush()
        self._writer.writerow(row)
        self._trials.flush()

    def finish(self, rows: list[dict[str, str]], curves: list[CurveLine]) -> list[str]:
        """Rewrite both files in the plan's order, atomically; what could not be written."""
        self.close_files()
        problems = []
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        for name, data in (
            (TRIALS, buffer.getvalue().encode()),
            (CURVES, b"".join(_curve_line(c) for c in curves)),
        ):
            try:
                files.write_bytes(self.path / name, data)
            except OSError as exc:
                problems.append(f"could not write {name}: {files.describe(exc)}")
        return problems

    def write(self, name: str, data: bytes) -> str | None:
        try:
            files.write_bytes(self.path / name, data)
        except OSError as exc:
            return f"could not write {name}: {files.describe(exc)}"
        return None

    def close_files(self) -> None:
        for handle in (self._trials, self._curves):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._trials = self._curves = None

    def close(self) -> None:
        self.close_files()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()
            self._lock = None


def _curve_line(line: CurveLine) -> bytes:
    return msgspec.json.encode(line) + b"\n"


def _whole_lines(path: Path) -> str:
    """The file's text up to its last newline: a line cut off by a kill is dropped, and
    the file truncated to match, so appending carries on from a whole line."""
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut != len(data):
        with path.open("r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    return data.decode("utf-8")
