"""State machines: states, transitions and guards only. No I/O, no clock, no anyio."""

from machines.lifecycle import PositionLifecycle
from machines.position import FINAL_STATES, STATE_VALUES, PositionMachine

__all__ = ["FINAL_STATES", "STATE_VALUES", "PositionLifecycle", "PositionMachine"]
