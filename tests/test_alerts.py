"""Alerts (issue 22), through the CLI: ``orchestrator venue`` and ``orchestrator run`` (mode
live, real ccxt) each in its own process, real apprise, and a loopback HTTP receiver in
this process taking apprise's ``json://`` posts. Every event a live run claims is received;
a failing receiver is said once; a hanging one delays no open and is dropped at the end
with one line; the token in the URL is nowhere in what the run prints or writes.

The open's latency with a hanging receiver against none is measured by
``benchmarks/alerts_latency.py`` (figures, not asserts: the machine is shared)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.alerts.sender import Alerts, services
from orchestrator.alerts.settings import URLS_ENV, AlertSettings
from orchestrator.journal import Journal
from tests.alert_receiver import Mode, Receiver
from tests.test_crash_resume_live import (
    DATA,
    ROOT,
    WIDE,
    Watched,
    env,
    journal_state,
    write_config,
)
from tests.test_live_accounts import Venue
from tests.test_live_control import holding, live_config

TOKEN = "Tk7SENTINELalertToken0123456789xyz"  # the shape of a service's token
DOWN = {"rules": [{"kind": "http", "status": 503, "times": None}]}
REFUSE_PERP = {
    "rules": [
        {
            "kind": "reject",
            "endpoint": "order/create",
            "category": "linear",
            "ret_code": 10001,
            "ret_msg": "position idx not match position mode",
            "times": None,
        }
    ]
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started: list[Receiver] = []

    def start(mode: Mode = "ok") -> Receiver:
        started.append(Receiver(mode))
        return started[-1]

    yield start  # type: ignore[misc]
    for one in started:
        one.stop()


def alerting(workdir: Path, **settings: object) -> None:
    """The config's ``alerts:`` section (appended to the run's config.yaml)."""
    if settings:
        lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in settings.items())
        path = workdir / "config.yaml"
        path.write_text(path.read_text() + "alerts:\n" + lines)


def run(*args: str, cwd: Path, url: str | None) -> subprocess.Popen[str]:
    extra = {URLS_ENV: url} if url is not None else {}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd, env={**env(), **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_until(check: object, seconds: float, what: str, watched: Watched) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and watched.process.poll() is None:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} never came:\n{''.join(watched.lines)}")


def nowhere(token: str, workdir: Path, *printed: str) -> None:
    """The token is in nothing the runs printed, nor in any file under ``workdir`` but
    this test's own (the venue's spec and config hold no URL either)."""
    for text in printed:
        assert token not in text
    for path in workdir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def alerts_journaled(run_dir: Path) -> list[str]:
    with Journal.read(run_dir) as view:
        return [v for k, v in view.meta().items() if k.startswith("alert ")]


def test_a_live_run_alerts_its_start_opens_closes_the_venue_lost_and_back_and_its_stop(
    tmp_path: Path, receiver: object
) -> None:
    got: Receiver = receiver()  # type: ignore[operator]
    venue = Venue(tmp_path)
    try:
        write_config(tmp_path, venue.url, on_stop="leave")
        alerting(tmp_path, venue_lost_seconds=0.5)
        watched = Watched(run("run", "config.yaml", cwd=tmp_path, url=got.url(TOKEN)))
        got.wait_for("run started", 30)
        got.wait_for("position opened", 30)
        venue.admin("prices", WIDE)  # the basis widens: the strategy leaves
        got.wait_for("position closed", 30)
        venue.admin("faults", DOWN)  # every request answered 503 from now on
        got.wait_for("venue unreachable", 30)
        venue.admin("faults", {"rules": []})
        got.wait_for("venue answers again", 60)
        watched.process.send_signal(signal.SIGTERM)
        code, err = watched.finish(timeout=60)
        out = watched.process.stdout.read() if watched.process.stdout else ""
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    titles = [t.split(" (")[0] for t in got.titles()]
    assert titles == [
        "run started",
        "position opened",
        "position closed",
        "venue unreachable",
        "venue answers again",
        "run stopped",
    ], titles
    (run_dir,) = (tmp_path / "runs").glob("*")
    assert all(t.endswith(f"({run_dir.name})") for t in got.titles())  # which run
    opened = got.messages("position opened")[0]
    assert "BTCUSDT-0001 opened: long 0.45" in opened and "why: funding" in opened, opened
    assert "BTCUSDT-0001 closed (basis" in got.messages("position closed")[0]
    assert "the venue has not answered for" in got.messages("venue unreachable")[0]
    assert got.messages("run stopped")[0].startswith("Stopped: no position was open")
    assert "alerts:" not in err  # the service took every one: nothing to say
    assert len(alerts_journaled(run_dir)) == 6
    assert all(b["path"] == f"/hook/{TOKEN}" for b in got.received)
    nowhere(TOKEN, tmp_path, out, err)


def test_the_breaker_s_pause_and_rollback_are_alerted_and_a_failing_service_is_said_once(
    tmp_path: Path, receiver: object
) -> None:
    """The venue refuses every perp order: the open rolls back and the pair pauses. The
    receiver keeps each alert and answers 500: apprise's failure is said once on stderr,
    counted in the summary, and trading goes on."""
    got: Receiver = receiver("fail")  # type: ignore[operator]
    (tmp_path / "rules.json").write_text(json.dumps(REFUSE_PERP))
    venue = Venue(tmp_path, "--faults", str(tmp_path / "rules.json"))
    try:
        write_config(tmp_path, venue.url, on_stop="leave")
        watched = Watched(run("run", "config.yaml", cwd=tmp_path, url=got.url(TOKEN)))
        got.wait_for("paused by the breaker", 30)
        time.sleep(1)  # two polls more: nothing more is sent or said
        watched.process.send_signal(signal.SIGTERM)
        code, err = watched.finish(timeout=60)
        out = watched.process.stdout.read() if watched.process.stdout else ""
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    titles = [t.split(" (")[0] for t in got.titles()]
    assert titles == ["run started", "open rolled back", "paused by the breaker", "run stopped"]
    assert "position idx not match position mode" in got.messages("paused by the breaker")[0]
    assert "unwound to flat, at a cost of" in got.messages("open rolled back")[0]
    failures = [line for line in err.splitlines() if "did not take an alert" in line]
    assert len(failures) == 1, err
    assert failures[0].startswith("alerts: service 1 (json, from ORCHESTRATOR_ALERT_URLS)")
    assert "error=500" in failures[0]
    (run_dir,) = (tmp_path / "runs").glob("*")
    summary = json.loads((run_dir / "summary.json").read_text())
    said = [n for n in summary["alerts"] if n.startswith("alerts: service 1")]
    assert len(said) == 1 and "failed 4 of 4 alert(s)" in said[0], summary["alerts"]
    nowhere(TOKEN, tmp_path, out, err)


def test_a_hanging_service_delays_no_open_and_what_it_did_not_take_is_dropped_in_one_line(
    tmp_path: Path, receiver: object
) -> None:
    """The receiver takes each post and never answers: both pairs open all the same, the
    run stops at SIGTERM, and the alerts left are dropped after the drain with one line.
    (The open's latency against no receiver: benchmarks/alerts_latency.py.)"""
    got: Receiver = receiver("hang")  # type: ignore[operator]
    venue = Venue(tmp_path)
    try:
        live_config(tmp_path, venue.url, both=True)
        watched = Watched(run("run", "config.yaml", cwd=tmp_path, url=got.url(TOKEN)))
        run_dir = holding(tmp_path, watched, 2)
        watched.process.send_signal(signal.SIGTERM)
        code, err = watched.finish(timeout=60)
        out = watched.process.stdout.read() if watched.process.stdout else ""
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"validated": 2}, err  # on_stop: leave
    dropped = [line for line in err.splitlines() if "not sent: the alert service" in line]
    assert len(dropped) == 1, err
    assert any("not sent by the end of the run" in n for n in summary["alerts"]), summary
    # apprise's read timeout (4 s) fails the one it was waiting on: said once at most.
    assert sum("did not take an alert" in line for line in err.splitlines()) <= 1, err
    nowhere(TOKEN, tmp_path, out, err)


