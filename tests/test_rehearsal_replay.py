"""A rehearsal (the live path through real ccxt against the shipped loopback venue,
in its own process: `orchestrator rehearse`) equals the paper replay of the same hours
(`orchestrator run` with data.start/data.end) in every figure and every ledger row;
it starts anywhere in the recorded data, says what became of its positions when
stopped, and shows progress on a terminal only."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
# A client order id's nonce: `replay` on paper, a fresh one per live run.
NONCE = re.compile(r"\b[a-z0-9]+-(?=(BTC|ETH)USDT-\d{4}-)")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    return {**base, "ORCHESTRATOR_DATA": str(DATA), "PYTHONUNBUFFERED": "1", **extra}


def orchestrator(*args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env(), text=True, **kwargs
    )


def finished(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = orchestrator(*args, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    return tmp_path


def only_run(workdir: Path) -> Path:
    (folder,) = (workdir / "runs").iterdir()
    return folder


def figure(text: Any) -> Any:
    """A figure as a number (Decimal text may carry trailing zeros), else as it is."""
    if isinstance(text, str):
        try:
            return Decimal(text)
        except InvalidOperation:
            return text
    if isinstance(text, dict):
        return {k: figure(v) for k, v in text.items()}
    return text


def rows(path: Path) -> list[dict[str, Any]]:
    """Every row but its run label, client order ids without their nonce."""
    with path.open() as f:
        return [
            {k: figure(NONCE.sub("", v)) for k, v in row.items() if k != "run"}
            for row in csv.DictReader(f)
        ]


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        # The month: the strategy trades and is paid; starts on a settlement.
        ("2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z", "720"),
        # Starts and ends between settlements (05:00, 13:00): the settlement of the
        # first hours comes with the first prices, the last one is not reached.
        ("2024-03-10T05:00:00Z", "2024-03-25T13:00:00Z", "368"),
    ],
)
def test_a_rehearsal_equals_the_paper_replay_of_the_same_hours(
    workdir: Path, start: str, end: str, hours: str
) -> None:
    code, _, err = finished(
        "rehearse", "config.yaml", "--start", start, "--hours", hours, cwd=workdir
    )
    assert code == 0, err
    rehearsal = only_run(workdir)
    text = (workdir / "config.yaml").read_text()
    text = text.replace("start: null", f'start: "{start}"').replace("end: null", f'end: "{end}"')
    (workdir / "window.yaml").write_text(text)
    rehearsal = (workdir / "runs").rename(workdir / "rehearsal-runs") / rehearsal.name
    code, _, err = finished("run", "window.yaml", cwd=workdir)
    assert code == 0, err
    replay = only_run(workdir)

    live = json.loads((rehearsal / "summary.json").read_text())
    paper = json.loads((replay / "summary.json").read_text())
    assert live["label"] == "rehearsal" and paper["label"] == "strategy"
    assert paper["start"] == live["start"] and paper["end"] == live["end"]
    assert live["start"].startswith(start[:13]) and live["end"].startswith(end[:13])
    # Every figure: strategy and always hedged, per pair and in total, balances, states.
    for key in (
        "pairs", "total", "baseline", "baseline_total", "starting_balance", "ending_balance",
        "ending_equity", "ledger_balances", "baseline_ledger_balances", "positions",
        "baseline_positions", "quote", "interrupted", "rotations",
    ):  # fmt: skip
        assert figure(live[key]) == figure(paper[key]), key
    # What neither could equal by nature: the run id, the label, the events counted, and
    # the margin headroom (the venue's account-wide figure, spot collateral counted, in a
    # rehearsal; the paper short's own model in a replay).
    compared = {"run_id", "label", "events", "warnings", "alerts", "start", "end"}
    compared.add("margin_headroom")
    assert set(live) - compared == {
        "pairs", "total", "baseline", "baseline_total", "starting_balance", "ending_balance",
        "ending_equity", "ledger_balances", "baseline_ledger_balances", "positions",
        "baseline_positions", "quote", "interrupted", "rotations",
    }  # fmt: skip
    # Every ledger row and every position, both runs (the strategy's and the baseline's).
    for name in ("ledger.csv", "positions.csv"):
        assert rows(rehearsal / name) == rows(replay / name), name
    assert rows(rehearsal / "ledger.csv")  # not two empty files
    if hours == "720":  # the month the strategy is in the market and paid
        assert live["total"]["positions"] >= 1 and Decimal(live["total"]["funding"]) > 0


def test_the_shipped_default_and_the_readmes_faults_example_rehearse(workdir: Path) -> None:
    """`orchestrator rehearse config.yaml` (shortened) starts at the data's first hour;
    so does the rehearsal guide's --faults example. A pipe stays quiet: no progress bar."""
    code, out, err = finished("rehearse", "config.yaml", "--hours", "24", cwd=workdir)
    assert code == 0, err
    assert "rehearsal" in out and "always hedged" in out
    summary = json.loads((only_run(workdir) / "summary.json").read_text())
    assert summary["start"].startswith("2024-01-01T00:00")
    assert summary["end"].startswith("2024-01-02T00:00")
    assert "Traceback" not in err and "[#" not in err and "hours" not in err
    (workdir / "faults.yaml").write_text(
        "rules:\n"
        "  - kind: reject\n    category: linear\n    after: 1\n    error: insufficient_balance\n"
        "  - kind: http\n    endpoint: order/*\n    status: 503\n    times: null\n    until_s: 2\n"
    )
    code, _, err = finished(
        "rehearse", "config.yaml", "--hours", "24", "--faults", "faults.yaml", cwd=workdir
    )
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("start", "code", "said", "first"),
    [
        ("2024-01-01", 0, "", "2024-01-01T00:00"),  # at the data's first hour
        (
            "2023-12-01",
            0,
            "note: --start 2023-12-01 00:00 UTC is before the recorded data; "
            "the rehearsal starts at its first hour, 2024-01-01 00:00 UTC",
            "2024-01-01T00:00",
        ),
        (
            "2024-01-03T04:30",
            0,
            "note: the rehearsal starts at the next whole hour, 2024-01-03 05:00 UTC",
            "2024-01-03T05:00",
        ),
        (  # ETHUSDT's last candle closes then: no hour of both pairs is left
            "2025-09-26",
            2,
            "error: nothing to rehearse: the start 2025-09-26 00:00 UTC is not before the end "
            "of the recorded data every pair has, 2025-09-26 00:00 UTC",
            None,
        ),
        (
            "2026-01-01",
            2,
            "error: nothing to rehearse: the start 2026-01-01 00:00 UTC is not before the end "
            "of the recorded data every pair has, 2025-09-26 00:00 UTC",
            None,
        ),
    ],
)
def test_a_rehearsal_starts_anywhere_in_the_data_and_refuses_outside_it(
    workdir: Path, start: str, code: int, said: str, first: str | None
) -> None:
    got, out, err = finished(
        "rehearse", "config.yaml", "--start", start, "--hours", "6", cwd=workdir
    )
    assert got == code, err
    assert "Traceback" not in err
    if said:
        assert said in err.splitlines()
    if first is None:
        assert out == ""
        assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())
    else:
        summary = json.loads((only_run(workdir) / "summary.json").read_text())
        assert summary["start"].startswith(first)


