"""``orchestrator journal RUN_DIR``: what it prints, that it changes nothing, its errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.journal import DB_NAME, Journal
from orchestrator.journal.schema import SCHEMA_VERSION
from orchestrator.models import Category, OrderRequest, Position, Side
from orchestrator.trading.ledger import LedgerEntry
from tests.test_journal_lock import kill_9, writer_process

ROOT = Path(__file__).resolve().parents[1]
D = Decimal
CONFIG = "trading:\n  max_position_size_usd: '1000'\n# a line only the config has\n"


def sample(run_dir: Path) -> None:
    """A journal as a run leaves it: one position closed, one with an entry in flight."""
    with Journal.create(
        run_dir, run_id="20240101-run", mode="paper", run_nonce="abc123", config_text=CONFIG
    ) as j:
        j.set_meta("replay_cursor", "1704070800000")
        closed = Position(
            id="p1",
            spot_symbol="BTC/USDT",
            perp_symbol="BTC/USDT:USDT",
            state="closed",
            quantity=D("0.00123400"),
        )
        j.transition("p1", "open", "pending", "legs_sent", 1, position=closed)
        j.transition("p1", "close", "closing", "closed", 2, position=closed)
        opening = Position(
            id="p2",
            spot_symbol="ETH/USDT",
            perp_symbol="ETH/USDT:USDT",
            state="legs_sent",
            quantity=D("1.50"),
            spot_qty=D("1.4985"),
        )
        j.save_position(opening)
        j.intents(
            "p2",
            [
                OrderRequest("ETH/USDT", Side.BUY, D("1.50"), Category.SPOT, "abc123-p2-so1"),
                OrderRequest(
                    "ETH/USDT:USDT", Side.SELL, D("1.50"), Category.LINEAR, "abc123-p2-po1"
                ),
            ],
            1_704_067_200_000,
        )
        j.outcome("abc123-p2-so1", None, "unknown", "RequestTimeout")
        entry = LedgerEntry(
            1, "BTCUSDT", "p1", "funding", "BTC/USDT:USDT", "", D(1), D(2), D("0.10"), "USDT"
        )
        j.ledger("strategy", [entry, entry])
        j.ledger("always hedged", [entry])
        j.balances(
            "strategy",
            {"USDT": D("99999.90")},
            {"ETH/USDT:USDT": (D("-1.50"), D("3000.5"))},
            time_ms=1_704_067_200_000,
        )


def files(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the folder: its bytes and mtime (ns)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.iterdir())}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "journal", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_prints_the_meta_positions_open_intents_and_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample(tmp_path / "run")
    assert main(["journal", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"journal {tmp_path / 'run' / DB_NAME} (version {SCHEMA_VERSION})" in out
    lines = out.splitlines()

    def row(label: str) -> list[str]:
        return [line[13:] for line in lines if line[:13].rstrip() == label]

    def cells(key: str) -> list[str]:
        return next(line for line in lines if line.split()[:1] == [key]).split()

    assert row("run") == ["20240101-run  mode paper  nonce abc123"]
    assert row("config")[0].startswith("3 lines, sha256 ")
    assert "a line only the config has" not in out  # the config is not printed
    assert row("meta") == ["replay_cursor = 1704070800000"]
    assert row("writer") == ["none (no process has it open for writing)"]
    assert row("positions") == ["2: closed 1, legs_sent 1"]
    assert cells("p1") == ["p1", "closed", "BTC/USDT", "BTC/USDT:USDT", "0.00123400", "0", "0"]
    assert cells("p2") == ["p2", "legs_sent", "ETH/USDT", "ETH/USDT:USDT", "1.50", "1.4985", "0"]
    assert row("open intents") == ["2: no final outcome yet"]
    sent = "2024-01-01T00:00:00.000Z"
    assert cells("abc123-p2-so1") == [
        "abc123-p2-so1",
        "p2",
        "ETH/USDT",
        "buy",
        "1.50",
        "unknown",
        sent,
    ]
    assert cells("abc123-p2-po1") == [
        "abc123-p2-po1",
        "p2",
        "ETH/USDT:USDT",
        "sell",
        "1.50",
        "sent",
        sent,
    ]
    assert row("transitions") == ["2"]
    assert row("orders") == ["2 (2 open)"]
    assert row("ledger") == ["3: strategy 2, always hedged 1"]
    assert row("balances") == [
        f"strategy at {sent}: USDT 99999.90; perps: ETH/USDT:USDT -1.50 @ 3000.5"
    ]


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample(tmp_path / "run")
    assert main(["journal", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_id"] == "20240101-run"
    assert data["mode"] == "paper"
    assert data["run_nonce"] == "abc123"
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["config"]["lines"] == 3
    assert "text" not in data["config"]
    assert CONFIG not in json.dumps(data)
    assert data["meta"] == {"replay_cursor": "1704070800000"}
    assert data["writer"] is None
    assert [(p["id"], p["state"], p["quantity"]) for p in data["positions"]] == [
        ("p1", "closed", "0.00123400"),
        ("p2", "legs_sent", "1.50"),
    ]
    assert data["open_intents"][0] == {
        "client_order_id": "abc123-p2-so1",
        "position_id": "p2",
        "symbol": "ETH/USDT",
        "side": "buy",
        "quantity": "1.50",
        "status": "unknown",
        "sent_ms": 1_704_067_200_000,
        "sent_at": "2024-01-01T00:00:00.000Z",
        "error": "RequestTimeout",
    }
    assert data["counts"] == {
        "positions": 2,
        "transitions": 2,
        "orders": 2,
        "open_intents": 2,
        "ledger_entries": 3,
    }
    assert data["ledger_entries"] == {"strategy": 2, "always hedged": 1}
    assert data["balances"]["strategy"]["perps"] == {
        "ETH/USDT:USDT": {"size": "-1.50", "entry": "3000.5"}
    }


def test_it_changes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    sample(run_dir)
    before = files(run_dir)
    assert sorted(before) == ["journal.lock", DB_NAME]  # closed: the WAL folded back
    for args in ([str(run_dir)], [str(run_dir), "--json"]):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        assert "abc123-p2-so1" in done.stdout
    assert files(run_dir) == before  # no -wal/-shm made, no byte or time changed
    with Journal.open(run_dir) as j:  # and the run resumes from it
        assert len(j.open_intents()) == 2


def test_it_reads_while_a_writer_runs_and_after_it_was_killed_changing_nothing(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with writer_process(run_dir) as proc:
        before = files(run_dir)
        done = cli(str(run_dir))
        assert done.returncode == 0, done.stderr
        assert f"writer       process {proc.pid} (" in done.stdout
        assert "abc123-p1-so1" in done.stdout
        after = files(run_dir)
        # A reader of a live WAL takes part in its shared-memory index (-shm), which
        # the writer keeps and which holds no record; every other file is untouched.
        shm = f"{DB_NAME}-shm"
        assert {k: v for k, v in after.items() if k != shm} == {
            k: v for k, v in before.items() if k != shm
        }
        assert sorted(after) == sorted(before)
        kill_9(proc)
    before = files(run_dir)
    assert (run_dir / f"{DB_NAME}-wal").stat().st_size > 0
    done = cli(str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["writer"] is None
    assert [i["client_order_id"] for i in data["open_intents"]] == [
        "abc123-p1-so1",
        "abc123-p1-po1",
    ]
    assert files(run_dir) == before  # the dead writer's WAL was read from a copy


def test_errors_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["journal", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'empty'} has no journal (journal.sqlite3 is missing)\n"
    )
    assert main(["journal", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err

    sample(tmp_path / "version")
    conn = sqlite3.connect(tmp_path / "version" / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")  # an older journal
    conn.commit()
    conn.close()
    assert main(["journal", str(tmp_path / "version")]) == 2
    err = capsys.readouterr().err
    older, now = SCHEMA_VERSION - 1, SCHEMA_VERSION
    assert f"is a journal of version {older}; this orchestrator reads version {now} only" in err

    sample(tmp_path / "header")
    with (tmp_path / "header" / DB_NAME).open("r+b") as f:
        f.write(b"\0" * 64)
    done = cli(str(tmp_path / "header"))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {tmp_path / 'header' / DB_NAME} is not a journal: "
        "not an SQLite database (truncated or overwritten?)\n"
    )
    assert done.stdout == ""

    sample(tmp_path / "short")
    path = tmp_path / "short" / DB_NAME
    os.truncate(path, path.stat().st_size - 4096)
    done = cli(str(tmp_path / "short"))
    assert done.returncode == 2
    assert f"error: {path} is truncated: its header says" in done.stderr
    assert "Traceback" not in done.stderr
