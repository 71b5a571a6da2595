"""A fresh clone without the recorded data: every way data is missing names the exact
``orchestrator data download`` command, that command (pointed at the shipped loopback
venue) fetches what the config reads, and a download that fails says why and leaves no
empty folder. Through the CLI, real ccxt, the venue in its own process; nothing leaves
127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import cli
from tests.folder_support import needs_mount, read_only
from tests.support import data_file

ROOT = Path(__file__).resolve().parent.parent
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
BTC_FILES = sorted(p.name for p in DATA.glob("bybit_BTCUSDT_*"))
COMMAND = re.compile(r"`(orchestrator data download [^`]+)`")


def config_in(folder: Path, data_dir: str, window: bool = False) -> Path:
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("dir: ../shared/data", f"dir: {data_dir}")
    if window:
        text = text.replace("start: null", 'start: "2024-01-01"')
        text = text.replace("end: null", 'end: "2024-01-03"')
    path = folder / "config.yaml"
    path.write_text(text)
    return path


def cli_main(
    args: list[str],
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str]:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("ORCHESTRATOR_DATA", raising=False)
    code = cli.main(args)
    return code, capsys.readouterr().err


def data_folder(kind: str, folder: Path) -> None:
    """``folder/data`` as a fresh clone may find it."""
    data = folder / "data"
    if kind == "absent":
        return
    data.mkdir()
    if kind == "empty":
        return
    instruments = next(DATA.glob("bybit_instruments_info*.json"))
    (data / instruments.name).symlink_to(instruments)
    if kind == "one pair":
        for name in BTC_FILES:
            (data / name).symlink_to(DATA / name)


@pytest.mark.parametrize(
    ("kind", "pairs", "says"),
    [
        ("absent", "BTC/USDT,ETH/USDT", "no instrument file (bybit_instruments_info*.json) in "),
        ("empty", "BTC/USDT,ETH/USDT", "no instrument file (bybit_instruments_info*.json) in "),
        ("instruments only", "BTC/USDT,ETH/USDT", "no spot candles for BTC/USDT in "),
        ("one pair", "ETH/USDT", "no spot candles for ETH/USDT in "),
    ],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_data_names_the_download_command_for_the_configured_pairs(
    kind: str,
    pairs: str,
    says: str,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_in(tmp_path, "data")
    data_folder(kind, tmp_path)
    code, err = cli_main([command, "config.yaml"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert says in err
    found = COMMAND.search(err)
    assert found, err
    # The exact command, as typed in the folder the user is in: the pairs missing data
    # and the config's data folder.
    assert found[1] == f"orchestrator data download --pairs {pairs} --data-dir data"
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[str]:
    """``orchestrator venue --recorded`` in its own process, its market clock at
    2024-02-01 (the windows downloaded from it are over by then); its URL. Stopped after."""
    command = [sys.executable, "-m", "orchestrator", "venue", "--recorded"]
    process = subprocess.Popen(
        [*command, "--start", "2024-02-01", "--data-dir", str(DATA)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_printed_command_fetches_what_the_config_reads(venue: str, tmp_path: Path) -> None:
    config_in(tmp_path, "fresh/data", window=True)
    missing = orchestrator("check", "config.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    found = COMMAND.search(missing.stderr)
    assert found, missing.stderr
    assert found[1] == (
        "orchestrator data download --pairs BTC/USDT,ETH/USDT --data-dir fresh/data "
        "--since 2024-01-01 --until 2024-01-03"
    )
    # The command as printed, only pointed at the loopback venue instead of Bybit.
    words = [*shlex.split(found[1])[1:], "--url", venue]
    fetched = orchestrator(*words, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    written = sorted(p.name for p in (tmp_path / "fresh" / "data").iterdir())
    for pair in ("BTCUSDT", "ETHUSDT"):
        for series in ("funding_rates", "spot_1h", "perp_1h"):
            assert f"bybit_{pair}_{series}_2024-01-01_2024-01-03.csv.gz" in written
    assert any(name.startswith("bybit_instruments_info_") for name in written)
    ready = orchestrator("check", "config.yaml", cwd=tmp_path)
    assert ready.returncode == 0, ready.stderr


def test_download_defaults_to_the_configs_data_dir(venue: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config_in(work, "../elsewhere/data")  # relative to the config file, as a run reads it
    fetched = orchestrator(
        "data", "download", "--pairs", "BTC/USDT", "--since", "2024-01-01", "--until",
        "2024-01-02", "--url", venue, cwd=work,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr.count("downloading into") == 1, fetched.stderr
    written = {p.name for p in (tmp_path / "elsewhere" / "data").iterdir()}
    assert "bybit_BTCUSDT_spot_1h_2024-01-01_2024-01-02.csv.gz" in written
    assert not (work / "data").exists()  # not ./data, where the run would not look


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unshare_works() -> bool:
    """Whether a process can run in a network namespace of its own (no network at all)."""
    if shutil.which("unshare") is None:
        return False
    return (
        subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0
    )


@pytest.mark.parametrize("cause", ["refused", "timeout", "dns"])
def test_a_failed_download_names_its_cause_and_leaves_no_empty_folder(
    cause: str, silent_port: int, tmp_path: Path
) -> None:
    prefix: list[str] = []
    if cause == "refused":
        url = f"http://127.0.0.1:{closed_port()}"
        words = "the connection was refused (nothing listens there)"
    elif cause == "timeout":
        url = f"http://127.0.0.1:{silent_port}"
        words = "no answer in time (timeout)"
    else:
        if not unshare_works():
            pytest.skip("needs `unshare -n` (a namespace without network) to fail a lookup")
        # In a namespace of its own with no network, the lookup cannot leave the machine.
        prefix = ["unshare", "-n"]
        url = "http://venue.invalid"
        words = "the venue's host name could not be resolved (DNS)"
    target = tmp_path / "new" / "data"
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "orchestrator", "data", "download", "--pairs",
         "BTC/USDT", "--since", "2024-01-01", "--until", "2024-01-02", "--data-dir",
         str(target), "--url", url, "--attempts", "2", "--timeout-ms", "300"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"error: markets: gave up after 2 attempts: {words}: " in done.stderr, done.stderr
    assert not (tmp_path / "new").exists()


def test_download_without_pairs_or_config_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused before any request: no ./config.yaml to take the pairs from.
    code, err = cli_main(["data", "download", "--data-dir", "d"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert "--pairs: name the pairs (e.g. BTC/USDT,ETH/USDT), or --config a config" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_an_empty_date_is_refused_not_taken_for_the_default(
    option: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Refused before any request: an empty value (a shell variable left unset) is no date.
    argv = ["data", "download", "--pairs", "BTC/USDT", "--data-dir", "d", option, ""]
    code, err = cli_main(argv, tmp_path, capsys, monkeypatch)
    assert code == 2
    assert "'' is not a date" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("since", "until", "words"),
    [
        ("2024-01-20", "2024-01-10", "is empty"),
        ("2024-01-20", "2099-01-01", "is in the future: its candles are not final"),
    ],
)
def test_top_refuses_a_bad_window_before_reading_the_venues_market(
    since: str,
    until: str,
    words: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Port 9 on loopback answers nothing: a request would fail with another error.
    argv = ["data", "download", "--top", "3", "--url", "http://127.0.0.1:9"]
    argv += ["--since", since, "--until", until, "--data-dir", "d", "--attempts", "1"]
    code, err = cli_main(argv, tmp_path, capsys, monkeypatch)
    assert code == 2
    assert words in err and "markets" not in err
    assert not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def quiet_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A venue the refusals below never reach: one for them all (its hits stay none)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "venue", "--recorded", "--data-dir", str(DATA)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path_factory.mktemp("quiet-venue"),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _folder(kind: str, tmp_path: Path, stack: contextlib.ExitStack) -> str:
    """A --data-dir a download cannot write, as given on the command line."""
    (tmp_path / "a-file").write_text("not a folder\n")
    if kind == "a file":
        return "a-file"
    if kind == "under a file":
        return "a-file/data"
    if kind == "read-only":
        (tmp_path / "ro").mkdir()
        return str(stack.enter_context(read_only(tmp_path / "ro")) / "data")
    if kind == "read-only itself":
        (tmp_path / "ro").mkdir()
        return str(stack.enter_context(read_only(tmp_path / "ro")))
    if kind == "/proc":
        return "/proc/orchestrator-data"
    return ""


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("a file", "error: the data folder a-file is a file, not a folder"),
        (
            "under a file",
            "error: the data folder a-file/data is under a-file, a file, not a folder",
        ),
        pytest.param("read-only", "cannot be written (", marks=needs_mount),
        pytest.param("read-only itself", "cannot be written: Read-only", marks=needs_mount),
        ("/proc", "error: the data folder /proc/orchestrator-data cannot be written (/proc "),
        ("empty", "error: --data-dir: must not be empty (write . for this folder)"),
    ],
)
@pytest.mark.parametrize("picking", [("--pairs", "BTC/USDT"), ("--top", "1")], ids=["pairs", "top"])
def test_a_data_folder_that_cannot_be_written_is_refused_before_anything_is_asked(
    quiet_venue: str, tmp_path: Path, kind: str, says: str, picking: tuple[str, ...]
) -> None:
    venue = quiet_venue
    with contextlib.ExitStack() as stack:
        data_dir = _folder(kind, tmp_path, stack)
        before = sorted(tmp_path.rglob("*"))
        done = orchestrator(
            "data", "download", *picking, "--since", "2024-01-01", "--until", "2024-01-02",
            "--url", venue, "--data-dir", data_dir, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()  # one line: no traceback, no progress
        assert line.startswith("error: ") and says in line, line
        assert sorted(tmp_path.rglob("*")) == before  # nothing made, no probe left
    with urllib.request.urlopen(f"{venue}/admin/state", timeout=10) as answer:
        assert json.load(answer)["hits"] == {}  # nothing was asked of the venue


@pytest.mark.parametrize("cause", ["refused", "timeout"])
@pytest.mark.parametrize(
    "command",
    [
        ("data", "download", "--pairs", "BTC/USDT"),
        ("data", "download", "--top", "3"),
        ("data", "download", "--universe"),
        ("screen", "config.yaml"),
        ("run", "auto.yaml"),
    ],
    ids=["pairs", "top", "universe", "screen", "pairs-auto dry run"],
)
def test_an_unreachable_venue_is_said_in_the_same_words_by_every_command(
    cause: str, command: tuple[str, ...], silent_port: int, tmp_path: Path
) -> None:
    if cause == "refused":
        url, words = f"http://127.0.0.1:{closed_port()}", "the connection was refused"
    else:
        url, words = f"http://127.0.0.1:{silent_port}", "no answer in time (timeout)"
    live = f"mode: paper\nmarket: live\nlive:\n  url: {url}\n  request_timeout_ms: 300\n"
    (tmp_path / "config.yaml").write_text(live)
    (tmp_path / "auto.yaml").write_text(live + "pairs: auto\n")
    args = list(command)
    if command[0] == "data":
        args += ["--since", "2024-01-01", "--until", "2024-01-02", "--data-dir", "data"]
        args += ["--url", url, "--attempts", "2", "--timeout-ms", "300"]
    done = orchestrator(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    attempts = 2 if command[0] == "data" else 4  # the screen's and a run's own
    assert f": gave up after {attempts} attempts: {words}" in line, line
    assert "ExchangeNotAvailable" not in line  # ccxt's class name: not a cause
    assert not (tmp_path / "data").exists()


def test_a_window_past_the_venues_time_is_refused_not_cut_and_filed_whole(
    venue: str, tmp_path: Path
) -> None:
    """The venue replays recorded data and stands at 2024-02-01: a window past its time
    would come back cut there and be filed under the whole window's name (a rerun would
    then take it as complete). Refused before anything is written."""
    done = orchestrator(
        "data", "download", "--pairs", "BTC/USDT", "--since", "2024-01-30", "--until",
        "2024-02-03", "--url", venue, "--data-dir", "d", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "2024-02-03T00:00:00Z is after the venue's time, 2024-02-01T00:00:00Z" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").glob("*.csv*"))