def stop_when_holding(proc: subprocess.Popen[str], workdir: Path) -> tuple[str, str]:
    """SIGINT once both pairs' positions are open (their trace lines), then wait."""
    try:
        for _ in range(1200):
            traces = list((workdir / "runs").glob("*/traces.jsonl"))
            if traces and traces[0].read_text().count('"position.open"') >= 2:
                break
            if proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    ("on_stop", "said", "states"),
    [
        (
            "leave",
            "stopped early, BTCUSDT-0001, ETHUSDT-0001 left open and hedged on the venue;",
            {"validated": 2},
        ),
        (
            "close",
            "stopped early, BTCUSDT-0001, ETHUSDT-0001 closed at the last prices;",
            {"closed": 2},
        ),
    ],
)
def test_a_stopped_rehearsal_says_what_became_of_its_positions(
    workdir: Path, on_stop: str, said: str, states: dict[str, int]
) -> None:
    config = workdir / "config.yaml"
    config.write_text(config.read_text() + f"\nlive:\n  on_stop: {on_stop}\n")
    # From the data's first hour both pairs open on 2024-01-03 and hold to mid-April:
    # the stop comes while they are held.
    proc = orchestrator("rehearse", "config.yaml", "--hours", "2400", cwd=workdir)
    out, err = stop_when_holding(proc, workdir)
    assert proc.returncode == 130, err
    assert said in out
    summary = json.loads((only_run(workdir) / "summary.json").read_text())
    assert summary["positions"] == states
    assert f"positions by state: {states}" in out


