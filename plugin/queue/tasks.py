"""Worker-side task definitions. Imported only by worker processes (it pulls in torch lazily).

``brgan.analyze_study`` is idempotent: its id is derived from (study, images, model version),
its inputs are read-only spool files, and its outputs are written under a folder named by the
task id, overwritten atomically on a re-run. A task whose id is not a UUID or whose paths leave
the spool/results folders is refused before anything is read (:mod:`plugin.queue.trust`).
It acknowledges late and is rejected (redelivered) when its worker dies; an error in one
image is reported in the result, not raised, so only infrastructure faults fail the task.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery

from plugin import metrics
from plugin.config import Settings
from plugin.queue.app import ANALYZE_STUDY
from plugin.queue.trust import check_task


def _beat(task: Any, stop: threading.Event, every: float) -> None:
    """The task's lease: its STARTED state carries a heartbeat the coordinator checks
    (``worker_lease``); a worker that dies stops beating, and the task is re-sent."""
    while not stop.wait(every):
        try:
            task.update_state(
                state="STARTED",
                meta={"heartbeat": time.time(), "hostname": task.request.hostname,
                      "pid": os.getpid()},
            )  # fmt: skip
        except Exception:  # a missed beat only shortens the lease; never fail the task
            continue


def register_tasks(app: Celery, settings: Settings) -> None:
    """Bind the worker's tasks to ``app`` with this worker's settings."""

    @app.task(name=ANALYZE_STUDY, bind=True, acks_late=True, reject_on_worker_lost=True)
    def analyze_study(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        from plugin.worker.analysis import analyze_study_payload

        # The broker is a trust boundary: only our own folders, only a UUID task id.
        check_task(payload, self.request.id, settings.spool_path, settings.results_path)
        stop = threading.Event()
        beating = threading.Thread(
            target=_beat, args=(self, stop, settings.worker_heartbeat), daemon=True
        )
        self.update_state(
            state="STARTED",
            meta={"heartbeat": time.time(), "hostname": self.request.hostname, "pid": os.getpid()},
        )
        beating.start()
        started, outcome = time.perf_counter(), "failure"
        try:
            result = analyze_study_payload(payload, settings, task_id=self.request.id)
            outcome = "success"
            return result
        finally:
            stop.set()
            beating.join(5)
            metrics.worker_task_done(outcome, time.perf_counter() - started)
