"""The hot path's transition table (machines/lifecycle.py) against PositionMachine, the
one definition: on every (state, event) pair they agree on the target or refuse alike,
and call the listeners with the same arguments."""

from __future__ import annotations

from typing import Any

import pytest
from statemachine.exceptions import TransitionNotAllowed

from machines import STATE_VALUES, PositionLifecycle, PositionMachine
from machines.lifecycle import TABLE
from orchestrator.models import Position

EVENTS = sorted({str(t.event) for s in PositionMachine.states for t in s.transitions})


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def after_transition(self, event: Any, source: Any, target: Any, model: Any) -> None:
        # The machine passes its bound event, the table the class-level one: both the
        # event as text (a str), which is what a listener reads.
        self.calls.append((isinstance(event, str), str(event), source, target, model))


def move(kind: type[Any], state: str, event: str) -> tuple[str, list[tuple[Any, ...]], str]:
    """(state after, listener calls, refusal message) of sending ``event`` at ``state``."""
    position = Position(id="p", spot_symbol="S", perp_symbol="P", state=state)
    listener = Recorder()
    machine = (
        kind(position, [listener])
        if kind is PositionLifecycle
        else kind(model=position, listeners=[listener])
    )
    try:
        machine.send(event)
    except TransitionNotAllowed as exc:
        return str(position.state), listener.calls, str(exc)
    for call in listener.calls:
        assert call[4] is position
    return str(position.state), [c[:4] for c in listener.calls], ""


@pytest.mark.parametrize("state", sorted(STATE_VALUES))
@pytest.mark.parametrize("event", [*EVENTS, "no_such_event"])
def test_the_table_moves_and_refuses_exactly_as_the_machine(state: str, event: str) -> None:
    assert move(PositionLifecycle, state, event) == move(PositionMachine, state, event)


def test_the_table_holds_every_transition_of_the_machine_and_no_other() -> None:
    expected = {
        (str(s.value), str(t.event)): str(t.target.value)
        for s in PositionMachine.states
        for t in s.transitions
    }
    assert {key: str(target.value) for key, (_, _, target) in TABLE.items()} == expected


def test_a_new_position_starts_where_the_machine_starts_and_a_bad_record_is_refused() -> None:
    fresh, machine_fresh = (Position(id=i, spot_symbol="S", perp_symbol="P") for i in "ab")
    PositionLifecycle(fresh)
    PositionMachine(model=machine_fresh)
    assert fresh.state == machine_fresh.state == "pending"
    for kind in (PositionLifecycle, PositionMachine):
        bad = Position(id="c", spot_symbol="S", perp_symbol="P", state="bogus")
        with pytest.raises(ValueError, match="stored position state 'bogus' is not one of"):
            kind(bad) if kind is PositionLifecycle else kind(model=bad)
