"""The lifecycle of one delta-neutral position (spot long + perp short).

Pure: states, transitions and nothing else. The orchestrator does the I/O in the
position's task and tells the machine what happened by sending an event; the
machine's state is the one truth of where the position is.

Main line:  pending -> legs_sent -> filled -> validated -> closing -> closed
"""

from __future__ import annotations

from typing import Any

from statemachine import State, StateMachine


class PositionMachine(StateMachine):
    # StateMachine, not StateChart: a callback error must reach the caller and a
    # disallowed event must raise TransitionNotAllowed, never pass silently.

    pending = State(initial=True)
    rejected = State(final=True)  # refused before any order left: risk, size, price
    legs_sent = State()  # both orders are in flight
    filled = State()  # both legs filled (fully or partly); delta not yet checked
    validated = State()  # hedged within tolerance: the position is open
    closing = State()  # both reverse orders in flight
    closed = State(final=True)
    rolling_back = State()  # a failed or drifting open is being unwound to flat
    rolled_back = State(final=True)
    needs_attention = State()  # an unwind or close left exposure: the operator decides

    # -- opening
    send_legs = pending.to(legs_sent)
    reject = pending.to(rejected)
    legs_filled = legs_sent.to(filled)
    leg_failed = legs_sent.to(rolling_back)
    delta_ok = filled.to(validated)
    delta_breached = filled.to(rolling_back)

    # -- unwinding a failed open
    rollback_done = rolling_back.to(rolled_back)
    rollback_failed = rolling_back.to(needs_attention)

    # -- closing. From needs_attention too: after the operator has looked, a
    # close is how the exposure that is left gets flattened.
    close = validated.to(closing) | needs_attention.to(closing)
    close_filled = closing.to(closed)
    close_failed = closing.to(needs_attention)

    # -- deadlines. An open that misses its deadline is unwound whatever the legs
    # did; a close that misses it (after the late legs were looked up) has left
    # exposure whose size is known only once the venue is asked again.
    timed_out = legs_sent.to(rolling_back) | closing.to(needs_attention)

    def __init__(self, model: Any = None, state_field: str = "state", **kwargs: Any) -> None:
        # A stored value that names no state would only fail at the first event
        # (or worse, later); refuse it while the record is being loaded.
        if model is not None:
            stored = getattr(model, state_field, None)
            if stored is not None and stored not in STATE_VALUES:
                raise ValueError(
                    f"stored position state {stored!r} is not one of {sorted(STATE_VALUES)}"
                )
        super().__init__(model=model, state_field=state_field, **kwargs)

    @property
    def state_id(self) -> str:
        """The id of the current state (e.g. ``"legs_sent"``)."""
        value: str = self.current_state_value
        return value


STATE_VALUES: frozenset[str] = frozenset(str(s.value) for s in PositionMachine.states)
FINAL_STATES: frozenset[str] = frozenset(str(s.value) for s in PositionMachine.states if s.final)
