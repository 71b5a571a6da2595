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

``--resume`` takes nothing it cannot check: meta.json holds a hash of the
folder's sweep.yaml and base.yaml (a changed copy is refused), and each row
ends with ``check``, a hash of its values, its curve and the sweep's inputs (an
edited row or curve, or a row of another sweep, is refused). A test-window row
whose curve is lost is dropped and its trial run again (a trial is pure: same
figures). So a resumed sweep is the uninterrupted one, or none.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import os
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec

from orchestrator import files
from orchestrator.sweep.trial import Curve
from orchestrator.sweep.windows import Window, iso
from orchestrator.sweep.yamlfile import SweepError
from orchestrator.trading.figures import Figures, Summary

TRIALS = "trials.csv"
CURVES = "curves.jsonl"
META = "meta.json"
SWEEP_COPY = "sweep.yaml"
BASE_COPY = "base.yaml"
LOCK = ".lock"
CHECK = "check"
FIGURES = [f.encode_name for f in msgspec.structs.fields(Figures)]


class CurveLine(msgspec.Struct, frozen=True):
    trial: str
    equity: Curve
    baseline: Curve


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
    # Hashes of the folder's sweep.yaml and base.yaml as written: --resume refuses copies
    # that changed since (None: a folder from before they were recorded, not resumable).
    sweep_hash: str | None = None
    base_hash: str | None = None

    def inputs(self) -> str:
        """What every trial of this sweep depends on, as one key: each row's check binds
        the row to it, so no row of another sweep (or of an edited one) is taken."""
        return _digest(f"{self.sweep_hash}:{self.base_hash}:{self.data_hash}".encode())


class Recorded(msgspec.Struct):
    """What an earlier session left, checked: the rows to keep and their curves."""

    rows: list[dict[str, str]]
    curves: dict[str, CurveLine]
    rerun: list[str]  # trials whose curve was lost: dropped, to be run again


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
        CHECK,
    ]


def needs_curve(kind: str) -> bool:
    """A test-window trial's row stands only with its equity curve (the stitched result)."""
    return kind != "train"


def file_hash(path: Path) -> str:
    return _digest(path.read_bytes())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def row_check(key: str, columns: Sequence[str], row: dict[str, str], curve: bytes) -> str:
    """A row's check: its every value, its curve and the sweep's inputs, hashed. A row
    edited, a curve changed, or a row from another sweep fails it."""
    values = "\x1f".join(row.get(c, "") for c in columns if c != CHECK)
    return _digest(f"{key}\x1e{values}\x1e".encode() + curve)


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
        self._key = ""

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
        meta = msgspec.structs.replace(
            meta, sweep_hash=file_hash(path / SWEEP_COPY), base_hash=file_hash(path / BASE_COPY)
        )
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
            raise SweepError(
                f"{self.path}: not a sweep folder ({META}: {exc}); nothing was run"
            ) from None

    # -- trials.csv and curves.jsonl, appended as trials finish

    def recorded(self, columns: list[str], key: str) -> Recorded:
        """The rows and curves an earlier session recorded, each row checked against its
        check (``key``: the sweep's inputs); SweepError on a row that fails it. Reads only:
        nothing is changed before the whole record is known good."""
        rows: dict[str, dict[str, str]] = {}
        curves = {c.trial: c for c in self._recorded_curves()}
        rerun = []
        for line, row in self._recorded_rows(columns):
            trial = row["trial"]
            curve = curves.get(trial)
            if needs_curve(row["kind"]) and curve is None:
                rerun.append(trial)  # its curve is lost: the row alone cannot stand
                continue
            data = b"" if curve is None or not needs_curve(row["kind"]) else _curve_line(curve)
            if row[CHECK] != row_check(key, columns, row, data):
                what = "or its curve in curves.jsonl " if data else ""
                raise SweepError(
                    f"{self.path / TRIALS}:{line}: trial {trial!r}: the row {what}is not what "
                    "this sweep recorded (edited, or from another sweep); its figures cannot "
                    "be trusted: start a new sweep; nothing was run"
                )
            rows.setdefault(trial, row)
        kept = {t: c for t, c in curves.items() if t in rows and needs_curve(rows[t]["kind"])}
        return Recorded(list(rows.values()), kept, rerun)

    def open(self, columns: list[str], key: str, recorded: Recorded | None = None) -> None:
        """Write back what is kept (whole lines only) and open both files for appending."""
        self.columns, self._key = columns, key
        kept = recorded or Recorded([], {}, [])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept.rows)
        files.write_bytes(self.path / TRIALS, buffer.getvalue().encode())
        files.write_bytes(self.path / CURVES, b"".join(map(_curve_line, kept.curves.values())))
        self._trials = (self.path / TRIALS).open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._trials, columns, lineterminator="\n")
        self._curves = (self.path / CURVES).open("a", encoding="utf-8")

    def _recorded_rows(self, columns: list[str]) -> list[tuple[int, dict[str, str]]]:
        path = self.path / TRIALS
        if not path.exists():
            return []
        text = _whole_lines(path)
        if not text.strip():
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
                raise SweepError(
                    f"{path}:{line}: {len(values)} values, expected {len(columns)} (edited?); "
                    "nothing was run"
                )
            rows.append((line, dict(zip(columns, values, strict=True))))
        return rows

    def _recorded_curves(self) -> list[CurveLine]:
        path = self.path / CURVES
        if not path.exists():
            return []
        found = []
        decoder = msgspec.json.Decoder(CurveLine)
        for line in _whole_lines(path).splitlines():
            with contextlib.suppress(msgspec.DecodeError):  # a damaged line: its trial reruns
                found.append(decoder.decode(line))
        return found

    def append(self, row: dict[str, str], curve: CurveLine | None = None) -> None:
        """Record a finished trial: its curve first, then its row with its check."""
        assert self._trials is not None
        assert self._curves is not None
        data = b""
        if curve is not None and needs_curve(row["kind"]):
            data = _curve_line(curve)
            self._curves.write(data.decode())
            self._curves.flush()
        row[CHECK] = row_check(self._key, self.columns, row, data)
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
    """The file's text up to its last newline: a line cut off by a kill is dropped (and
    left out when the file is written back)."""
    data = path.read_bytes()
    try:
        return data[: data.rfind(b"\n") + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(f"{path}: not UTF-8 text ({exc}); nothing was run") from None