def test_a_rehearsal_shows_progress_on_a_terminal(workdir: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = orchestrator(
            "rehearse", "config.yaml", "--hours", "48", cwd=workdir, stderr=follower
        )
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end closed: the run is over
                break
            if not chunk:
                break
            seen += chunk
        proc.communicate(timeout=120)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "\rrehearsal" in text  # redrawn in place
    assert "48/48 hours" in text


def rehearsed_with(workdir: Path, rules: str) -> tuple[Path, list[dict[str, str]]]:
    """240 hours rehearsed with the venue's fault ``rules`` (a faults.yaml's ``rules:``
    list); the run's folder and the rehearsal's rows of positions.csv."""
    (workdir / "faults.yaml").write_text("rules:\n" + rules)
    code, _, err = finished(
        "rehearse", "config.yaml", "--hours", "240", "--faults", "faults.yaml", cwd=workdir
    )
    assert code == 0, err
    assert "Traceback" not in err
    run_dir = only_run(workdir)
    with (run_dir / "positions.csv").open() as f:
        return run_dir, [row for row in csv.DictReader(f) if row["run"] == "rehearsal"]


def test_an_open_the_venue_keeps_refusing_for_balance_pauses_the_pair(workdir: Path) -> None:
    """Every perp open refused for want of balance (as after the owner lowered the
    leverage by hand): each refusal is rolled back at a cost, and the balance those costs
    change is no new balance. The pair is tried risk.max_failed_opens times and paused,
    said once; it does not open again every cycle until the failed-open budget is spent."""
    run_dir, tried = rehearsed_with(
        workdir,
        "  - kind: reject\n    category: linear\n    endpoint: order/create\n"
        "    error: insufficient_balance\n    times: null\n",
    )
    by_pair: dict[str, list[str]] = {}
    for row in tried:
        by_pair.setdefault(row["spot_symbol"], []).append(row["state"])
    assert by_pair  # the strategy wanted to open
    for states in by_pair.values():
        assert states == ["rolled_back", "rolled_back"]  # risk.max_failed_opens: 2
    summary = json.loads((run_dir / "summary.json").read_text())
    paused = [a for a in summary["alerts"] if "opens in a row refused for want of balance" in a]
    assert len(paused) == len(by_pair)
    assert not any("opening stopped for every pair" in a for a in summary["alerts"])


def test_exposure_an_unwind_left_is_closed_at_the_next_decision(workdir: Path) -> None:
    """The first BTC open's perp is refused, and the rollback's spot sale too: the
    position is left needing attention, holding spot with no hedge. It is closed at the
    next decision, whatever the exit rules say (they would hold on while funding stays
    high), not left unhedged for the rest of the run."""
    _, rows = rehearsed_with(
        workdir,
        "  - kind: reject\n    link_id: '*-BTCUSDT-0001-po1'\n    error: system_error\n"
        "  - kind: reject\n    link_id: '*-BTCUSDT-0001-sr1'\n    error: system_error\n",
    )
    first = next(r for r in rows if r["id"] == "BTCUSDT-0001")
    assert first["state"] == "closed", first
    assert Decimal(first["spot_qty"]) == 0 and Decimal(first["perp_qty"]) == 0
    assert first["client_order_ids"].split()[-1].endswith("-BTCUSDT-0001-sc1")
    # Closed within the hour after: the next decision, not when funding turned.
    opened, closed = (datetime.fromisoformat(first[k]) for k in ("created_at", "closed_at"))
    assert (closed - opened).total_seconds() <= 3600


def test_a_close_at_the_end_that_leaves_exposure_is_tried_again(workdir: Path) -> None:
    """The end closes everything (as a stop with on_stop: close does). The venue refuses
    the first close's perp order once, after its spot sold: the close is tried again at
    once, and the run ends flat, not with a naked short."""
    run_dir, rows = rehearsed_with(
        workdir, "  - kind: reject\n    link_id: '*-BTCUSDT-0001-pc1'\n    error: system_error\n"
    )
    first = next(r for r in rows if r["id"] == "BTCUSDT-0001")
    assert first["state"] == "closed", first
    assert first["client_order_ids"].split()[-1].endswith("-BTCUSDT-0001-pc2")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert not any("needs_attention" in a for a in summary["alerts"])


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "faults.yaml: No such file or directory"),
        ("rules: [\n", "faults.yaml"),
        ("rules:\n  - kind: explode\n", "faults.yaml"),
    ],
    ids=["missing", "not yaml", "unknown kind"],
)
def test_a_fault_file_that_cannot_be_used_stops_before_a_run_folder(
    workdir: Path, text: str | None, said: str
) -> None:
    if text is not None:
        (workdir / "faults.yaml").write_text(text)
    code, _, err = finished(
        "rehearse", "config.yaml", "--hours", "6", "--faults", "faults.yaml", cwd=workdir
    )
    assert code == 2, err
    assert err.startswith("error: ") and said in err and "Traceback" not in err
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())
