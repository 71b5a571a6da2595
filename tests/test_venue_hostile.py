"""Hostile input met through the commands a user types and the venue's HTTP: an
instruments file of the wrong shape, the shipped venue's admin API, its signed
endpoints and its command-line flags. Every answer is a clear refusal, never a
traceback and never an HTTP 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.config import DATA_ENV

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
INSTRUMENTS = "bybit_instruments_info_BTC_ETH_ccxt_static_subset.json"
BTC_CONFIG = "pairs:\n  - spot: BTC/USDT\n    perp: BTC/USDT:USDT\n"


def data_copy(root: Path) -> Path:
    """A data folder in ``root``: symlinks to the recorded csv.gz files, a real copy of
    the instruments file (the test replaces it)."""
    folder = root / "data"
    folder.mkdir()
    for recorded in DATA.glob("*.csv.gz"):
        (folder / recorded.name).symlink_to(recorded)
    (folder / INSTRUMENTS).write_bytes((DATA / INSTRUMENTS).read_bytes())
    return folder


# (id, the instruments document, what the error says after "<file>: ")
SHAPES: list[tuple[str, object, str]] = [
    ("null", None, "expected an object with 'spot' and 'linear' sections, found null"),
    ("integer", 5, "found a number"),
    ("decimal", 1.5, "found a number"),
    ("true", True, "found true"),
    ("false", False, "found false"),
    ("text", "spot", "found text"),
    ("empty array", [], "found an array"),
    ("array of objects", [{"spot": {}}], "found an array"),
    ("spot null", {"spot": None}, "spot is null, not an object"),
    ("spot number", {"spot": 3}, "spot is a number, not an object"),
    ("spot text", {"spot": "BTCUSDT"}, "spot is text, not an object"),
    ("linear array", {"linear": [1]}, "linear is an array, not an object"),
    ("linear true", {"linear": True}, "linear is true, not an object"),
    ("entry null", {"spot": {"BTCUSDT": None}}, "spot.BTCUSDT is null, not an object"),
    ("entry number", {"linear": {"BTCUSDT": 7}}, "linear.BTCUSDT is a number, not an object"),
    ("entry array", {"spot": {"BTCUSDT": []}}, "spot.BTCUSDT is an array, not an object"),
    ("entry text", {"spot": {"BTCUSDT": "x"}}, "spot.BTCUSDT is text, not an object"),
]


@pytest.mark.parametrize(("document", "said"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_an_instruments_file_of_the_wrong_shape_is_refused_by_check(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    document: object,
    said: str,
) -> None:
    """17 shapes: every JSON top-level type, and wrong types one and two levels down."""
    folder = data_copy(tmp_path)
    instruments = folder / INSTRUMENTS
    instruments.write_text(json.dumps(document))
    monkeypatch.setenv(DATA_ENV, str(folder))
    config = tmp_path / "config.yaml"
    config.write_text(BTC_CONFIG)
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {instruments}: "), err
    assert said in err, err


@pytest.mark.parametrize("command", ["run", "rehearse"])
@pytest.mark.parametrize(
    "document", [None, 5, True, "x", [], {"spot": 0}], ids=["null", "5", "true", "x", "[]", "spot0"]
)
def test_run_and_rehearse_refuse_it_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    document: object,
) -> None:
    """12 cases: 6 shapes through `run` (the run's reader) and `rehearse` (the venue's)."""
    folder = data_copy(tmp_path)
    (folder / INSTRUMENTS).write_text(json.dumps(document))
    monkeypatch.setenv(DATA_ENV, str(folder))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(BTC_CONFIG + "output:\n  dir: runs\n")
    assert main([command, str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "TypeError" not in err
    assert f"{folder / INSTRUMENTS}: " in err, err
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run folder was made"
