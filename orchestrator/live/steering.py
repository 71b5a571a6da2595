"""The operator steering a live run while it trades (orchestrator/control.py: the
requests ``orchestrator pause``, ``resume-trading``, ``close``, ``set`` and ``stop``
leave in the run folder, and the dashboard's buttons): each carried out at the next
cycle, said, journaled with when and who, and answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from orchestrator.config import STEERABLE_SETTINGS, Config, config_warnings, retuned
from orchestrator.control import ControlBox, Request
from orchestrator.journal.recorder import JournalRecorder
from orchestrator.journal.status import STRATEGY_NOW
from orchestrator.strategy.funding import FundingStrategy
from orchestrator.trading.run import PairRun
from orchestrator.trading.trader import Trader

PAUSED_BY_OPERATOR = "paused by the operator: orchestrator pause, by"


class Steered(Trader):
    """A trader its operator steers (the live run: run.py sets these)."""

    config: Config
    recorder: JournalRecorder | None
    # The operator's requests, taken every cycle; a stop asked for there (why, in the
    # operator's words), and whether a stop closes every position.
    control: ControlBox | None
    asked_to_stop: str | None
    close_on_stop: Callable[[], bool]

    async def obey(self) -> None:
        """The operator's requests waiting in the run folder (control.py), oldest first:
        each carried out, said, journaled with when and who, and answered."""
        if self.control is None:
            return
        for request, path, problem in self.control.take():
            if request is None:
                self.control.answer(path, f"refused: {problem}")
                continue
            answer = await self._carry_out(request)
            asked = datetime.fromtimestamp(request.at_ms / 1000, UTC)
            line = f"{request.words()} (by {request.user or 'someone'}): {answer}"
            self.say(line)
            self.notes.append(f"{asked:%Y-%m-%d %H:%M:%S} UTC: {line}")
            if self.recorder is not None:
                self.recorder.record_meta(
                    f"control {request.id}", f"{asked:%Y-%m-%d %H:%M:%S} UTC {line}"
                )
            self.control.answer(path, answer)

    async def _carry_out(self, request: Request) -> str:
        """What the request did, in a line the operator reads."""
        pairs = [run for run in self.pairs if request.pair in (None, run.name)]
        if request.pair is not None and not pairs:
            names = ", ".join(run.name for run in self.pairs)
            return f"refused: no pair {request.pair} in this run (its pairs: {names})"
        if request.command == "close":
            return await self._close_asked(pairs, request.user)
        if request.command == "set":
            return self._retune(dict(request.settings))
        if request.command == "stop":
            self.asked_to_stop = request.words()
            if request.close_all:
                self.close_on_stop = lambda: True
            held = [run.position.id for run in self.pairs if run.position is not None]
            what = (
                "closing"
                if request.close_all or self.config.live.on_stop == "close"
                else ("leaving open (live.on_stop: leave)")
            )
            return f"stopping; {what} {', '.join(held) or 'no position'}"
        if request.command == "pause":
            for run in pairs:
                if run.open_paused is None:
                    run.open_paused = f"{PAUSED_BY_OPERATOR} {request.user}"
            return (
                f"opens nothing more on {', '.join(run.name for run in pairs)}; what is held stays"
            )
        cleared = []
        for run in pairs:  # resume-trading: the operator has looked
            if run.open_paused is not None:
                cleared.append(f"{run.name} ({run.open_paused})")
                run.open_paused = None
                run.failed_opens = 0
        if not cleared:
            return "nothing was paused"
        left = f"; opening stays stopped: {self.opening_stopped}" if self.opening_stopped else ""
        return f"opens again on {'; '.join(cleared)}{left}"

    async def _close_asked(self, pairs: list[PairRun], user: str) -> str:
        """``orchestrator close``: each pair's position closed now, and the pair paused
        (its strategy would open it again at once) until resume-trading."""
        closing, under_way = [], []
        for run in pairs:
            if run.open_paused is None:
                run.open_paused = f"{PAUSED_BY_OPERATOR} {user} (orchestrator close)"
            position = run.position
            if position is None:
                continue
            if run.busy:  # an open or close already under way: it goes on
                under_way.append(position.id)
                continue
            run.close_paused = None  # the operator asks: a paused close is tried again
            closing.append(position.id)
            await self._act(run, self._close(run, f"closed by the operator ({user})"))
        names = ", ".join(run.name for run in pairs)
        said = f"closing {', '.join(closing)}" if closing else "no position to close"
        if under_way:
            said += f"; under way, left to finish: {', '.join(under_way)} (ask again after)"
        return f"{said}; opens nothing more on {names} until resume-trading"

    def _retune(self, changes: dict[str, str]) -> str:
        """``orchestrator set``: the strategy's thresholds changed from the next
        decision on, checked by the config's own rules."""
        try:
            config = retuned(self.config, changes)
        except ValueError as exc:
            return f"refused: {exc}; nothing changed"
        self.config = config
        for run in self.pairs:
            if isinstance(run.strategy, FundingStrategy):
                run.strategy.retune(config.strategy)
        if self.recorder is not None:  # what the run decides with now (the dashboard's form)
            now = {name: str(getattr(config.strategy, name)) for name in STEERABLE_SETTINGS}
            self.recorder.record_meta(STRATEGY_NOW, json.dumps(now))
        told = ", ".join(f"strategy.{name} = {getattr(config.strategy, name)}" for name in changes)
        warned = [w for w in config_warnings(config) if w.startswith("strategy.")]
        return f"from the next decision: {told}" + "".join(f"; warning: {w}" for w in warned)

    def stop_outcome(self) -> str | None:
        outcome = super().stop_outcome()
        if outcome is None or self.asked_to_stop is None:
            return outcome
        return f"{self.asked_to_stop}: {outcome}"

    def restore(
        self,
        paused: dict[str, tuple[str | None, str | None]],
        strategy_now: dict[str, str] | None,
    ) -> list[str]:
        """A resumed run: the pairs paused when it stopped stay paused (until
        resume-trading, as before), and the thresholds set while it ran stay set. The
        lines to say."""
        said = []
        for run in self.pairs:
            opens, closes = paused.get(run.name, (None, None))
            if opens or closes:
                run.open_paused, run.close_paused = opens, closes
                said.append(f"{run.name} stays paused: {opens or closes}")
        if strategy_now:
            now = self.config.strategy
            changed = {k: v for k, v in strategy_now.items() if str(getattr(now, k, v)) != v}
            if changed:
                said.append(f"as set while it ran: {self._retune(changed)}")
        return said
