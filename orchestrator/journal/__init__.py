"""The journal: a run's durable record in ``RUN_DIR/journal.sqlite3``.

- ``store``: ``Journal``, the writer; WAL, and why the intents are fsynced.
- ``writes``: its SQL, the grouped writes waiting, the checks of its file and folder.
- ``recorder``: how a run writes it, and stops when it cannot.
- ``schema``: the tables, the version, the records returned, the file checks.
- ``reader``: ``Journal.read``, a snapshot taken without the lock, changing nothing.
- ``lock``: one writer per run (``RUN_DIR/journal.lock``).
- ``show``: ``orchestrator journal RUN_DIR``.
"""

from orchestrator.journal.lock import LOCK_NAME, JournalError, JournalLocked
from orchestrator.journal.reader import JournalView
from orchestrator.journal.schema import (
    DB_NAME,
    FINAL_STATUSES,
    OPEN_STATUSES,
    SCHEMA_VERSION,
    BalanceSnapshot,
    Intent,
    Transition,
)
from orchestrator.journal.store import Journal

__all__ = [
    "DB_NAME",
    "FINAL_STATUSES",
    "LOCK_NAME",
    "OPEN_STATUSES",
    "SCHEMA_VERSION",
    "BalanceSnapshot",
    "Intent",
    "Journal",
    "JournalError",
    "JournalLocked",
    "JournalView",
    "Transition",
]
