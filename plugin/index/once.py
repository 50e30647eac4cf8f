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
import time
from collections.abc import Callable

from plugin.errors import PluginError
from plugin.index.base import Index
from plugin.logging import get_logger

log = get_logger(__name__)

Key = tuple[str, str, str | None]


class ErrorOnce:
    """Per-key de-duplication of recorded errors (thread-safe; process memory only)."""

    #: A still-repeating error is recorded again after this many seconds (with its count), so
    #: a stale entry never hides a failure for good.
    REMIND_AFTER = 3600.0

    def __init__(self, index: Index, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.clock = clock
        self._at: dict[Key, float] = {}
        self._last: dict[Key, str] = {}
        self._repeats: dict[Key, int] = {}
        self._lock = threading.Lock()

    def report(self, source: str, step: str, message: str, *, study_uid: str | None = None) -> bool:
        """Log and record ``message`` unless it is the one last recorded for this key.

        Returns True when it was recorded (a new error), False when it was a repeat.
        """
        key: Key = (source, step, study_uid)
        now = self.clock()
        with self._lock:
            repeats = self._repeats.get(key, 0)
            if self._last.get(key) == message and now - self._at[key] < self.REMIND_AFTER:
                self._repeats[key] = repeats + 1
                return False
            reminder = self._last.get(key) == message
            self._last[key], self._at[key], self._repeats[key] = message, now, 0
        text = f"{step}: {message}" + (f" (repeated {repeats} times)" if reminder else "")
        log.error(f"{source}_step_failed", study_uid=study_uid, step=step, error=message)
        with contextlib.suppress(PluginError):
            self.index.record_error(source, text, study_uid=study_uid)
        return True

    def clear(self, source: str, step: str, study_uid: str | None = None) -> None:
        """The step succeeded for this key: a later failure is news again."""
        key: Key = (source, step, study_uid)
        with self._lock:
            if self._last.pop(key, None) is None:
                return
            self._at.pop(key, None)
            repeats = self._repeats.pop(key, 0)
        log.info(f"{source}_step_recovered", study_uid=study_uid, step=step, repeats=repeats)

    def repeats(self, source: str, step: str, study_uid: str | None = None) -> int:
        """How often the current error of this key repeated since it was recorded."""
        with self._lock:
            return self._repeats.get((source, step, study_uid), 0)