def test_a_run_killed_and_resumed_alerts_a_resume_after_a_crash_then_after_a_stop(
    tmp_path: Path, receiver: object
) -> None:
    got: Receiver = receiver()  # type: ignore[operator]
    venue = Venue(tmp_path)
    try:
        write_config(tmp_path, venue.url, on_stop="leave")
        url = got.url(TOKEN)
        first = Watched(run("run", "config.yaml", cwd=tmp_path, url=url))
        got.wait_for("position opened", 30)
        wait_until(
            lambda: "validated" in journal_state(next((tmp_path / "runs").glob("*")))[0],
            30, "the journal's validated position", first,
        )  # fmt: skip
        first.process.kill()
        first.finish(timeout=30)
        (run_dir,) = (tmp_path / "runs").glob("*")
        transcript = ""
        for _ in range(2):  # resumed after the crash, then after a stop
            again = Watched(run("run", "--resume", str(run_dir), cwd=tmp_path, url=url))
            count = len(got.messages("run resumed")) + 1
            got.wait_for("run resumed", 30, count=count)
            again.process.send_signal(signal.SIGTERM)
            code, err = again.finish(timeout=60)
            assert code == 143, err
            transcript += err + (again.process.stdout.read() if again.process.stdout else "")
    finally:
        venue.stop()
    assert "Traceback" not in transcript
    resumed = got.messages("run resumed")
    assert resumed[0].startswith("resumed after a crash: the run had died without stopping")
    assert "holding BTCUSDT-0001 validated" in resumed[0], resumed
    assert resumed[1].startswith("resumed after a stop"), resumed
    titles = [t.split(" (")[0] for t in got.titles()]
    assert titles == [
        "run started",
        "position opened",
        "run resumed",
        "run stopped",
        "run resumed",
        "run stopped",
    ], titles
    nowhere(TOKEN, tmp_path, "".join(first.lines), transcript)


