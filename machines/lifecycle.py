"""PositionMachine's transitions as a plain table, read off the class when this module
is imported, for the hot path.

python-statemachine costs about 130 µs to build a machine, 75 µs a transition and
27 KiB for each listener attached; a position's whole life is a handful of dict
look-ups here. PositionMachine stays the one definition of the lifecycle: the table
is derived from it (never written by hand), it draws the diagrams and lists the
states, and a test checks the two agree on every (state, event) pair and call the
listeners with the same arguments. A guard or an action added to the machine would
not be in a table: the import refuses it, so it cannot pass unnoticed.
"""

from __future__ import annotations

from typing import Any, Protocol

from statemachine import State
from statemachine.event import Event
from statemachine.exceptions import TransitionNotAllowed

from machines.position import STATE_VALUES, PositionMachine


class Listener(Protocol):
    def after_transition(self, event: Any, source: Any, target: Any, model: Any) -> None: ...


def _actions(specs: Any) -> list[str]:
    """Callbacks a transition or state would run beyond ``after_transition``: any given
    explicitly, and any of python-statemachine's conventional names the class defines."""
    found = []
    for spec in specs:
        name = str(spec.func)
        if not spec.is_convention or name in vars(PositionMachine):
            found.append(name)
    return found


def _derive() -> tuple[dict[tuple[str, str], tuple[Event, State, State]], State]:
    table: dict[tuple[str, str], tuple[Event, State, State]] = {}
    for state in PositionMachine.states:
        actions = _actions(state.enter) + _actions(state.exit)
        for transition in state.transitions:
            for specs in (transition.cond, transition.validators, transition.before):
                actions += _actions(specs)
            actions += _actions(transition.on) + _actions(transition.after)
            for event in transition.events:
                table[str(state.value), str(event)] = (
                    getattr(PositionMachine, str(event)),
                    state,
                    transition.target,
                )
        if actions:
            raise TypeError(
                f"PositionMachine.{state.id}: guards or actions ({', '.join(actions)}) "
                "that the hot path's table cannot carry"
            )
    (initial,) = [s for s in PositionMachine.states if s.initial]
    return table, initial


TABLE, INITIAL = _derive()
_STATES: dict[str, State] = {str(s.value): s for s in PositionMachine.states}
_EVENTS: dict[str, Event] = {str(event): event for event, _, _ in TABLE.values()}


class PositionLifecycle:
    """A position's machine on the hot path: ``send(event)`` as PositionMachine does it
    (the model's ``state`` moves, ``after_transition`` listeners are called with the
    machine's own Event and State objects; a disallowed event raises
    TransitionNotAllowed, an unknown stored state is refused on load)."""

    __slots__ = ("_listeners", "model")

    def __init__(self, model: Any, listeners: tuple[Listener, ...] | list[Listener] = ()) -> None:
        stored = model.state
        if stored is None:
            model.state = str(INITIAL.value)
        elif stored not in STATE_VALUES:
            raise ValueError(
                f"stored position state {stored!r} is not one of {sorted(STATE_VALUES)}"
            )
        self.model = model
        self._listeners = tuple(listeners)

    @property
    def state_id(self) -> str:
        value: str = self.model.state
        return value

    def send(self, event: str) -> None:
        model = self.model
        found = TABLE.get((model.state, event))
        if found is None:
            raise TransitionNotAllowed(
                _EVENTS.get(event) or Event(id=event, name=event), {_STATES[model.state]}
            )
        bound, source, target = found
        model.state = target.value
        for listener in self._listeners:
            listener.after_transition(bound, source, target, model)
