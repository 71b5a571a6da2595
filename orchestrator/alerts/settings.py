"""The config's ``alerts:`` section. It names events and environment variables, never a
URL: a URL carries its service's token and belongs in the environment."""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec

from orchestrator.alerts.events import EVENTS
from orchestrator.yaml_errors import could_be_secret

URLS_ENV = "ORCHESTRATOR_ALERT_URLS"
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
# An identical alert (the same event and words) is sent at most once per this long: a
# cause that repeats every cycle (5 s) reaches the phone twice an hour, not 720 times;
# one that persists is said again before the trader could think it went away.
REPEAT_MINUTES = 30.0
MAX_REPEAT_MINUTES = 7 * 24 * 60.0

EventName = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(EVENTS)})]


class AlertSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alerts through apprise; sent only when ORCHESTRATOR_ALERT_URLS (or a variable
    ``url_envs`` names) holds a URL."""

    events: list[EventName] = msgspec.field(default_factory=lambda: list(EVENTS))
    # Names of environment variables, each holding apprise URLs (space or comma
    # separated), besides ORCHESTRATOR_ALERT_URLS. Never the URLs themselves.
    url_envs: list[str] = msgspec.field(default_factory=list)
    repeat_minutes: float = REPEAT_MINUTES  # an identical alert at most once per this; 0: each
    venue_lost_seconds: float = 60.0  # the venue unanswered this long before an alert
    daily_summary_hour: int = 0  # the UTC hour (the venue's clock) of the daily summary

    def __post_init__(self) -> None:
        for i, name in enumerate(self.events):
            if name not in EVENTS:
                shown = "it" if could_be_secret(name) else repr(name)
                raise ValueError(
                    f"events[{i}]: {shown} is not an event; the events are " + ", ".join(EVENTS)
                )
        seen: set[str] = set()
        for i, name in enumerate(self.url_envs):
            # The value is not quoted: it may be the URL itself, pasted by mistake.
            if not ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"url_envs[{i}]: not the name of an environment variable (like "
                    "TELEGRAM_ALERT_URL); a URL carries its token and belongs in the "
                    "environment, never in the file"
                )
            if name in seen:
                raise ValueError(f"url_envs[{i}]: {name} is named twice")
            seen.add(name)
        minutes = self.repeat_minutes
        if not math.isfinite(minutes) or not 0 <= minutes <= MAX_REPEAT_MINUTES:
            raise ValueError(
                f"repeat_minutes: must be between 0 and {MAX_REPEAT_MINUTES:g} (a week), "
                f"got {minutes}"
            )
        lost = self.venue_lost_seconds
        if not math.isfinite(lost) or not 0 <= lost <= 86_400:
            raise ValueError(f"venue_lost_seconds: must be between 0 and 86400 (a day), got {lost}")
        if not 0 <= self.daily_summary_hour <= 23:
            raise ValueError(
                f"daily_summary_hour: must be an hour of the day, 0 to 23, got "
                f"{self.daily_summary_hour}"
            )