def test_a_rehearsal_alerts_as_a_live_run_does_with_a_daily_summary(
    tmp_path: Path, receiver: object
) -> None:
    got: Receiver = receiver()  # type: ignore[operator]
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    alerting(tmp_path, daily_summary_hour=0, events=["started", "daily_summary", "stopped"])
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "rehearse", "--hours", "30", "--start",
         "2024-01-05"],
        cwd=tmp_path, env={**env(), URLS_ENV: got.url(TOKEN)}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got.wait_for("run stopped", 10)
    titles = [t.split(" (")[0] for t in got.titles()]
    assert titles == ["run started", "daily summary", "run stopped"], titles  # as selected
    assert "on the rehearsal's loopback venue" in got.messages("run started")[0]
    summary = got.messages("daily summary")[0]
    assert summary.startswith("equity ") and "funding +" in summary, summary
    assert "positions: BTCUSDT-0001 validated" in summary, summary
    nowhere(TOKEN, tmp_path, done.stdout, done.stderr)


# -- said before anything runs; nothing said when there are no alerts


@pytest.mark.parametrize(
    ("urls", "settings", "said"),
    [
        (
            f"json://127.0.0.1:9/{TOKEN} nosuchservice://{TOKEN}@x/y",
            {},
            "ORCHESTRATOR_ALERT_URLS: URL 2 (nosuchservice) is not one apprise can use",
        ),
        ("", {"url_envs": ["NO_SUCH_ALERT_VAR"]}, "alerts.url_envs names NO_SUCH_ALERT_VAR"),
        (
            "",
            {"url_envs": [f"json://127.0.0.1/{TOKEN}"]},
            "alerts.url_envs[0]: not the name of an environment variable",
        ),
        (
            "",
            {"events": ["opened", "liquidated"]},
            "alerts.events[1]: 'liquidated' is not an event",
        ),
    ],
    ids=["bad url", "unset variable", "url in the file", "unknown event"],
)
def test_an_alert_setting_that_cannot_be_used_is_said_before_anything_runs(
    tmp_path: Path, urls: str, settings: dict[str, object], said: str
) -> None:
    write_config(tmp_path, "http://127.0.0.1:9")  # nothing answers there: nothing is reached
    alerting(tmp_path, **settings)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=tmp_path, env={**env(), URLS_ENV: urls}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_live_run_without_alerts_says_nothing_of_them(tmp_path: Path) -> None:
    venue = Venue(tmp_path)
    try:
        write_config(tmp_path, venue.url, on_stop="leave")
        watched = Watched(run("run", "config.yaml", cwd=tmp_path, url=None))
        wait_until(lambda: watched.trading, 30, "trading", watched)
        watched.process.send_signal(signal.SIGTERM)
        code, err = watched.finish(timeout=60)
    finally:
        venue.stop()
    assert code == 143, err
    assert "alert" not in err.lower(), err
    (run_dir,) = (tmp_path / "runs").glob("*")
    assert alerts_journaled(run_dir) == []


