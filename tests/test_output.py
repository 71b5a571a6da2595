"""Writing a run's results when the output folder cannot take them.

Before anything runs, `run` and `check` refuse an output folder that cannot be
written (exit 2). When writing fails during the run (disk full, read-only,
immutable, the folder deleted), the table is printed all the same, each file
that could not be written is named, the folder is marked INCOMPLETE when it can
be, and the exit code is 3. No file is ever left half written.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import files
from orchestrator.cli import main
from orchestrator.commands import run as app
from orchestrator.commands.run import EXIT_WRITE_FAILED
from orchestrator.files import INCOMPLETE, PARTIAL_PREFIX
from orchestrator.journal import Journal
from orchestrator.output.progress import ProgressBar
from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
RESULTS = ["summary.json", "ledger.csv", "positions.csv", "chart.html"]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default config on two months of the recorded data (a fast run)."""
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(DATA))
    text = (ROOT / "config.yaml").read_text()
    for old, new in (("start: null", 'start: "2024-01-01"'), ("end: null", 'end: "2024-03-01"')):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def with_output(config: Path, folder: str) -> None:
    text = config.read_text()
    assert "  dir: runs" in text
    config.write_text(text.replace("  dir: runs", f"  dir: {folder}"))


def run(config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = app.run(config, out, err)
    return code, out.getvalue(), err.getvalue()


def the_run_folder(config: Path) -> Path:
    (folder,) = (config.parent / "runs").iterdir()
    return folder


JOURNAL_FILES = {"journal.sqlite3", "journal.lock", "journal.sqlite3-wal", "journal.sqlite3-shm"}


def journal_whole(folder: Path, names: set[str]) -> set[str]:
    """The run's journal, when it has one, opens and reads whole: its file names."""
    present = names & JOURNAL_FILES
    if "journal.sqlite3" in present:
        Journal.read(folder).close()
    return present


def check_whole(folder: Path) -> set[str]:
    """Every file left in the folder is whole; returns their names."""
    names = {p.name for p in folder.iterdir()}
    names -= journal_whole(folder, names)
    assert not [n for n in names if n.startswith(PARTIAL_PREFIX)], names
    if "summary.json" in names:
        assert json.loads((folder / "summary.json").read_text())["run_id"] == folder.name
    for name in ("ledger.csv", "positions.csv"):
        if name in names:
            with (folder / name).open(newline="") as f:
                rows = list(csv.reader(f))
            assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)
    if "chart.html" in names:
        assert (folder / "chart.html").read_text().rstrip().endswith("</html>")
    return names


# -- the atomic writer


def test_a_failed_write_leaves_the_previous_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    files.write_text(target, '{"old": true}')

    def half_then_full(path: Path) -> None:
        path.write_text('{"new": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        files.write_via(target, half_then_full)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_an_atomic_file_gets_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    files.write_text(tmp_path / "a", "x")
    (tmp_path / "b").write_text("x")
    assert (tmp_path / "a").stat().st_mode == (tmp_path / "b").stat().st_mode


# -- an output folder that cannot be written, said before anything runs


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("")
    return str(tmp_path / "a-file" / "runs")


def _in_proc(tmp_path: Path) -> str:
    return "/proc/funding-orchestrator-runs"


def _read_only(tmp_path: Path) -> str:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root: permissions do not stop it
        pytest.skip("permissions do not stop this user writing")
    return str(folder / "runs")


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Make a folder immutable (chattr +i: stops root too); undone at the end."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i not possible here: {done.stderr!r}")
        made.append(folder)

    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    yield make
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


UNWRITABLE = {"under a file": _under_a_file, "in /proc": _in_proc, "read-only": _read_only}


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize("where", [*UNWRITABLE, "immutable"])
def test_an_unwritable_output_folder_is_refused_before_anything_runs(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    immutable: Callable[[Path], None],
    command: str,
    where: str,
) -> None:
    if where == "immutable":
        folder = tmp_path / "immutable"
        folder.mkdir()
        immutable(folder)
        output = str(folder)
    else:
        output = UNWRITABLE[where](tmp_path)
    with_output(config, output)
    assert main([command, str(config)]) == 2
    captured = capsys.readouterr()
    assert f"error: output folder {output}" in captured.err
    assert "OK" not in captured.out
    assert "strategy" not in captured.err  # no replay started
    assert "Traceback" not in captured.err


def test_check_creates_nothing_for_a_folder_yet_to_be_made(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_output(config, "not/yet/runs")
    assert main(["check", str(config)]) == 0
    assert "OK" in capsys.readouterr().out
    assert not (config.parent / "not").exists()
    assert [p.name for p in config.parent.iterdir()] == ["config.yaml"]


# -- writing fails during the run


@pytest.fixture
def fail_writing(monkeypatch: pytest.MonkeyPatch) -> Callable[[set[str], int], None]:
    """Make the atomic writes of these files fail at fsync (where a full disk or a
    read-only remount shows) with this errno; '*' for every file."""

    def fail(names: set[str], code: int) -> None:
        fsync = os.fsync

        def failing_fsync(fd: int) -> None:
            target = os.readlink(f"/proc/self/fd/{fd}")
            base = os.path.basename(target)
            if base.startswith(PARTIAL_PREFIX) and (
                "*" in names or base[len(PARTIAL_PREFIX) :].rsplit("-", 1)[0] in names
            ):
                raise OSError(code, os.strerror(code))
            fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_fsync)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd")
    return fail


