"""`orchestrator sweep --resume` on a damaged folder: each file of a finished sweep
deleted, truncated or edited, then resumed. A resume reproduces the uninterrupted
sweep to the last byte of trials.csv and curves.jsonl, or refuses (exit 2), says
why and changes nothing; it never reports old and new trials together."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.commands import sweep as app
from tests.sweep_support import SMALL_TRIALS, run_cli, sweep_folder, write_sweep


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sweep, uninterrupted, one trial after another in this process."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_sweep(folder)
    err = io.StringIO()
    assert app.sweep(path, in_process=True, out=io.StringIO(), err=err) == 0, err.getvalue()
    return sweep_folder(folder)


def delete(path: Path) -> None:
    path.unlink()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def replace(old: str, new: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        text = path.read_text()
        assert old in text, (path, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def edit_a_figure(path: Path) -> None:
    """One train trial's net PnL changed by a cent: a trial record edited by hand."""
    lines = path.read_text().splitlines(keepends=True)
    head = lines[0].rstrip("\n").split(",")
    column = head.index("total.net_pnl")
    values = lines[3].rstrip("\n").split(",")
    values[column] = str(float(values[column]) + 0.01)
    lines[3] = ",".join(values) + "\n"
    path.write_text("".join(lines))


def edit_a_curve(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    curve = json.loads(lines[0])
    curve["equity"][-1][1] = "123456.78"
    lines[0] = json.dumps(curve, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))


def drop_line(index: int) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        del lines[index]
        path.write_text("".join(lines))

    return edit


def duplicate_a_row(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines, lines[5]]))


def garble_a_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + "\n"
    path.write_text("".join(lines))


def forget_the_hashes(path: Path) -> None:
    """meta.json as a folder made before the copies were hashed."""
    meta = json.loads(path.read_text())
    del meta["sweep_hash"], meta["base_hash"]
    path.write_text(json.dumps(meta))


def edit_sweep_and_its_hash(folder: Path) -> None:
    """The sweep file's objective changed and meta.json's hash made to match: the rows
    recorded under the old objective still must not be taken."""
    from orchestrator.sweep.record import file_hash

    replace("metric: excess_return", "metric: net_pnl")(folder / "sweep.yaml")
    meta = json.loads((folder / "meta.json").read_text())
    meta["sweep_hash"] = file_hash(folder / "sweep.yaml")
    (folder / "meta.json").write_text(json.dumps(meta))


# (file, damage) -> None: the resume reproduces the sweep; else a part of its refusal.
REPRODUCED = None
CASES: dict[str, tuple[str, Callable[[Path], None], str | None]] = {
    "trials.csv deleted": ("trials.csv", delete, REPRODUCED),
    "trials.csv truncated": ("trials.csv", truncate, REPRODUCED),
    "trials.csv: a figure edited": ("trials.csv", edit_a_figure, "is not what this sweep recorded"),
    "trials.csv: a row's step edited": (
        "trials.csv",
        replace("\n1-train-p0001,train,1,", "\n1-train-p0001,train,2,"),
        "is not what this sweep recorded",
    ),
    "trials.csv: a row deleted": ("trials.csv", drop_line(7), REPRODUCED),
    "trials.csv: a row twice": ("trials.csv", duplicate_a_row, REPRODUCED),
    "curves.jsonl deleted": ("curves.jsonl", delete, REPRODUCED),
    "curves.jsonl: a line deleted": ("curves.jsonl", drop_line(2), REPRODUCED),
    "curves.jsonl: a line garbled": ("curves.jsonl", garble_a_line, REPRODUCED),
    "curves.jsonl truncated": ("curves.jsonl", truncate, REPRODUCED),
    "curves.jsonl: a curve edited": ("curves.jsonl", edit_a_curve, "or its curve in curves.jsonl"),
    "sweep.yaml deleted": ("sweep.yaml", delete, "lacks its sweep.yaml"),
    "sweep.yaml truncated": ("sweep.yaml", truncate, "sweep.yaml changed since the sweep started"),
    "sweep.yaml: the objective edited": (
        "sweep.yaml",
        replace("metric: excess_return", "metric: net_pnl"),
        "sweep.yaml changed since the sweep started",
    ),
    "sweep.yaml: the windows edited": (
        "sweep.yaml",
        replace("test_months: 1", "test_months: 2"),
        "sweep.yaml changed since the sweep started",
    ),
    "sweep.yaml edited, meta.json's hash too": (
        ".",
        edit_sweep_and_its_hash,
        "is not what this sweep recorded",
    ),
    "base.yaml deleted": ("base.yaml", delete, "lacks its base.yaml"),
    "base.yaml truncated": ("base.yaml", truncate, "base.yaml changed since the sweep started"),
    "base.yaml: a fee edited": (
        "base.yaml",
        replace('spot_taker: "0.001"', 'spot_taker: "0.002"'),
        "base.yaml changed since the sweep started",
    ),
    "meta.json deleted": ("meta.json", delete, "not a sweep folder"),
    "meta.json truncated": ("meta.json", truncate, "not a sweep folder"),
    "meta.json: the data hash edited": (
        "meta.json",
        replace('"data_hash": "', '"data_hash": "0'),
        "is not the data this sweep started on",
    ),
    "meta.json without the copies' hashes": ("meta.json", forget_the_hashes, "records no hash"),
    "summary.json deleted": ("summary.json", delete, REPRODUCED),
    "chart.html truncated": ("chart.html", truncate, REPRODUCED),
    "best.yaml deleted": ("best.yaml", delete, REPRODUCED),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}


REPORTED = ("out_of_sample", "steps", "verdict", "best", "parameter_sets", "objective")


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_sweep_folder_is_resumed_exactly_or_refused(
    reference: Path, tmp_path: Path, case: str
) -> None:
    name, damage, refusal = CASES[case]
    folder = tmp_path / reference.name
    shutil.copytree(reference, folder)
    damage(folder / name)
    before = snapshot(folder)
    code, out, err = run_cli("sweep", "--resume", str(folder), "--in-process")
    if refusal is not None:
        assert code == 2, (code, out, err)
        assert refusal in err, err
        assert "nothing was" in err
        assert snapshot(folder) == before  # nothing rewritten, nothing run
        return
    assert code == 0, err
    assert "Traceback" not in err
    for file in ("trials.csv", "curves.jsonl"):  # to the last byte: same rows, same checks
        assert (folder / file).read_bytes() == (reference / file).read_bytes(), file
    mine = json.loads((folder / "summary.json").read_text())
    theirs = json.loads((reference / "summary.json").read_text())
    assert {k: mine[k] for k in REPORTED} == {k: theirs[k] for k in REPORTED}
    assert mine["trials"]["done"] == SMALL_TRIALS
    assert mine["complete"] is True
    assert (folder / "best.yaml").is_file()
    if name == "curves.jsonl":  # the rows that lost their curve were run again, and said so
        assert "lacks the curves of" in err
        assert mine["trials"]["recorded_before"] < SMALL_TRIALS
