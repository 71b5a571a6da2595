from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_opens_and_closes_one_position_offline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", str(ROOT / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in ("pending -> legs_sent", "filled -> validated", "closing -> closed"):
        assert step in out
    assert "demo1-so1" in out
    assert "demo1-pc1" in out
    assert "state closed" in out
    assert "funding at 0.01% paid the short 1.9523 USDT" in out


def test_demo_with_a_bad_config_exits_nonzero_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text('trading:\n  delta_drift_tolerance: "1.5"\n')
    assert main(["demo", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "trading.delta_drift_tolerance: must be between 0 and 1" in err
    assert main(["demo", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err


def test_the_committed_diagrams_match_the_machines() -> None:
    assert main(["diagrams", "--check", "--out", str(ROOT / "diagrams")]) == 0


def test_diagrams_check_fails_when_out_of_date(tmp_path: Path) -> None:
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1  # missing
    assert main(["diagrams", "--out", str(tmp_path)]) == 0
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 0
    mmd = tmp_path / "position.mmd"
    mmd.write_text(mmd.read_text().replace("closing --> closed", "closing --> gone"))
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1
