"""The index: instances, studies (with their state machine), pairs/scores and the audit log.

Use :func:`open_index` with the settings; code against :class:`Index` so another backend
(PostgreSQL) can replace :class:`SqliteIndex` without touching callers.
"""

from __future__ import annotations

from pathlib import Path

from plugin.index.base import Index
from plugin.index.model import (
    FINAL_STATES,
    OUTBOX_SETTLED,
    TRANSITIONS,
    AssociationRow,
    ErrorRow,
    IllegalTransition,
    InstanceRecord,
    InstanceRow,
    OutboxItem,
    OutboxRow,
    OutboxState,
    PairRow,
    StudyIndexError,
    StudyRow,
    StudyState,
    UnknownStudy,
    check_transition,
)
from plugin.index.sqlite import SqliteIndex


def open_index(path: Path, *, readonly: bool = False) -> Index:
    """Open (creating if needed, unless ``readonly``) the index at ``path``."""
    return SqliteIndex(path, readonly=readonly)


__all__ = [
    "FINAL_STATES",
    "OUTBOX_SETTLED",
    "TRANSITIONS",
    "AssociationRow",
    "ErrorRow",
    "IllegalTransition",
    "Index",
    "InstanceRecord",
    "InstanceRow",
    "OutboxItem",
    "OutboxRow",
    "OutboxState",
    "PairRow",
    "SqliteIndex",
    "StudyIndexError",
    "StudyRow",
    "StudyState",
    "UnknownStudy",
    "check_transition",
    "open_index",
]
