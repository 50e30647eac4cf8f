"""The outbox: every result object reaches every destination, once (DESIGN.md step 8).

Rows live in the index (one per object and destination, unique by SOP Instance UID, so a
redelivered task's byte-identical object is never queued twice). A sender thread of the
coordinator process sends due rows to each destination through ``pacs_adapters`` and records
each file's outcome:

* delivered → ``delivered``;
* transient (connection refused, timeouts, 0xA7xx, HTTP 408/429/5xx) → ``pending`` again after
  an exponential back-off (``outbox_backoff_initial`` × 2^attempts, capped at
  ``outbox_backoff_max``), until ``outbox_retry_hours`` after the row was queued; then
  ``failed``;
* permanent (0xC0xx and other refusals, HTTP 400/409 for that instance) → ``failed`` at once.

``brgan outbox resend`` puts rows back to ``pending`` (a fresh retry window); ``abandon`` settles
them so they stop holding the study's files back from the retention purge. After a restart of
``brgan serve`` the pending rows are simply due again: nothing is kept in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pacs_adapters.sink import Outcome, Sink
from plugin import metrics
from plugin.index import Index, OutboxItem, OutboxState
from plugin.index.once import ErrorOnce
from plugin.logging import get_logger
from plugin.queue.contract import ResultFile

log = get_logger(__name__)


def items_for(study_uid: str, version: int, files: list[ResultFile]) -> list[OutboxItem]:
    """The outbox items of a study version's result files."""
    return [
        OutboxItem(
            study_uid=study_uid,
            study_version=version,
            kind=f.kind,
            path=f.path,
            sop_instance_uid=f.sop_instance_uid,
            sop_class_uid=f.sop_class_uid,
            sha256=f.sha256,
        )
        for f in files
    ]


class Outbox:
    """Sends due rows to each destination; one pass per ``interval`` (or when woken)."""

    def __init__(
        self,
        index: Index,
        sinks: Mapping[str, Sink],
        *,
        backoff_initial: float,
        backoff_max: float,
        retry_hours: float,
        interval: float = 2.0,
        batch: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.sinks = dict(sinks)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.retry_s = retry_hours * 3600.0
        self.interval = interval
        self.batch = batch
        self.clock = clock
        self.errors = ErrorOnce(index)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def destinations(self) -> list[str]:
        return sorted(self.sinks)

    def enqueue(self, study_uid: str, version: int, files: list[ResultFile]) -> int:
        """Queue a study version's result files for every destination; returns rows added."""
        if not self.sinks or not files:
            return 0
        added = self.index.enqueue_outbox(items_for(study_uid, version, files), self.destinations)
        log.info("outbox_enqueued", study_uid=study_uid, version=version, rows=added)
        self._wake.set()
        return added

    # -- the sender thread ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None or not self.sinks:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="brgan-outbox", daemon=True)
        self._thread.start()
        log.info("outbox_started", destinations=self.destinations)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception as exc:  # closing must not fail the shutdown
                log.warning("sink_close_failed", destination=sink.name, error=type(exc).__name__)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the sender must outlive any bug in one pass
                self.errors.report("outbox", "pass", f"{type(exc).__name__}: {exc}")
            self._wake.wait(self.interval)
            self._wake.clear()

    # -- one pass ---------------------------------------------------------------------------
    def run_once(self) -> dict[str, int]:
        """Send every due row of every destination once; returns rows tried per destination."""
        tried: dict[str, int] = {}
        for name, sink in self.sinks.items():
            if self._stop.is_set():
                break
            tried[name] = self._send_due(name, sink)
        return tried

    def _send_due(self, name: str, sink: Sink) -> int:
        now = self.clock()
        rows = self.index.outbox_due(name, now, self.batch)
        if not rows:
            return 0
        results = sink.send([Path(r.path) for r in rows])
        for row, result in zip(rows, results, strict=True):
            self._record(row, result, now)
        delivered = sum(1 for r in results if r.outcome == Outcome.DELIVERED)
        log.info("outbox_sent", destination=name, tried=len(rows), delivered=delivered)
        return len(rows)

    def _record(self, row: Any, result: Any, now: float) -> None:
        if result.outcome == Outcome.DELIVERED:
            self.index.record_send(
                row.id, OutboxState.DELIVERED, status=result.status, detail=result.detail
            )
            metrics.outbox_delivered(row.destination)
            return
        if result.outcome == Outcome.TRANSIENT and now - row.created_at < self.retry_s:
            delay = min(self.backoff_max, self.backoff_initial * 2.0 ** min(row.attempts, 30))
            self.index.record_send(
                row.id,
                OutboxState.PENDING,
                status=result.status,
                detail=result.detail,
                next_attempt_at=now + delay,
            )
            metrics.outbox_failed(row.destination, final=False)
            self.errors.report(
                "outbox",
                row.destination,
                f"not delivered yet, retrying: {result.detail}",
                study_uid=None,
            )
            return
        why = result.detail
        if result.outcome == Outcome.TRANSIENT:
            why = f"gave up after {self.retry_s / 3600:.1f} h of retries: {why}"
        self.index.record_send(row.id, OutboxState.FAILED, status=result.status, detail=why)
        metrics.outbox_failed(row.destination, final=True)
        self.index.record_error(
            "outbox",
            f"{row.kind} not delivered to {row.destination}: {why}",
            study_uid=row.study_uid,
            sop_uid=row.sop_instance_uid,
            status=result.status,
        )
        log.warning(
            "outbox_failed",
            destination=row.destination,
            study_uid=row.study_uid,
            sop_uid=row.sop_instance_uid,
            status=result.status,
        )
