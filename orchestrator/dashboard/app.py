"""The dashboard's routes (Starlette): the pages, the live updates (server-sent events)
and the controls' JSON API.

Pages are read-only. Controls write a request into a running run's control folder, as
``orchestrator stop/pause/resume-trading`` do, and only when the dashboard has a token
and the request carries it in the ``X-Dashboard-Token`` header; a request from another
site is refused before the token is looked at: the Host must be the address served, an
Origin (when sent) must be that same address, and the body must be JSON (a form from
another site cannot send it without the browser asking first, and nothing here answers
that question). The token is never written into a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator import config_file
from orchestrator.config import STEERABLE_SETTINGS, Config, ConfigError, load
from orchestrator.control import COMMANDS, MAX_SETTINGS, ControlError, new_request, running, send
from orchestrator.dashboard import folders, pages, sweep_page
from orchestrator.dashboard.folders import Cache, NotARun, positions_page
from orchestrator.dashboard.live_market import LiveMarket
from orchestrator.dashboard.market import Market, market_page, read_market
from orchestrator.dashboard.money import read_money
from orchestrator.dashboard.money_page import money_page
from orchestrator.dashboard.sweeps import read_sweep, read_trial, summary_of, sweep_names
from orchestrator.dashboard.trial_page import trial_page
from orchestrator.journal.lock import JournalError
from orchestrator.journal.status import STRATEGY_NOW
from orchestrator.output import plots
from orchestrator.output.diagram import has_dot, svg
from orchestrator.tracing import inspect, trace_file

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_HEADER = "X-Dashboard-Token"
POLL_SECONDS = 0.5  # how often the live updates look at the run's files (stat only)
STEERABLE = ("live", "dry-run", "rehearsal")  # as orchestrator stop/pause steer
ANSWER_WAIT = 30.0


@dataclass
class Settings:
    runs: Path
    sweeps: Path
    token: str | None = None  # None: read-only
    config: Path | None = None  # the market page's config (its data folder, universe)
    addresses: tuple[str, ...] = ()  # host:port this server answers as (filled at start)
    # Set when the server is asked to stop: the live streams end, so shutting down never
    # waits on a browser that keeps one open.
    stopping: threading.Event = field(default_factory=threading.Event)


def html(frame: pages.Frame, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(pages.layout(frame, body), status_code=status)


def create_app(settings: Settings) -> Starlette:
    cache = Cache()

    def now_ms() -> int:
        return int(time.time() * 1000)

    def run_of(request: Request) -> tuple[str, Path]:
        name = str(request.path_params["run"])
        return name, folders.run_dir(settings.runs, name)

    def config_of(run: Path) -> Config | None:
        try:
            return config_file.decode(cache.view(run).meta().get("config", ""), Config)
        except (config_file.Invalid, JournalError):
            return None

    def thresholds(run: Path) -> dict[str, str]:
        """The strategy's thresholds the run decides with now: as changed by
        orchestrator set (journaled), else as its config says."""
        changed = _json_text(cache.view(run).meta().get(STRATEGY_NOW))
        if isinstance(changed, dict):
            return {name: str(changed.get(name, "")) for name in STEERABLE_SETTINGS}
        config = config_of(run)
        if config is None:
            return {}
        return {name: str(getattr(config.strategy, name)) for name in STEERABLE_SETTINGS}

    def frame(title: str, run: str | None = None) -> pages.Frame:
        events = f"/runs/{run}/events" if run else "/events"
        return pages.Frame(title, run, events, controls=settings.token is not None)

    def runs(request: Request) -> HTMLResponse:
        rows: list[tuple[str, Any, str, str, int]] = []
        for name in folders.run_names(settings.runs):
            run = settings.runs / name
            try:
                status = cache.status(run, now_ms())
            except JournalError as exc:
                rows.append((name, str(exc), "", "", 0))
                continue
            config = config_of(run)
            venue: str = "-" if config is None else config.venue
            if config is not None and status.mode == "live":
                venue += f" {config.network}"
            alerts = len(_summary_alerts(run))
            rows.append((name, status, pages.kind_of(status, config), venue, alerts))
        return html(frame("Runs"), pages.runs_page(rows, str(settings.runs)))

    def run_page(request: Request) -> HTMLResponse:
        name, run = run_of(request)
        status = cache.status(run, now_ms())
        state = request.query_params.get("state") or None
        offset = _int(request.query_params.get("offset"))
        page = positions_page(
            cache.view(run), cache.page_context(run, now_ms()), state, offset, folders.PAGE_SIZE
        )
        body = pages.status_block(status) + pages.positions_block(name, page)
        if settings.token is not None and status.mode in STEERABLE:
            body = pages.controls_block(name, status, thresholds(run)) + body
        return html(frame(f"Run {name}", name), body)

    def position(request: Request) -> HTMLResponse:
        name, run = run_of(request)
        position_id = str(request.path_params["position"])
        view = cache.view(run)
        rows = [r for r in cache.status(run, now_ms()).positions if r.position.id == position_id]
        transitions = view.transitions(position_id)
        if not rows and not transitions:
            return html(frame("No such position", name), "<p>Not in this run.</p>", 404)
        detail: inspect.PositionDetail | str
        spans = cache.get(run, "spans", lambda: _spans(run))
        try:
            detail = inspect.position_detail(spans, position_id)
        except inspect.PositionNotInTraceError as exc:
            detail = f"no timeline: {exc}"
        steps = [(t.event, t.source, t.target) for t in transitions]
        body = pages.position_page(name, rows[0] if rows else None, transitions, detail,
                                   _diagram(steps))  # fmt: skip
        return html(frame(f"Position {position_id}", name), body)

    def machine(request: Request) -> HTMLResponse:
        name, run = run_of(request)
        counts = {str(k or "(none)"): n for k, n in cache.view(run).state_counts().items()}
        return html(frame("The position machine", name),
                    pages.machine_page(counts, _diagram((), counts)))  # fmt: skip

    def money(request: Request) -> HTMLResponse:
        name, run = run_of(request)
        m = cache.get(run, "money", lambda: read_money(run, cache.view(run)))
        body = money_page(name, m, _int(request.query_params.get("offset")))
        return html(frame(f"Money of {name}", name), body)

    def sweeps(request: Request) -> HTMLResponse:
        rows = []
        for name in sweep_names(settings.sweeps):
            summary = summary_of(settings.sweeps / name)
            if summary is not None:
                rows.append((name, summary))
        return html(frame("Sweeps"), sweep_page.sweeps_page(rows, str(settings.sweeps)))

    market_cache: dict[object, Market] = {}
    live_markets: dict[object, LiveMarket] = {}

    async def market(request: Request) -> HTMLResponse:
        # Read again when the config or the data folder changes (a download adds files).
        key = tuple(_mtime(p) for p in (settings.config, _data_dir(settings.config)))
        if key not in market_cache:
            market_cache.clear()
            live_markets.clear()
            market_cache[key] = await run_in_threadpool(read_market, settings.config)
        found = market_cache[key]
        if found.live is None:
            return html(frame("Market"), market_page(found))
        reading = live_markets.setdefault(key, LiveMarket(found.live)).view()
        # While a read is under way the page asks again every 2 s (no script needed).
        body = '<meta http-equiv="refresh" content="2">' if reading.busy else ""
        body += f'<p class="note" id="market-status">{pages.esc(reading.status)}.</p>'
        if reading.market is not None:
            body += market_page(reading.market)
        return html(frame("Market"), body)

    def sweep(request: Request) -> HTMLResponse:
        name = str(request.path_params["sweep"])
        found = read_sweep(settings.sweeps, name)
        return html(frame(f"Sweep {name}"), sweep_page.sweep_page(found))

    def trial(request: Request) -> HTMLResponse:
        name, trial_id = str(request.path_params["sweep"]), str(request.path_params["trial"])
        found = read_trial(settings.sweeps, name, trial_id)
        return html(frame(f"Trial {trial_id}"), trial_page(found))

    async def events(request: Request) -> Response:
        """Server-sent events: one ``change`` each time the files watched change."""
        if "run" in request.path_params:
            _, run = run_of(request)
            watched = [run]
        else:
            watched = []

        def now() -> object:
            if watched:
                return folders.signature(watched[0])
            names = folders.run_names(settings.runs)
            return tuple((n, folders.signature(settings.runs / n)) for n in names)

        async def stream() -> AsyncIterator[str]:
            last = now()
            yield f"event: hello\ndata: {json.dumps({'at_ms': now_ms()})}\n\n"
            quiet = 0.0
            while not settings.stopping.is_set() and not await request.is_disconnected():
                await asyncio.sleep(POLL_SECONDS)
                current = now()
                if current != last:
                    last = current
                    quiet = 0.0
                    yield f"event: change\ndata: {json.dumps({'at_ms': now_ms()})}\n\n"
                else:
                    quiet += POLL_SECONDS
                    if quiet >= 15:  # a comment keeps proxies and the browser connected
                        quiet = 0.0
                        yield ": still here\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def control(request: Request) -> JSONResponse:
        refused = _refuse_cross_site(request, settings)
        if refused is not None:
            return refused
        if settings.token is None:
            return _error(403, "read-only: the dashboard was started without a token")
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            return _error(401, f"the {TOKEN_HEADER} header does not hold the token")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        command = body.get("command") if isinstance(body, dict) else None
        if command not in COMMANDS:
            return _error(400, f"command must be one of {', '.join(COMMANDS)}")
        _, run = run_of(request)
        mode = cache.view(run).meta().get("mode", "")
        if mode not in STEERABLE:
            why = f"a {mode or 'paper'} run cannot be steered (a replay runs in seconds)"
            return _error(409, why)
        if running(run) is None:
            return _error(409, "the run is not running")
        pair = body.get("pair") if isinstance(body.get("pair"), str) else None
        close_all = command == "stop" and body.get("close_all") is True
        changes = body.get("settings") or {}
        if command == "set" and (
            not isinstance(changes, dict)
            or not changes
            or len(changes) > MAX_SETTINGS
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in changes.items())
        ):
            return _error(400, f"settings: at most {MAX_SETTINGS} names, each with a text value")
        req = new_request(
            command,
            close_all=close_all,
            pair=pair or None,
            settings=changes if command == "set" else None,
            via="the dashboard",
        )
        try:
            answer = send(run, req)
        except ControlError as exc:
            return _error(500, str(exc))
        deadline = time.monotonic() + ANSWER_WAIT
        while time.monotonic() < deadline:
            if answer.is_file():
                text = answer.read_text(encoding="utf-8", errors="replace")
                with contextlib.suppress(OSError):
                    answer.unlink()
                return JSONResponse({"asked": req.words(), "answer": text})
            if running(run) is None:
                return _error(409, "the run ended before it took the request")
            await asyncio.sleep(0.1)
        return JSONResponse(
            {"asked": req.words(), "answer": "no answer yet: the run takes it at its next cycle"},
            status_code=202,
        )

    async def not_a_run(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return _error(404, "no such run")
        return html(frame("Not found"), "<p>No run or sweep folder of that name.</p>", 404)

    async def unreadable(request: Request, exc: Exception) -> Response:
        return html(frame("Cannot read the run"), f"<p>{pages.esc(exc)}</p>", 500)

    routes = [
        Route("/", runs),
        Route("/market", market),
        Route("/sweeps", sweeps),
        Route("/sweeps/{sweep}", sweep),
        Route("/sweeps/{sweep}/trials/{trial}", trial),
        Route("/events", events),
        Route("/runs/{run}", run_page),
        Route("/runs/{run}/machine", machine),
        Route("/runs/{run}/money", money),
        Route("/runs/{run}/events", events),
        Route("/runs/{run}/positions/{position}", position),
        Route("/api/runs/{run}/control", control, methods=["POST"]),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        # uPlot and charts.js: output's, shared with a run's chart.html
        Mount("/static/charts", StaticFiles(directory=plots.ASSETS), name="charts"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    handlers = {NotARun: not_a_run, JournalError: unreadable}
    return Starlette(routes=routes, exception_handlers=handlers)


def _refuse_cross_site(request: Request, settings: Settings) -> JSONResponse | None:
    host = request.headers.get("host", "")
    if host not in settings.addresses:
        return _error(403, "refused: the Host header is not this dashboard's address")
    origin = request.headers.get("origin")
    if origin is not None and origin not in {f"http://{a}" for a in settings.addresses}:
        return _error(403, "refused: a request from another site")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "the body must be JSON (Content-Type: application/json)")
    return None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _diagram(steps: Any, counts: dict[str, int] | None = None) -> str:
    if not has_dot():
        return "<p>No diagram: Graphviz's dot is not installed (apt-get install graphviz).</p>"
    text = svg("position", steps, counts).decode("utf-8")
    return text[text.find("<svg") :]  # inline: the XML prologue and doctype dropped


def _spans(run: Path) -> list[trace_file.SpanRecord]:
    path = run / "traces.jsonl"
    if not path.is_file():
        return []
    spans, _ = trace_file.read_spans(path)
    return spans


def _mtime(path: Path | None) -> int | None:
    try:
        return None if path is None else path.stat().st_mtime_ns
    except OSError:
        return None


def _data_dir(config: Path | None) -> Path | None:
    if config is None:
        return None
    try:
        return load(config).data_dir()
    except ConfigError:
        return None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _json_text(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _summary_alerts(run: Path) -> list[Any]:
    alerts = (_json(run / "summary.json") or {}).get("alerts")
    return alerts if isinstance(alerts, list) else []


def _int(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0
