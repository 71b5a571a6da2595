"""Alerts where the trader is (apprise: Telegram, Discord, Slack, ntfy, e-mail, webhooks).

- ``events.py``: every event an alert can be about, one line each (a new event is one
  line there and one ``send`` where it happens);
- ``settings.py``: the config's ``alerts:`` section (which events, the rate limit, the
  daily summary's hour, names of environment variables holding URLs);
- ``sender.py``: ``Alerts``, the sender: a bounded queue drained by one worker thread,
  off the trading path; it imports apprise, so only the live and rehearsal sessions
  load it.

The URLs carry tokens: they come from the environment only (``ORCHESTRATOR_ALERT_URLS``
or the variables ``alerts.url_envs`` names) and are never written, traced, journaled or
quoted in a message. Nothing here imports the trading loop or the sessions: both reach
it, and the config reads its settings.
"""
