"""``universe.include`` naming a pair that is not there (not in the data folder, not
listed by the venue) is said in a warning line naming it, wherever the universe is read:
the screen on the recorded data and on the live market, ``data download --universe``,
the start of a ``pairs: auto`` dry run; a replay refuses it. The pairs that are there
are ranked as without it. Real CLI processes; the shipped venue in its own process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.market.synthetic import write_folder
from tests.folder_support import ROOT, no_traceback
from tests.universe_support import venue_process

INCLUDE = "universe:\n  include: [SYN3USDT, NOPEUSDT, GONEUSDT]\n"
SAID = "universe.include: NOPEUSDT, GONEUSDT not in {where}: never considered"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("include")
    write_folder(root / "data", 8, 60, seed=9)
    with venue_process(root / "data") as url:
        yield root / "data", url
    shutil.rmtree(root)


def orchestrator(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "ORCHESTRATOR"))}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=folder,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    no_traceback(done)
    return done


def warned(done: subprocess.CompletedProcess[str], where: str) -> None:
    lines = [line for line in done.stderr.splitlines() if "universe.include" in line]
    assert len(lines) == 1, done.stderr
    assert "warning: " in lines[0] and lines[0].endswith(SAID.format(where=where)), lines[0]


def live(folder: Path, url: str, extra: str = "") -> None:
    (folder / "config.yaml").write_text(
        f"mode: paper\nmarket: live\nlive:\n  url: {url}\n{extra}{INCLUDE}"
    )


def test_the_recorded_screen_warns(market: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = market
    (tmp_path / "config.yaml").write_text(f"data:\n  dir: {data}\n{INCLUDE}")
    done = orchestrator(tmp_path, "screen", "config.yaml", "--json")
    assert done.returncode == 0, done.stderr
    warned(done, str(data))
    assert json.loads(done.stdout)["pairs_found"] == 8


def test_the_live_screen_warns(market: tuple[Path, str], tmp_path: Path) -> None:
    _, url = market
    live(tmp_path, url)
    done = orchestrator(tmp_path, "screen", "config.yaml", "--json")
    assert done.returncode == 0, done.stderr
    warned(done, "the venue's market")
    rows = {p["pair"]: p for p in json.loads(done.stdout)["pairs"]}
    assert len(rows) == 8 and rows["SYN3USDT"]["left_out"] is None


def test_a_universe_download_warns(market: tuple[Path, str], tmp_path: Path) -> None:
    _, url = market
    live(tmp_path, url)
    done = orchestrator(
        tmp_path, "data", "download", "--universe", "--top", "1", "--url", url,
        "--since", "2024-02-13", "--until", "2024-02-14", "--data-dir", "data",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warned(done, "the venue's market")


def test_a_dry_run_with_pairs_auto_warns_at_its_start(
    market: tuple[Path, str], tmp_path: Path
) -> None:
    # A horizon of an hour: no pair earns its round trip, so the run is refused at its
    # start (nothing sent), after the screen that reads the include.
    _, url = market
    live(tmp_path, url, "pairs: auto\n")
    text = (
        (tmp_path / "config.yaml")
        .read_text()
        .replace("universe:\n", "universe:\n  horizon_hours: 1\n")
    )
    (tmp_path / "config.yaml").write_text(text)
    done = orchestrator(tmp_path, "run", "config.yaml")
    assert done.returncode == 2, done.stderr
    warned(done, "the venue's market")
    assert "none the universe section lets in is expected to earn above its round trip" in (
        done.stderr
    )


def test_a_replay_refuses_it(market: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = market
    (tmp_path / "config.yaml").write_text(f"pairs: auto\ndata:\n  dir: {data}\n{INCLUDE}")
    done = orchestrator(tmp_path, "run", "config.yaml")
    assert done.returncode == 2
    assert f"universe.include: NOPEUSDT, GONEUSDT not in {data}" in done.stderr
