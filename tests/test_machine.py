from __future__ import annotations

import pytest
from statemachine.exceptions import TransitionNotAllowed

from machines import FINAL_STATES, PositionMachine
from orchestrator.models import Position

# The whole lifecycle, written out: (state, event) -> next state. Every pair not
# listed here must be refused.
ALLOWED = {
    ("pending", "send_legs"): "legs_sent",
    ("pending", "reject"): "rejected",
    ("legs_sent", "legs_filled"): "filled",
    ("legs_sent", "leg_failed"): "rolling_back",
    ("legs_sent", "timed_out"): "rolling_back",
    ("filled", "delta_ok"): "validated",
    ("filled", "delta_breached"): "rolling_back",
    ("validated", "close"): "closing",
    ("closing", "close_filled"): "closed",
    ("closing", "close_failed"): "needs_attention",
    ("closing", "timed_out"): "needs_attention",
    ("rolling_back", "rollback_done"): "rolled_back",
    ("rolling_back", "rollback_failed"): "needs_attention",
    ("needs_attention", "close"): "closing",
}
STATES = sorted(s.value for s in PositionMachine.states)
EVENTS = sorted({e.id for e in PositionMachine.events})


def machine_in(state: str) -> tuple[PositionMachine, Position]:
    record = Position(id="p1", spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT", state=state)
    return PositionMachine(model=record), record


def test_the_table_names_every_transition_the_machine_has() -> None:
    declared = {
        (t.source.value, event): t.target.value
        for state in PositionMachine.states
        for t in state.transitions
        for event in t.events
    }
    assert declared == ALLOWED


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_from_every_state(state: str, event: str) -> None:
    machine, record = machine_in(state)
    expected = ALLOWED.get((state, event))
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            machine.send(event)
        assert record.state == state  # a refused event changes nothing
    else:
        machine.send(event)
        assert record.state == expected
        assert machine.state_id == expected


def test_a_new_record_starts_pending_and_the_main_line_reaches_closed() -> None:
    record = Position(id="p1", spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT")
    machine = PositionMachine(model=record)
    assert record.state == "pending"
    for event in ("send_legs", "legs_filled", "delta_ok", "close", "close_filled"):
        machine.send(event)
    assert record.state == "closed"
    assert record.state in FINAL_STATES


def test_restored_record_resumes_at_its_stored_state() -> None:
    machine, record = machine_in("validated")
    assert machine.state_id == "validated"
    machine.send("close")
    assert record.state == "closing"


def test_an_invalid_stored_state_is_refused_on_load() -> None:
    record = Position(id="p1", spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT", state="opne")
    with pytest.raises(ValueError, match="'opne' is not one of"):
        PositionMachine(model=record)


def test_final_states_are_the_three_ends() -> None:
    assert FINAL_STATES == {"rejected", "closed", "rolled_back"}
