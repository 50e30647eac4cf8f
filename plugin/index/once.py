"""Record a repeating error once, not on every coordinator pass.

The coordinator retries a failing step every ``coordinator_interval`` seconds; without this, one
stuck study writes a log line and an ``errors`` row every second (issue 8: 35 rows a second).
:class:`ErrorOnce` keys each error by (source, step, study): the first occurrence of a message
is logged and recorded; the same message again is only counted; a different message for the
same key is recorded anew; :meth:`ErrorOnce.clear` (the step succeeded) forgets the key so a
later failure is recorded again.
"""

from __future__ import annotations

import contextlib
import threading

from plugin.errors import PluginError
from plugin.index.base import Index
from plugin.logging import get_logger

log = get_logger(__name__)

Key = tuple[str, str, str | None]


class ErrorOnce:
    """Per-key de-duplication of recorded errors (thread-safe; process memory only)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._last: dict[Key, str] = {}
        self._repeats: dict[Key, int] = {}
        self._lock = threading.Lock()

    def report(self, source: str, step: str, message: str, *, study_uid: str | None = None) -> bool:
        """Log and record ``message`` unless it is the one last recorded for this key.

        Returns True when it was recorded (a new error), False when it was a repeat.
        """
        key: Key = (source, step, study_uid)
        with self._lock:
            if self._last.get(key) == message:
                self._repeats[key] = self._repeats.get(key, 0) + 1
                return False
            self._last[key] = message
            self._repeats[key] = 0
        log.error(f"{source}_step_failed", study_uid=study_uid, step=step, error=message)
        with contextlib.suppress(PluginError):
            self.index.record_error(source, f"{step}: {message}", study_uid=study_uid)
        return True

    def clear(self, source: str, step: str, study_uid: str | None = None) -> None:
        """The step succeeded for this key: a later failure is news again."""
        key: Key = (source, step, study_uid)
        with self._lock:
            if self._last.pop(key, None) is None:
                return
            repeats = self._repeats.pop(key, 0)
        log.info(f"{source}_step_recovered", study_uid=study_uid, step=step, repeats=repeats)

    def repeats(self, source: str, step: str, study_uid: str | None = None) -> int:
        """How often the current error of this key repeated since it was recorded."""
        with self._lock:
            return self._repeats.get((source, step, study_uid), 0)
