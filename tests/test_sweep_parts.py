"""The sweep's parts on their own: windows, parameter sets, the choice, the sweep folder."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.config import Config, StrategySettings
from orchestrator.sweep.params import expand
from orchestrator.sweep.record import Folder, Meta, header
from orchestrator.sweep.search import choose
from orchestrator.sweep.spec import Span, Step, Values, WalkForward
from orchestrator.sweep.trial import DataSource, check_worker, fingerprint
from orchestrator.sweep.windows import add_months, plan
from orchestrator.sweep.yamlfile import Invalid, SweepError
from tests.sweep_support import DATA


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def day(value: int) -> str:
    return f"{datetime.fromtimestamp(value / 1000, UTC):%Y-%m-%d}"


SPAN = (ms("2024-01-01"), ms("2025-09-30"))


def windows(walk: WalkForward) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (
            s.name,
            day(s.train.start_ms),
            day(s.train.end_ms),
            None if s.test is None else day(s.test.start_ms),
            None if s.test is None else day(s.test.end_ms),
        )
        for s in plan(walk, SPAN)
    ]


def test_rolling_windows_move_on_and_the_last_test_is_cut_at_the_end_of_the_data() -> None:
    found = windows(WalkForward(train_months=6, test_months=3))
    assert found == [
        ("1", "2024-01-01", "2024-07-01", "2024-07-01", "2024-10-01"),
        ("2", "2024-04-01", "2024-10-01", "2024-10-01", "2025-01-01"),
        ("3", "2024-07-01", "2025-01-01", "2025-01-01", "2025-04-01"),
        ("4", "2024-10-01", "2025-04-01", "2025-04-01", "2025-07-01"),
        ("5", "2025-01-01", "2025-07-01", "2025-07-01", "2025-09-30"),  # a day short: kept
        ("next", "2025-03-30", "2025-09-30", None, None),
    ]


def test_anchored_windows_all_start_with_the_data() -> None:
    found = windows(WalkForward(train_months=12, test_months=4, window="anchored"))
    assert found == [
        ("1", "2024-01-01", "2025-01-01", "2025-01-01", "2025-05-01"),
        ("2", "2024-01-01", "2025-05-01", "2025-05-01", "2025-09-01"),
        ("next", "2024-01-01", "2025-09-30", None, None),
    ]  # 2025-09-01 to 2025-09-30 is under half of 4 months: no third test


def test_a_step_longer_than_the_test_leaves_gaps_between_test_windows() -> None:
    found = windows(WalkForward(train_months=3, test_months=1, step_months=6))
    assert [(w[3], w[4]) for w in found[:-1]] == [
        ("2024-04-01", "2024-05-01"),
        ("2024-10-01", "2024-11-01"),
        ("2025-04-01", "2025-05-01"),
    ]


def test_listed_windows_must_follow_one_another() -> None:
    first = Step(Span("2024-01-01", "2024-06-01"), Span("2024-06-01", "2024-09-01"))
    second = Step(Span("2024-03-01", "2024-08-01"), Span("2024-08-01", "2024-10-01"))
    with pytest.raises(Invalid, match=r"windows\[1\]\.test\.start: 2024-08-01 is before the prev"):
        plan(WalkForward(windows=[first, second]), SPAN)
    steps = plan(WalkForward(windows=[first]), SPAN)
    assert [s.name for s in steps] == ["1"]  # no "next": best.yaml is step 1's choice


def test_months_are_calendar_months() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2025, 3, 30, tzinfo=UTC), -6) == datetime(2024, 9, 30, tzinfo=UTC)


def test_a_grid_skips_the_combinations_the_run_config_refuses_and_says_so() -> None:
    parameters: dict[str, list[object] | Values] = {
        "strategy.entry_annualised": ["0.02", "0.10"],
        "strategy.exit_annualised": ["0", "0.05"],
    }
    sets = expand(parameters, Config(), "grid", None, 0, {})  # type: ignore[arg-type]
    assert sets.sets == [
        (Decimal("0.02"), Decimal("0")),
        (Decimal("0.10"), Decimal("0")),
        (Decimal("0.10"), Decimal("0.05")),
    ]
    assert len(sets.refused) == 1
    assert "exit_annualised=0.05" in sets.refused[0]
    assert "is above entry_annualised 0.02" in sets.refused[0]
    assert sets.configs[2].strategy == StrategySettings(
        entry_annualised=Decimal("0.10"), exit_annualised=Decimal("0.05")
    )


def test_a_random_search_draws_exact_values_on_the_step_and_the_seed_repeats_it() -> None:
    parameters: dict[str, list[object] | Values] = {
        "strategy.entry_annualised": Values(low="0.05", high="0.30"),
        "strategy.funding_window": Values(low=1, high=30),
        "trading.order_timeout_seconds": [5, 10.5],
    }
    one = expand(parameters, Config(), "random", 12, 7, {})  # type: ignore[arg-type]
    again = expand(parameters, Config(), "random", 12, 7, {})  # type: ignore[arg-type]
    other = expand(parameters, Config(), "random", 12, 8, {})  # type: ignore[arg-type]
    assert one.sets == again.sets
    assert one.sets != other.sets
    assert len(one.sets) == 12
    assert len(set(one.sets)) == 12
    for entry, window, timeout in one.sets:
        assert isinstance(entry, Decimal)
        assert Decimal("0.05") <= entry <= Decimal("0.30")
        assert entry == entry.quantize(Decimal("0.01"))  # on the digits written
        assert isinstance(window, int)
        assert 1 <= window <= 30
        assert timeout in (5.0, 10.5)


def test_the_choice_is_the_best_objective_within_the_drawdown_limit() -> None:
    def row(p: int, objective: str, drawdown: str, ok: bool) -> dict[str, str]:
        return {
            "set": str(p),
            "objective": objective,
            "total.max_drawdown": drawdown,
            "drawdown_ok": "true" if ok else "false",
        }

    rows = [
        row(0, "0.01", "0.001", True),
        row(1, "0.05", "0.09", False),  # the best, but too deep
        row(2, "0.02", "0.002", True),
        row(3, "0.02", "0.001", True),  # a tie: the first listed wins
    ]
    choice = choose("1", rows)
    assert (choice.set, choice.objective, choice.limit_met) == (2, Decimal("0.02"), True)
    deep = [row(0, "0.05", "0.09", False), row(1, "0.01", "0.03", False)]
    assert (choose("1", deep).set, choose("1", deep).limit_met) == (1, False)
    assert choose("1", []).set is None


def test_a_sweep_folder_is_run_by_one_process_at_a_time(tmp_path: Path) -> None:
    meta = Meta("x", "s", "b", "d", "h", "now")
    folder = Folder.create(tmp_path / "sweep", meta, "sweep", "base")
    try:
        with pytest.raises(SweepError, match="the sweep is being run by process"):
            Folder(tmp_path / "sweep").lock()
    finally:
        folder.close()
    Folder(tmp_path / "sweep").lock()  # free again once the first is closed


def test_a_row_cut_off_by_a_kill_is_dropped_on_resume(tmp_path: Path) -> None:
    meta = Meta("x", "s", "b", "d", "h", "now")
    columns = header(["strategy.funding_window"], ["BTCUSDT"])
    folder = Folder.create(tmp_path / "sweep", meta, "sweep", "base")
    key = folder.meta().inputs()
    folder.open(columns, key)
    whole = {name: "1" for name in columns} | {"trial": "1-train-p0000", "kind": "train"}
    folder.append(dict(whole))
    folder.close()
    with (tmp_path / "sweep" / "trials.csv").open("a") as f:
        f.write("1-train-p0001,train,1,1,2024")  # the process died mid-line
    again = Folder(tmp_path / "sweep")
    again.lock()
    recorded = again.recorded(columns, key)
    assert [r["trial"] for r in recorded.rows] == ["1-train-p0000"]
    again.open(columns, key, recorded)
    again.append(whole | {"trial": "1-train-p0001"})
    again.close()
    lines = (tmp_path / "sweep" / "trials.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["trial", "1-train-p0000", "1-train-p0001"]


def test_a_worker_that_reads_other_data_is_refused_by_name() -> None:
    pairs = (("BTC/USDT", "BTC/USDT:USDT"),)
    right = fingerprint(DATA, "bybit", pairs)
    source = DataSource(str(DATA), "bybit", pairs, None, None, right)
    assert check_worker(source) is None
    wrong = DataSource(str(DATA), "bybit", pairs, None, None, "0" * 16)
    problem = check_worker(wrong)
    assert problem is not None
    assert "differs from the data the sweep was planned on" in problem
    missing = DataSource("/nonexistent/data", "bybit", pairs, None, None, right)
    assert "no data folder at /nonexistent/data" in (check_worker(missing) or "")
