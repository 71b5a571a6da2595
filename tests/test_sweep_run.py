"""Sweeps that run: in this process and on real Dask clusters (2 local workers on
127.0.0.1), compared to the last Decimal; a worker killed mid-sweep; no look-ahead."""

from __future__ import annotations

import csv
import decimal
import gzip
import io
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from orchestrator.commands import sweep as app
from orchestrator.config import load
from orchestrator.replay.session import prepare, replay_both
from orchestrator.sweep.search import Counts
from orchestrator.sweep.trial import loads
from orchestrator.trading.figures import summarise
from tests.sweep_support import (
    DATA,
    SMALL,
    SMALL_TRIALS,
    local_cluster,
    run_cli,
    sweep_folder,
    trials,
    write_sweep,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL run in this process, one trial after another: the figures to match."""
    folder = tmp_path_factory.mktemp("in-process")
    path = write_sweep(folder)
    out, err = io.StringIO(), io.StringIO()
    assert app.sweep(path, in_process=True, out=out, err=err) == 0, err.getvalue()
    found = sweep_folder(folder)
    (folder / "report.txt").write_text(out.getvalue())  # what the command printed
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    """A real 2-worker Dask cluster on 127.0.0.1, no dashboard; stopped after the module."""
    from distributed import Client

    with local_cluster(2) as local, Client(local) as client:
        yield local, client


def quiet() -> dict[str, Any]:
    return {"out": io.StringIO(), "err": io.StringIO()}


def test_the_sweep_folder_holds_everything_and_best_yaml_runs(reference: Path) -> None:
    names = {p.name for p in reference.iterdir()}
    assert {"sweep.yaml", "base.yaml", "trials.csv", "summary.json", "chart.html"} <= names
    assert "best.yaml" in names
    rows = trials(reference)
    assert len(rows) == SMALL_TRIALS
    assert len({r["trial"] for r in rows}) == SMALL_TRIALS
    assert {r["kind"] for r in rows} == {"train", "test", "base"}
    for row in rows:  # figures are exact decimal text
        Decimal(row["total.net_pnl"]) + Decimal(row["baseline.total.return"])
        assert row["ledger_balances"] == "true"
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["complete"] is True
    assert summary["trials"] == {"total": 28, "done": 28, "failed": 0, "recorded_before": 0}
    assert [s["step"] for s in summary["steps"]] == ["1", "2", "3", "4", "next"]
    oos = summary["out_of_sample"]
    assert oos["windows"] == 4
    assert oos["start"].startswith("2024-03-01")
    assert oos["end"].startswith("2024-07-01")
    beats = Decimal(oos["search"]["return"]) > Decimal(oos["always_hedged"]["return"])
    assert oos["beats_always_hedged"] is beats
    assert ("BEAT staying hedged" if beats else "did NOT beat staying hedged") in summary["verdict"]
    chart = (reference / "chart.html").read_text()
    assert "<svg" in chart
    assert "<script" not in chart
    assert "Objective (excess_return)" in chart
    # best.yaml: the set chosen on the latest train window, a config `orchestrator run` takes.
    best = load(reference / "best.yaml").config
    chosen = summary["best"]["parameters"]
    assert summary["best"]["step"] == "next"
    assert str(best.strategy.entry_annualised) == chosen["strategy.entry_annualised"]
    assert str(best.strategy.funding_window) == chosen["strategy.funding_window"]
    code, out, err = run_cli("run", str(reference / "best.yaml"))
    assert code == 0, err
    assert "ledger balances" in out


def _stitched(folder: Path, trial_kind: str, field: str) -> list[Decimal]:
    """The out-of-sample curve rebuilt from curves.jsonl alone: each test window's equity
    scaled so it starts where the last one ended (plain Decimal, 200 digits)."""
    lines = [json.loads(line) for line in (folder / "curves.jsonl").read_text().splitlines()]
    curve: list[Decimal] = []
    with decimal.localcontext(prec=200):
        for line in lines:
            if not line["trial"].endswith(f"-{trial_kind}"):
                continue
            values = [Decimal(v) for _, v in line[field]]
            factor = Decimal(1) if not curve else curve[-1] / values[0]
            curve += [v * factor for v in values]
    return curve


@pytest.mark.parametrize(
    ("leg", "kind", "field"),
    [
        ("search", "test", "equity"),
        ("base", "base", "equity"),
        ("always_hedged", "test", "baseline"),
    ],
)
def test_out_of_sample_figures_are_the_stitched_curves_own(
    reference: Path, leg: str, kind: str, field: str
) -> None:
    """Net PnL, return and drawdown out of sample all come from one stitched curve: the
    PnL is its last equity minus its first, not a sum of per-window PnLs."""
    summary = json.loads((reference / "summary.json").read_text())
    figures = summary["out_of_sample"][leg]
    curve = _stitched(reference, kind, field)
    assert len(curve) > 4 * 24 * 28  # four test windows of hourly equity
    with decimal.localcontext(prec=200):
        assert Decimal(figures["net_pnl"]) == curve[-1] - curve[0]
        assert Decimal(figures["return"]) == curve[-1] / curve[0] - 1
        assert Decimal(figures["ending_equity"]) == curve[-1]
        peak, worst = curve[0], Decimal(0)
        for v in curve:
            peak = max(peak, v)
            worst = max(worst, (peak - v) / peak)
        assert Decimal(figures["max_drawdown"]) == worst
    # The windows lose or gain on each other's base, so the sum of their own PnLs differs.
    rows = {r["trial"]: r for r in trials(reference)}
    column = "baseline.total.net_pnl" if field == "baseline" else "total.net_pnl"
    summed = sum(Decimal(r[column]) for t, r in rows.items() if t.endswith(f"-{kind}"))
    assert summed != Decimal(figures["net_pnl"])
    assert (
        f"net PnL {Decimal(figures['net_pnl']):,.2f}"
        in (reference.parents[1] / "report.txt").read_text()
    )


def test_a_trial_is_the_run_of_its_config_on_its_window(reference: Path) -> None:
    """A trial's figures are what `orchestrator run` gives for its config with data.start
    and data.end set to its window."""
    row = next(r for r in trials(reference) if r["trial"] == "2-train-p0003")
    loaded = load(reference / "base.yaml")
    config = loaded.config
    config = msgspec.structs.replace(
        config,
        strategy=msgspec.structs.replace(
            config.strategy,
            entry_annualised=Decimal(row["strategy.entry_annualised"]),
            funding_window=int(row["strategy.funding_window"]),
        ),
        data=msgspec.structs.replace(config.data, start=row["window_start"], end=row["window_end"]),
    )
    loaded = msgspec.structs.replace(loaded, config=config, path=reference.parents[1] / "x.yaml")
    prepared = prepare(loaded)
    result, baseline = anyio.run(replay_both, prepared, lambda label: None, Never())
    summary = summarise("run", result, baseline, [])
    assert Decimal(row["total.net_pnl"]) == summary.total.net_pnl
    assert Decimal(row["total.max_drawdown"]) == summary.total.max_drawdown
    assert Decimal(row["ETHUSDT.funding"]) == summary.pairs["ETHUSDT"].funding
    assert summary.baseline_total is not None
    assert Decimal(row["baseline.total.return"]) == summary.baseline_total.return_
    assert int(row["total.positions"]) == summary.total.positions


def test_resume_of_a_finished_sweep_runs_nothing_and_refuses_changed_data(
    reference: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "sweep"
    shutil.copytree(reference, folder)
    before = (folder / "trials.csv").read_text()
    code, out, err = run_cli("sweep", "--resume", str(folder), "--in-process")
    assert code == 0, err
    assert f"trials: {SMALL_TRIALS} of {SMALL_TRIALS} done ({SMALL_TRIALS} recorded before" in out
    assert (folder / "trials.csv").read_text() == before
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(meta | {"data_hash": "0" * 16}))
    code, _, err = run_cli("sweep", "--resume", str(folder), "--in-process")
    assert code == 2
    assert "is not the data this sweep started on" in err


class Never:
    def is_set(self) -> bool:
        return False


def test_two_dask_workers_give_the_in_process_figures_to_the_last_digit(
    reference: Path, cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    local, client = cluster
    path = write_sweep(tmp_path)
    assert app.sweep(path, scheduler=local.scheduler_address, **quiet()) == 0
    folder = sweep_folder(tmp_path)
    assert (folder / "trials.csv").read_text() == (reference / "trials.csv").read_text()
    assert (folder / "curves.jsonl").read_text() == (reference / "curves.jsonl").read_text()
    mine = json.loads((folder / "summary.json").read_text())
    theirs = json.loads((reference / "summary.json").read_text())
    assert mine["out_of_sample"] == theirs["out_of_sample"]
    assert mine["steps"] == theirs["steps"]
    assert "the Dask cluster at tcp://127.0.0.1" in mine["engine"]
    # The data was loaded once per worker (checked before the first trial), not per trial.
    assert sorted(client.run(loads).values()) == [1, 1]


def test_data_sent_to_the_workers_gives_the_same_figures(
    reference: Path, cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    local, client = cluster
    before = client.run(loads)
    path = write_sweep(tmp_path, SMALL + "send_data: true\n")
    assert app.sweep(path, scheduler=local.scheduler_address, **quiet()) == 0
    folder = sweep_folder(tmp_path)
    # Every figure the same (the checks differ: they bind each row to its own sweep file).
    assert [r | {"check": ""} for r in trials(folder)] == [
        r | {"check": ""} for r in trials(reference)
    ]
    assert client.run(loads) == before  # nothing read from disk: the data came with the task


def test_a_worker_killed_mid_sweep_loses_no_trial_and_reports_each_once(
    reference: Path, tmp_path: Path
) -> None:
    from distributed import Client

    path = write_sweep(tmp_path)
    with local_cluster(2) as local, Client(local) as client:
        pids = list(client.run(os.getpid).values())
        killed: list[int] = []

        def kill_one(counts: Counts) -> None:
            if not killed and counts.done >= 4 and counts.running:
                os.kill(pids[0], signal.SIGKILL)  # the worker dies mid-trial
                killed.append(pids[0])

        err = io.StringIO()
        code = app.sweep(
            path, scheduler=local.scheduler_address, progress=kill_one, out=io.StringIO(), err=err
        )
        assert killed
        assert pids[0] not in client.run(os.getpid).values()
    assert code == 0
    folder = sweep_folder(tmp_path)
    rows = trials(folder)
    # It says so: on stderr as it happens, and in the report's engine.
    (lost,) = [line for line in err.getvalue().splitlines() if "was lost mid-sweep" in line]
    said = re.fullmatch(
        r"warning: Dask worker (tcp://127\.0\.0\.1:\d+) was lost mid-sweep; the trials it held "
        r"\((.+)\) are run again on the others",
        lost,
    )
    assert said is not None, lost
    assert set(said[2].split(", ")) <= {r["trial"] for r in rows}  # trials of this sweep
    engine = json.loads((folder / "summary.json").read_text())["engine"]
    count = len(said[2].split(", "))
    assert engine.endswith(
        f"; 1 worker lost mid-sweep ({said[1]}), {count} trial{'s' * (count != 1)} run again "
        "on the others"
    )
    assert sorted(r["trial"] for r in rows) == sorted(r["trial"] for r in trials(reference))
    assert (folder / "trials.csv").read_text() == (reference / "trials.csv").read_text()


def _shift_after(source: Path, target: Path, cut: str) -> None:
    """A copy of the recorded data with every row stamped at or after ``cut`` changed:
    prices half as high again, funding rates of the opposite sign."""
    target.mkdir()
    for path in source.glob("bybit_*"):
        if not path.name.endswith(".csv.gz"):
            shutil.copyfile(path, target / path.name)
            continue
        with gzip.open(path, "rt", newline="") as f:
            rows = list(csv.reader(f))
        head, body = rows[0], rows[1:]
        for row in body:
            if row[0] < cut:
                continue
            if head[1] == "funding_rate":
                row[1] = str(-Decimal(row[1]))
            else:
                for i in range(1, 5):
                    row[i] = str(Decimal(row[i]) * Decimal("1.5"))
        with gzip.open(target / path.name, "wt", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([head, *body])


def test_changing_the_data_after_a_window_changes_nothing_reported_for_it(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_DATA", raising=False)
    cut = "2024-05-01T00:00:00Z"
    _shift_after(DATA, tmp_path / "data", cut)
    path = write_sweep(tmp_path, data=tmp_path / "data")
    assert app.sweep(path, in_process=True, **quiet()) == 0
    # Every figure compared; not the rows' checks, which bind each row to its sweep's data.
    changed = {r["trial"]: r | {"check": ""} for r in trials(sweep_folder(tmp_path))}
    before = {r["trial"]: r | {"check": ""} for r in trials(reference)}
    same = [t for t, r in before.items() if r["window_end"] <= "2024-05-01T00:00:00+00:00"]
    assert len(same) == 4 + 2 + 4 + 2 + 4  # steps 1 and 2, and step 3's train window
    for trial in same:
        assert changed[trial] == before[trial], trial
    # Step 3 chose on its train window (March to April): the same choice.
    assert changed["3-test"]["set"] == before["3-test"]["set"]
    # The change is real: what was replayed after the cut moved.
    after = [t for t, r in before.items() if r["window_start"] >= "2024-05-01T00:00:00+00:00"]
    assert after
    assert any(changed[t]["total.funding"] != before[t]["total.funding"] for t in after)


def test_a_trial_that_fails_is_reported_with_its_error_and_the_others_go_on(
    cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    from orchestrator.config import Pair
    from orchestrator.sweep.engine import Engine, InProcess, open_dask
    from orchestrator.sweep.plan import make_plan
    from orchestrator.sweep.trial import TrialSpec

    local, _ = cluster
    plan = make_plan(write_sweep(tmp_path))
    _, good = plan.train(plan.steps[0], 0)
    sol = msgspec.structs.replace(plan.base.config, pairs=[Pair("SOL/USDT", "SOL/USDT:USDT")])
    bad = TrialSpec("bad", sol, good.window)  # a pair the data does not hold
    engines: list[Engine] = [
        InProcess(plan.market),
        open_dask(local.scheduler_address, None, 10, plan.source, plan.market, False),
    ]
    for engine in engines:
        try:
            engine.submit(bad)
            engine.submit(good)
            outcomes = {}
            while engine.in_flight():
                outcomes.update({o.spec.trial: o for o in engine.collect(1.0)})
        finally:
            engine.close()
        assert outcomes["bad"].result is None
        assert "SOL/USDT" in (outcomes["bad"].error or "")
        assert outcomes[good.trial].result is not None
