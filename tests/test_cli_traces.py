"""Trace inspection and diagrams on the traces a real run wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.commands import diagrams
from tests.test_cli_run import DATA, ROOT, orchestrator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default run, once for the module: its folder holds traces.jsonl."""
    work = tmp_path_factory.mktemp("run")
    shutil.copyfile(ROOT / "config.yaml", work / "config.yaml")
    proc = orchestrator("run", "config.yaml", cwd=work, data=DATA)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return work


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_traces_lists_every_position_of_the_latest_run(run_dir: Path) -> None:
    done = cli("traces", "--json", cwd=run_dir)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    (folder,) = (run_dir / "runs").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert len(listed) == sum(summary["positions"].values())
    assert {p["final_state"] for p in listed} == {"closed"}
    assert all(p["leg_skew_ms"] is not None for p in listed)
    assert {p["run_id"] for p in listed} == {summary["run_id"]}
    # When each began on the data's clock, not the wall clock of the replay.
    assert all(p["market_time"].startswith(("2024-", "2025-")) for p in listed)
    text = cli("traces", cwd=run_dir)
    assert "BTCUSDT-0001" in text.stdout
    assert "closed" in text.stdout


def test_one_position_shows_its_span_tree_and_path(run_dir: Path) -> None:
    done = cli("traces", "--position", "BTCUSDT-0001", cwd=run_dir)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in ("position.open", "position.validate", "position.close", "BTCUSDT-0001-so1"):
        assert needle in out
    assert "path: pending -> legs_sent -> filled -> validated -> closing -> closed" in out
    detail = json.loads(cli("traces", "--position", "BTCUSDT-0001", "--json", cwd=run_dir).stdout)
    assert detail["path"] == ["pending", "legs_sent", "filled", "validated", "closing", "closed"]


def test_unknown_position_is_a_clear_error(run_dir: Path) -> None:
    done = cli("traces", "--position", "NOPE-0001", cwd=run_dir)
    assert done.returncode == 2
    assert "NOPE-0001" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["traces", "diagrams"])
def test_an_empty_position_id_is_refused_not_taken_for_none(run_dir: Path, command: str) -> None:
    # Not the list of every position (traces), nor every diagram written (diagrams).
    done = cli(command, "--position", "", cwd=run_dir)
    assert done.returncode == 2
    assert "error: '' names no position: give a position id" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_diagram_of_a_position_marks_the_path_its_trace_shows(run_dir: Path) -> None:
    done = cli("diagrams", "--position", "ETHUSDT-0001", cwd=run_dir)
    assert done.returncode == 0, done.stderr
    mmd = done.stdout
    assert mmd.startswith("stateDiagram-v2")
    assert "class closed,closing,filled,legs_sent,pending,validated visited" in mmd
    assert "pending → legs_sent → filled → validated → closing → closed" in mmd


@pytest.mark.skipif(not diagrams.has_dot(), reason="Graphviz's dot is not installed")
def test_svg_of_a_position_path(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "path.svg"
    done = cli("diagrams", "--position", "BTCUSDT-0001", "--svg", str(out), cwd=run_dir)
    assert done.returncode == 0, done.stderr
    svg = out.read_text()
    assert "<svg" in svg
    assert svg.count(diagrams.PATH_COLOUR) >= 5  # five transitions taken, drawn in colour


def test_a_trace_file_from_elsewhere_with_a_damaged_line_is_still_read(
    run_dir: Path, tmp_path: Path
) -> None:
    (folder,) = (run_dir / "runs").iterdir()
    lines = (folder / "traces.jsonl").read_text().splitlines()
    damaged = tmp_path / "merged.jsonl"
    damaged.write_text("\n".join([lines[0], "{not json", *lines[1:], lines[-1][:50]]) + "\n")
    done = cli("traces", str(damaged), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "line 2" in done.stderr
    assert f"line {len(lines) + 2}" in done.stderr
    assert len(json.loads(done.stdout)) > 0


def test_diagrams_write_mermaid_readme_and_check(tmp_path: Path) -> None:
    assert main(["diagrams", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "position.mmd").read_text() == diagrams.mermaid("position")
    readme = (tmp_path / "README.md").read_text()
    assert "```mermaid\nstateDiagram-v2" in readme
    assert (tmp_path / "position.svg").is_file() == diagrams.has_dot()
    if diagrams.has_dot():  # drawn again by another process, the same file
        first = (tmp_path / "position.svg").read_bytes()
        assert cli("diagrams", "--out", str(tmp_path), cwd=tmp_path).returncode == 0
        assert (tmp_path / "position.svg").read_bytes() == first
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "README.md").write_text(readme.replace("Rolling back", "Rolling forward"))
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1
