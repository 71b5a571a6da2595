"""``Alerts``: apprise notifications sent off the trading path.

The trading path only calls ``send``: a look at the event's selection and the rate limit,
and a ``put_nowait`` on a bounded queue. It never waits and never raises for a slow or
failing service. One worker thread (a daemon, owned by the ``Alerts`` that starts it)
takes the queue and calls apprise, whose ``notify`` is blocking I/O.

- The queue holds ``QUEUE_SIZE`` alerts. A live run raises a few an hour; 100 holds a
  burst from every pair at once (an emergency stop closing dozens of positions) while a
  service is slow. When it is full, a new alert is dropped, said once, counted.
- A service that fails is said once on stderr (which service, by its number and scheme,
  with apprise's words stripped of every part of its URL), then counted: the summary's
  notes say how many failed. Never a line per failure.
- An identical alert (the same event and words) is sent at most once per
  ``alerts.repeat_minutes`` (settings.py says why 30).
- While the run has orders in flight, the worker waits (``hold_while``, at most
  ``HOLD_SECONDS``): a send takes a few milliseconds of Python, which would otherwise
  contend with the event loop for the interpreter's lock while it places both legs.
- At the end, ``close`` lets the worker drain the queue for ``DRAIN_SECONDS``, then drops
  what is left with one line saying how many were lost. The worker is a daemon: a service
  that hangs cannot hold the process past that.

A URL is only ever handed to apprise: never printed, traced, journaled or quoted. An
invalid one is named by its place (``ORCHESTRATOR_ALERT_URLS``, its number) and scheme.
apprise's own log (which shows URLs at debug level) goes to no handler; a failure's line
reads apprise's warning from the notify call's result, with every part of the URL hidden.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import anyio
import apprise
from apprise.utils.parse import parse_urls as _parse_urls

from orchestrator.alerts.events import EVENTS
from orchestrator.alerts.settings import URLS_ENV, AlertSettings
from orchestrator.exceptions import OrchestratorError

QUEUE_SIZE = 100
DRAIN_SECONDS = 5.0  # at the end of a run, what the service gets to take what is queued
MAX_KEYS = 1024  # rate limit: distinct alerts remembered before the old ones are forgotten
MAX_REASON = 240  # characters of apprise's words in a failure's line
# An alert waits while orders are in flight (``hold_while``), at most this long: apprise's
# few milliseconds of Python per send would otherwise take the interpreter's lock from
# the event loop while it places both legs.
HOLD_SECONDS = 2.0

# apprise's own split (space or comma separated, a comma inside a URL's query kept); it is
# not annotated.
parse_urls: Callable[[str], list[str]] = _parse_urls
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,19}")
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")  # a lower-case host name or IPv4 address


class AlertsError(OrchestratorError):
    """An alert URL or setting cannot be used; the message never quotes a URL."""


# apprise's log shows URLs at debug level: it goes to no handler but a null one (with no
# handler at all, Python's last resort would print its warnings on stderr). What a failure
# says is read from the notify call's own result (its captured warnings), then redacted.
_APPRISE_LOG = logging.getLogger("apprise")
_APPRISE_LOG.addHandler(logging.NullHandler())
_APPRISE_LOG.propagate = False


# apprise sends in the calling thread (the worker, a daemon), not in a pool of its own,
# whose threads would hold the process's exit while a service hangs: no async mode, no
# service deadline (which waits in a pool). The plugins' socket timeouts (4 s to connect,
# 4 s to read, by default; ``?cto=``/``?rto=`` in a URL) bound each request.
_ASSET = apprise.AppriseAsset(async_mode=False, service_timeout=0)


def _words(result: object) -> str:
    """apprise's last warning or error in a notify call's result."""
    logs = getattr(result, "logs", None)
    last = ""
    if logs is not None:
        for entry in logs():
            if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL"):
                last = str(getattr(entry, "message", ""))
    return last


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    return scheme if "://" in url and _SCHEME.fullmatch(scheme) else "unknown scheme"


def _secrets(url: str) -> list[str]:
    """Every part of ``url`` a message must not show: all of it, and each piece between
    its separators but the scheme, host names and port numbers (tokens sit in any part:
    the host of tgram://TOKEN/CHAT, the path of a webhook, the query)."""
    rest = url.partition("://")[2] or url
    pieces = {url, rest, unquote(url), unquote(rest)}
    for piece in re.split(r"[/:@?&=#,;+\s]+", rest):
        for form in (piece, unquote(piece)):
            if len(form) < 4 or _HOST.fullmatch(form) or (form.isdigit() and len(form) <= 5):
                continue
            pieces.add(form)
    return sorted(pieces, key=len, reverse=True)


def redact(words: str, secrets: list[str]) -> str:
    for secret in secrets:
        words = words.replace(secret, "<hidden>")
    words = " ".join(words.split()).rstrip(".")
    return words if len(words) <= MAX_REASON else words[: MAX_REASON - 3] + "..."


@dataclass
class Service:
    """One URL's service: named by its number and scheme, never by its URL."""

    number: int  # 1-based, in the order found
    scheme: str
    source: str  # the environment variable it came from
    notifier: apprise.Apprise
    secrets: list[str]
    taken: int = 0
    failed: int = 0
    first_failure: str = ""

    def name(self) -> str:
        return f"service {self.number} ({self.scheme}, from {self.source})"


def services(settings: AlertSettings, environ: Mapping[str, str] | None = None) -> list[Service]:
    """The services the environment names: ``ORCHESTRATOR_ALERT_URLS`` and each variable
    ``alerts.url_envs`` names (space or comma separated apprise URLs). AlertsError for a
    named variable that is unset or a URL apprise cannot use, without quoting it."""
    env = os.environ if environ is None else environ
    sources = [(URLS_ENV, env.get(URLS_ENV, ""))]
    for name in settings.url_envs:
        value = env.get(name, "")
        if not value.strip():
            raise AlertsError(
                f"alerts.url_envs names {name}, which is not set in the environment (or "
                "is empty); nothing was sent"
            )
        sources.append((name, value))
    found: list[Service] = []
    for source, value in sources:
        for i, url in enumerate(parse_urls(value), start=1):
            notifier = apprise.Apprise(asset=_ASSET)
            scheme = _scheme(url)
            if not notifier.add(url):
                raise AlertsError(
                    f"{source}: URL {i} ({scheme}) is not one apprise can use; it is not "
                    "shown (it may carry a token). See apprise's list of services for the "
                    "form its scheme takes; nothing was sent"
                )
            found.append(Service(len(found) + 1, scheme, source, notifier, _secrets(url)))
    return found


@dataclass
class _Alert:
    event: str
    text: str


@dataclass
class _Counts:
    raised: int = 0  # queued to be sent
    limited: int = 0  # held back as a repeat
    dropped: int = 0  # the queue was full
    lost: int = 0  # still queued (or on its way) when the run ended


class Alerts:
    """The run's alerts; ``start`` the worker, ``send`` from the trading path, ``close``
    (or ``aclose``) once at the end."""

    def __init__(
        self,
        found: list[Service],
        settings: AlertSettings,
        *,
        label: str,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        queue_size: int = QUEUE_SIZE,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.services = found
        self.settings = settings
        self.selected = frozenset(settings.events)
        self.label = label  # the run's id: which run a message is about
        self.say = say  # one line on stderr; called from the worker thread too
        self.clock = clock
        self.drain_seconds = drain_seconds
        # Heard of each alert queued (the journal: ``status`` shows the alerts raised).
        self.on_raised: Callable[[str, str], None] | None = None
        # True while the run has orders in flight (read from the worker thread: a plain
        # attribute read, no lock); the worker waits for it (HOLD_SECONDS at most).
        self.hold_while: Callable[[], bool] | None = None
        self.counts = _Counts()
        self._repeat = settings.repeat_minutes * 60
        self._last: dict[tuple[str, str], float] = {}
        self._queue: queue.Queue[_Alert] = queue.Queue(maxsize=queue_size)
        self._queue_size = queue_size
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._abandoned = threading.Event()
        self._in_flight = 0
        self._closed: list[str] | None = None

    @classmethod
    def from_environment(
        cls,
        settings: AlertSettings,
        *,
        label: str,
        say: Callable[[str], None],
        environ: Mapping[str, str] | None = None,
    ) -> Alerts | None:
        """The run's alerts, or None when the environment names no service."""
        found = services(settings, environ)
        return cls(found, settings, label=label, say=say) if found else None

    def wants(self, event: str) -> bool:
        return event in self.selected

    # -- the trading path

    def send(self, event: str, text: str) -> None:
        """Queue an alert: never waits, never raises for the service. ValueError for an
        event ``events.EVENTS`` does not have (a mistake in the code)."""
        if event not in EVENTS:
            raise ValueError(f"no alert event {event!r}; the events are {', '.join(EVENTS)}")
        if event not in self.selected or self._closed is not None:
            return
        now = self.clock()
        key = (event, text)
        last = self._last.get(key)
        if last is not None and now - last < self._repeat:
            self.counts.limited += 1
            return
        try:
            self._queue.put_nowait(_Alert(event, text))
        except queue.Full:
            self.counts.dropped += 1
            if self.counts.dropped == 1:
                self.say(
                    f"the queue of {self._queue_size} alerts is full (the alert service is slow "
                    "or down): new alerts are dropped until it drains; the summary counts them"
                )
            return
        self._last[key] = now
        if len(self._last) > MAX_KEYS:
            self._forget(now)
        self.counts.raised += 1
        if self.on_raised is not None:
            self.on_raised(event, text)

    def _forget(self, now: float) -> None:
        old = [k for k, at in self._last.items() if now - at >= self._repeat]
        for k in old or sorted(self._last, key=self._last.__getitem__)[: MAX_KEYS // 2]:
            del self._last[k]

    # -- the worker

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while not self._abandoned.is_set():
            try:
                alert = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            self._in_flight = 1
            try:
                self._hold()
                self._deliver(alert)
            finally:
                self._in_flight = 0

    def _hold(self) -> None:
        busy = self.hold_while
        if busy is None:
            return
        until = time.monotonic() + HOLD_SECONDS
        while busy() and time.monotonic() < until and not self._abandoned.is_set():
            time.sleep(0.005)

    def _deliver(self, alert: _Alert) -> None:
        event = EVENTS[alert.event]
        title = f"{event.title} ({self.label})"
        for service in self.services:
            if self._abandoned.is_set():
                return
            try:
                result = service.notifier.notify(
                    body=alert.text, title=title, notify_type=apprise.NotifyType(event.kind)
                )
                ok = bool(result)
                reason = _words(result) or "apprise reported it not sent"
            except Exception as exc:  # a plugin's own error: said as its kind, no more
                ok, reason = False, f"{type(exc).__name__} in apprise"
            if ok:
                service.taken += 1
                continue
            service.failed += 1
            if service.failed == 1 and not self._abandoned.is_set():
                service.first_failure = redact(reason, service.secrets)
                self.say(
                    f"{service.name()} did not take an alert ({event.title}): "
                    f"{service.first_failure}. Said once: later failures are counted in the "
                    "summary; trading goes on"
                )

    # -- the end

    def close(self) -> list[str]:
        """Blocks up to ``drain_seconds``: the worker sends what is queued, then what is
        left is dropped, said in one line. Returns the summary's notes about alerts."""
        if self._closed is not None:
            return self._closed
        thread = self._thread
        if thread is not None:
            self._closing.set()
            thread.join(self.drain_seconds)
            if thread.is_alive():
                self._abandoned.set()
                self.counts.lost = self._queue.qsize() + self._in_flight
                self.say(
                    f"{self.counts.lost} alert(s) not sent: the alert service did not take "
                    f"them within {self.drain_seconds:g} s of the run's end; dropped"
                )
        else:
            self.counts.lost = self._queue.qsize()
        self._closed = self.notes()
        return self._closed

    async def aclose(self) -> list[str]:
        """``close`` in a thread: the event loop (signals, the venue's session) goes on;
        cancelled, the drain is abandoned."""
        return await anyio.to_thread.run_sync(self.close, abandon_on_cancel=True)

    def notes(self) -> list[str]:
        """What the summary says of the alerts: only what went wrong or was held back."""
        notes = []
        for service in self.services:
            if service.failed:
                tried = service.failed + service.taken
                notes.append(
                    f"alerts: {service.name()} failed {service.failed} of {tried} alert(s); "
                    f"the first time: {service.first_failure}"
                )
        counts = self.counts
        if counts.dropped:
            notes.append(
                f"alerts: {counts.dropped} dropped while the queue ({self._queue_size}) was full"
            )
        if counts.lost:
            notes.append(
                f"alerts: {counts.lost} not sent by the end of the run (the service was given "
                f"{self.drain_seconds:g} s)"
            )
        if counts.limited:
            notes.append(
                f"alerts: {counts.limited} repeat(s) of an identical alert held back "
                f"(alerts.repeat_minutes: {self.settings.repeat_minutes:g})"
            )
        return notes
