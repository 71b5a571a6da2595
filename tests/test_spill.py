"""Spill files never outlive their process for long: a process removes its own folder
when it exits, and the first spill of a later process removes the folders of processes
that were killed outright, leaving those of processes still running alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.market.spill import LOCK, PREFIX
from tests.folder_support import ROOT

SPILLS = """
import sys, time
from decimal import Decimal
from orchestrator.market.columns import SpillWriter
writer = SpillWriter()
writer.add_many(list(range(5000)), [Decimal("1.5")] * 5000)
columns = writer.finish()
print(columns.path.parent.parent, flush=True)
if sys.argv[1] == "wait":
    time.sleep(120)
"""


def spiller(tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", SPILLS, *args], env=env, stdout=subprocess.PIPE, text=True
    )


def test_a_killed_processs_spill_folder_is_removed_by_the_next_one(tmp_path: Path) -> None:
    killed, alive = spiller(tmp_path, "wait"), spiller(tmp_path, "wait")
    try:
        assert killed.stdout is not None and alive.stdout is not None
        killed_folder = Path(killed.stdout.readline().strip())
        alive_folder = Path(alive.stdout.readline().strip())
        assert killed_folder.name.startswith(PREFIX) and (killed_folder / LOCK).is_file()
        assert any(killed_folder.glob("series-*/columns.bin"))
        killed.send_signal(signal.SIGKILL)  # no exit handler runs
        killed.wait(timeout=30)
        assert killed_folder.is_dir()  # left behind
        making = tmp_path / f"{PREFIX}being-made"  # no lock file yet: not an orphan
        making.mkdir()

        done = spiller(tmp_path, "exit")  # spills, then exits as a run does
        assert done.stdout is not None
        own = Path(done.stdout.readline().strip())
        assert done.wait(timeout=60) == 0
        done.stdout.close()
        assert not killed_folder.exists()  # its owner is gone: removed
        assert alive_folder.is_dir() and any(alive_folder.glob("series-*/columns.bin"))
        assert making.is_dir()
        assert not own.exists()  # removed at its own exit
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
    again = spiller(tmp_path, "exit")  # the other one is gone too now
    assert again.wait(timeout=60) == 0
    if again.stdout is not None:
        again.stdout.close()
    assert not alive_folder.exists()