# -- the sender itself: the rate limit, a full queue (no run: a clock of our own)


def test_an_identical_alert_is_sent_once_per_repeat_window_and_a_full_queue_is_said_once(
    receiver: object,
) -> None:
    got: Receiver = receiver()  # type: ignore[operator]
    now = [0.0]
    lines: list[str] = []
    settings = AlertSettings(repeat_minutes=30)
    found = services(settings, {URLS_ENV: got.url(TOKEN)})
    alerts = Alerts(found, settings, label="t", say=lines.append, clock=lambda: now[0])
    alerts.start()
    alerts.send("paused", "BTCUSDT: paused")
    now[0] += 29 * 60
    alerts.send("paused", "BTCUSDT: paused")  # within 30 min: held back
    alerts.send("paused", "ETHUSDT: paused")  # other words: sent
    now[0] += 2 * 60
    alerts.send("paused", "BTCUSDT: paused")  # 31 min after the first: sent again
    assert alerts.close() == [
        "alerts: 1 repeat(s) of an identical alert held back (alerts.repeat_minutes: 30)"
    ]
    assert got.messages("paused") == ["BTCUSDT: paused", "ETHUSDT: paused", "BTCUSDT: paused"]
    assert lines == []
    with pytest.raises(ValueError, match="no alert event"):
        alerts.send("liquidated", "x")

    hung: Receiver = receiver("hang")  # type: ignore[operator]
    full = Alerts(
        services(settings, {URLS_ENV: hung.url(TOKEN)}), settings, label="t",
        say=lines.append, queue_size=2, drain_seconds=0.2,
    )  # fmt: skip
    full.start()
    started = time.perf_counter()
    for i in range(10):
        full.send("opened", f"p{i}")
    assert time.perf_counter() - started < 1  # never waits (a generous bound: a shared CPU)
    notes = full.close()
    assert sum("queue of 2 alerts is full" in line for line in lines) == 1, lines
    # 10 sent: 2 queued, at most 1 taken by the worker (then hung), the rest dropped.
    assert any(re.match(r"alerts: [78] dropped while the queue \(2\) was full", n) for n in notes)
    assert any("not sent by the end of the run" in n for n in notes), notes
    assert all(TOKEN not in line for line in lines + notes)


def test_an_environment_variable_named_in_the_config_adds_its_services() -> None:
    settings = AlertSettings(url_envs=["TEAM_ALERTS"])
    found = services(
        settings,
        {URLS_ENV: "json://127.0.0.1:9/a", "TEAM_ALERTS": "json://127.0.0.1:9/b, ntfy://t"},
    )
    assert [(s.number, s.scheme, s.source) for s in found] == [
        (1, "json", URLS_ENV),
        (2, "json", "TEAM_ALERTS"),
        (3, "ntfy", "TEAM_ALERTS"),
    ]
    assert os.environ.get("TEAM_ALERTS") is None  # read from the mapping given only
    assert DATA.is_dir()