def _results_printed(out: str) -> None:
    for needle in ("BTCUSDT", "ETHUSDT", "total", "always hedged", "ledger balances"):
        assert needle in out


@pytest.mark.parametrize("name", RESULTS)
def test_a_full_disk_names_the_file_prints_the_table_and_marks_the_folder(
    config: Path, fail_writing: Callable[[set[str], int], None], name: str
) -> None:
    fail_writing({name}, errno.ENOSPC)
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    assert f"error: could not write {name}: No space left on device (ENOSPC)" in err
    assert "written to" not in out
    folder = the_run_folder(config)
    names = check_whole(folder)
    assert name not in names  # absent, not partial
    assert set(RESULTS) - {name} <= names
    assert f"could not write {name}" in (folder / INCOMPLETE).read_text()
    assert f"{folder} marked {INCOMPLETE}" in err


def test_a_writer_failing_half_way_leaves_no_partial_file(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_a_ledger(path: Path, ledgers: object) -> None:
        path.write_text("run,time_ms,pair,kind\nstrategy,17")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(app, "write_ledgers", half_a_ledger)
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    assert "error: could not write ledger.csv: No space left on device" in err
    folder = the_run_folder(config)
    assert "ledger.csv" not in check_whole(folder)
    assert INCOMPLETE in check_whole(folder)


def test_a_read_only_folder_where_not_even_the_mark_can_be_written(
    config: Path, monkeypatch: pytest.MonkeyPatch, fail_writing: Callable[[set[str], int], None]
) -> None:
    # The file system turns read-only during the run (a remount after disk errors).
    _during_the_run(monkeypatch, config, lambda folder: fail_writing({"*"}, errno.EROFS))
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    for name in RESULTS:
        assert f"error: could not write {name}: Read-only file system (EROFS)" in err
    assert f"could not even be marked {INCOMPLETE}" in err
    folder = the_run_folder(config)
    assert check_whole(folder) == {"config.yaml", "traces.jsonl"}


class _Then(ProgressBar):
    """A progress bar that does something to the run folder once the strategy's
    replay is over (the baseline's starts)."""

    action: Callable[[Path], None] = staticmethod(lambda folder: None)
    done = False

    def __init__(self, label: str, out: object) -> None:
        super().__init__(label, io.StringIO())
        if label == "always hedged" and not _Then.done:
            _Then.done = True
            (folder,) = _Then.runs.iterdir()
            _Then.action(folder)

    runs: Path = Path()


def _during_the_run(
    monkeypatch: pytest.MonkeyPatch, config: Path, action: Callable[[Path], None]
) -> None:
    monkeypatch.setattr(_Then, "action", staticmethod(action))
    monkeypatch.setattr(_Then, "done", False)
    monkeypatch.setattr(_Then, "runs", config.parent / "runs")
    monkeypatch.setattr(app, "ProgressBar", _Then)


def test_the_run_folder_deleted_during_the_run(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _during_the_run(monkeypatch, config, shutil.rmtree)
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    for name in RESULTS:
        assert f"error: could not write {name}: No such file or directory (ENOENT) " in err
    assert "(the run folder is gone)" in err
    assert f"could not even be marked {INCOMPLETE}" in err
    assert "error: traces.jsonl: the file is gone" in err
    assert list((config.parent / "runs").iterdir()) == []  # not silently made again


def test_all_of_the_output_deleted_during_the_run(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _during_the_run(monkeypatch, config, lambda folder: shutil.rmtree(folder.parent))
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    assert "could not write summary.json" in err
    assert not (config.parent / "runs").exists()  # not silently made again


def test_the_run_folder_made_immutable_during_the_run(
    config: Path, monkeypatch: pytest.MonkeyPatch, immutable: Callable[[Path], None]
) -> None:
    _during_the_run(monkeypatch, config, immutable)
    code, out, err = run(config)
    assert code == EXIT_WRITE_FAILED
    _results_printed(out)
    for name in RESULTS:
        assert f"error: could not write {name}: Operation not permitted (EPERM)" in err
    folder = the_run_folder(config)
    assert check_whole(folder) == {"config.yaml", "traces.jsonl"}


def test_the_cli_exit_code_and_no_traceback(
    config: Path, fail_writing: Callable[[set[str], int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    fail_writing({"summary.json"}, errno.ENOSPC)
    assert main(["run", str(config)]) == EXIT_WRITE_FAILED == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    _results_printed(captured.out)
    folder = the_run_folder(config)
    assert "summary.json" not in check_whole(folder)


def test_a_disk_full_at_the_start_stops_before_the_replay(
    config: Path, fail_writing: Callable[[set[str], int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    fail_writing({"config.yaml"}, errno.ENOSPC)
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        "error: could not write config.yaml: No space left on device (ENOSPC); nothing ran" in err
    )
    assert "strategy" not in err
    # A run that could not start leaves no folder to be taken for the latest run.
    assert "its folder" in err and "was removed" in err
    assert list((config.parent / "runs").iterdir()) == []
