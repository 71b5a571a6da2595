"""Every event an alert can be about: its name in ``alerts.events``, the title a message
carries, apprise's notification type, and what it means (the docs show it).

A new event is one line here, and one ``Alerts.send(name, text)`` where it happens."""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["info", "success", "warning", "failure"]  # apprise's NotifyType values


class Event(NamedTuple):
    title: str
    kind: Kind
    meaning: str


EVENTS: dict[str, Event] = {
    "started": Event("run started", "info", "a run traded its first cycle"),
    "resumed": Event(
        "run resumed", "warning", "`run --resume` carried a run on (says whether it had crashed)"
    ),
    "stopped": Event(
        "run stopped", "info", "a run stopped: why, what became of its positions, its equity"
    ),
    "opened": Event("position opened", "success", "both legs filled and hedged"),
    "closed": Event("position closed", "success", "both legs closed: the pair is flat"),
    "rolled_back": Event(
        "open rolled back", "warning", "an open failed and was unwound to flat; its cost"
    ),
    "needs_attention": Event(
        "needs attention", "failure", "an unwind or close left exposure: the operator decides"
    ),
    "paused": Event(
        "paused by the breaker", "failure", "a pair, or all opening, paused by the breaker"
    ),
    "venue_lost": Event(
        "venue unreachable",
        "failure",
        "the venue has not answered for `alerts.venue_lost_seconds`",
    ),
    "venue_back": Event("venue answers again", "success", "after an alerted `venue_lost`"),
    "margin": Event(
        "margin guard",
        "failure",
        "the short's maintenance margin past `risk.margin_warn`, or a position the guard "
        "closed at `risk.margin_act`",
    ),
    "funding_negative": Event(
        "funding against a held position",
        "warning",
        "a settlement whose rate the held short pays instead of receiving",
    ),
    "daily_summary": Event(
        "daily summary",
        "info",
        "once a day at `alerts.daily_summary_hour` UTC: equity, funding, positions, pauses",
    ),
}
