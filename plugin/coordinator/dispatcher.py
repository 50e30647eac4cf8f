"""The coordinator's side of the queue: send ready studies, collect results, re-queue lost ones.

DESIGN.md data flow step 5 and "Who owns state": the index is the source of truth. The
dispatcher

* turns a ``ready`` study into one ``brgan.analyze_study`` task (payload = UIDs, spool paths and
  the model version + sha256, never pixels) with an idempotent task id, and moves it to
  ``queued``; when the broker is unreachable the study simply stays ``ready`` and is tried again
  on the next pass (the listener keeps receiving meanwhile);
* closes a ready study whose plan has no pair (a unilateral study, a lone SR) as
  ``not_analyzed``, every image's reason recorded;
* collects each queued/running study's result from the Celery result backend (the one channel
  back from workers) and records the scores: ``done`` when every pair was scored,
  ``partially_analyzed`` when some targets could not be analyzed (each with its reason),
  ``not_analyzed`` when none could, ``failed`` when the task failed;
* re-sends a task that vanished (broker flushed or restarted without persistence, worker lost):
  a queued study whose task is still unknown to the backend after ``requeue_after`` seconds,
  while the queue is empty, is sent again under the same id (idempotent).

It never imports torch: tasks are sent by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery

from brgan_core.checkpoint import CheckpointError
from brgan_core.registry import Registry
from plugin import metrics
from plugin.config import Settings
from plugin.index import Index, InstanceRow, PairRow, StudyRow, StudyState
from plugin.index.once import ErrorOnce

if TYPE_CHECKING:
    from plugin.coordinator.outbox import Outbox
from plugin.coordinator.unpaired import version_scores_unpaired
from plugin.logging import get_logger
from plugin.queue.app import make_celery, queue_depth, send_analyze_study, task_id_for
from plugin.queue.contract import (
    RESULTS_DISK_FULL,
    ContractError,
    ImageRef,
    ModelRef,
    NotAnalyzed,
    ResultFile,
    StudySummary,
    StudyTask,
    TaskPair,
)
from plugin.queue.trust import UntrustedMessageError, check_result_files
from plugin.study.classify import OWN_OBJECT_REASON, is_image_class
from plugin.study.pairing import NO_CONTRALATERAL

log = get_logger(__name__)

NO_PAIR = "no analyzable pair: every image is listed as not analyzed with its reason"

# Broker/back-end faults we ride out (the study stays where it is and is retried).
_TRANSIENT: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
try:  # kombu and redis wrap socket errors in their own types
    import kombu.exceptions
    import redis.exceptions

    _TRANSIENT = (
        *_TRANSIENT,
        kombu.exceptions.OperationalError,
        redis.exceptions.RedisError,
    )
except ImportError:  # pragma: no cover - both are hard dependencies
    pass

# What says "the broker / result back-end is down" (the same for every study, so a pass ends
# early). Any other error, an OSError reading one result file included, is one study's.
_OUTAGE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
try:
    import kombu.exceptions
    import redis.exceptions

    _OUTAGE = (
        *_OUTAGE,
        kombu.exceptions.OperationalError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )
except ImportError:  # pragma: no cover
    pass


class Dispatcher:
    """Queue ready studies and record results; plugs into the coordinator's hooks."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        app: Celery | None = None,
        clock: Callable[[], float] = time.time,
        outbox: Outbox | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.app = app or make_celery(settings)
        self.registry = Registry(settings.registry_path)
        self.clock = clock
        self.outbox = outbox
        self._queued_at: dict[str, float] = {}
        self._started_seen: dict[str, float] = {}  # first time a task was seen started
        self._requeued_at: dict[str, float] = {}
        #: study uid → clock time before which it is not sent again (a full results disk)
        self._retry_at: dict[str, float] = {}
        self.errors = ErrorOnce(index)

    # -- coordinator hooks ----------------------------------------------------------------
    def on_study_ready(self, study_uid: str, version: int) -> None:
        """Queue one ready study (coordinator hook). Never raises on a broker outage."""
        study = self.index.get_study(study_uid)
        if study is None or study.state != StudyState.READY or study.version != version:
            return
        if self._retry_at.get(study_uid, 0.0) > self.clock():
            return  # waiting for space on the results disk; reconcile asks again
        self._retry_at.pop(study_uid, None)
        pairs = self.index.pairs(study_uid, version)
        if not pairs and not self._report_without_pairs(study):
            self._close_not_analyzed(study)
            return
        try:
            model_version, sha256 = self._model()
        except CheckpointError as exc:
            self._error_once(study, f"not queued: {exc}")
            return
        instances = {row.sop_instance_uid: row for row in self.index.instances(study_uid)}
        missing = sorted(_planned_uids(pairs) - set(instances))
        if (
            not missing
            and _has_unpaired(pairs)
            and not version_scores_unpaired(self.registry, model_version)
        ):
            # Planned for a model that scores images alone; the one to run now may not (an
            # activation or rollback in between): plan again under its rule.
            self.index.transition(
                study_uid,
                StudyState.RECEIVING,
                expected=StudyState.READY,
                error=f"model {model_version} does not score images without a contralateral; "
                "re-planned",
            )
            log.warning("study_replanned", study_uid=study_uid, why="model_rule_changed")
            return
        if missing:
            # An image of the plan arrived again under another study (the latest arrival
            # wins) after the plan was made: plan the study again instead of failing.
            self.index.transition(
                study_uid,
                StudyState.RECEIVING,
                expected=StudyState.READY,
                error=f"{len(missing)} planned image(s) moved to another study; re-planned",
            )
            log.warning("study_replanned", study_uid=study_uid, missing=len(missing))
            return
        queued_at = study.queued_at or time.time()
        task = build_task(study, pairs, instances, ModelRef(model_version, sha256), queued_at)
        payload = task.to_json()
        uids = sorted(_planned_uids(pairs))
        if not uids:  # a report-only task: the not-analyzed images name it
            uids = sorted(n.sop_instance_uid for n in task.not_analyzed)
        task_id = task_id_for(f"{study_uid}#v{version}", uids, model_version)
        try:
            send_analyze_study(self.app, payload, task_id)
        except _TRANSIENT as exc:
            self._error_once(study, f"broker unreachable, will retry: {type(exc).__name__}")
            return
        self.index.transition(
            study_uid,
            StudyState.QUEUED,
            expected=StudyState.READY,
            task_id=task_id,
            model_version=model_version,
            queued_at=queued_at,
        )
        self._queued_at[study_uid] = self.clock()
        self.errors.clear("queue", "not_queued", study_uid)
        log.info("study_queued", study_uid=study_uid, version=version, task_id=task_id)

    def reconcile(self) -> None:
        """Coordinator hook: retry ready studies, collect results, re-send vanished tasks.

        Each study is its own step: one study's failure is recorded once (not every pass) and
        the others go on. Only a broker/back-end outage ends the pass early (it would fail the
        same way for every study)."""
        for study in self.index.studies([StudyState.READY]):
            self._per_study("queue", study, self.on_study_ready, study.study_uid, study.version)
        for study in self.index.studies([StudyState.QUEUED, StudyState.RUNNING]):
            try:
                self._per_study("collect", study, self._collect, study)
            except _OUTAGE as exc:
                self.errors.report(
                    "queue", "collect", f"result back-end unreachable: {type(exc).__name__}"
                )
                return
        self.errors.clear("queue", "collect")

    def _per_study(
        self, step: str, study: StudyRow, fn: Callable[..., None], *args: object
    ) -> None:
        try:
            fn(*args)
        except _OUTAGE:
            if step == "collect":
                raise
            self.errors.report("queue", step, "broker unreachable", study_uid=study.study_uid)
        except Exception as exc:  # one bad study must not stop the others
            self.errors.report(
                "queue", step, f"{type(exc).__name__}: {exc}", study_uid=study.study_uid
            )
        else:
            self.errors.clear("queue", step, study.study_uid)

    def _report_without_pairs(self, study: StudyRow) -> bool:
        """A study with no pair still gets its "not analyzed" result objects (SRs and summary,
        image by image, issue 9 §2) when it holds at least one image that is not ours; a study
        of non-images only (a lone SR, our own results) is closed without a task."""
        if not self.settings.write_not_analyzed_sr:
            return False
        plan = json.loads(study.plan_json) if study.plan_json else {}
        reasons = plan.get("not_analyzed") or {}
        return any(
            is_image_class(row.sop_class_uid)
            and reasons.get(row.sop_instance_uid) != OWN_OBJECT_REASON
            for row in self.index.instances(study.study_uid)
        )

    def _close_not_analyzed(self, study: StudyRow) -> None:
        """A ready study whose plan has no pair (a unilateral study, a lone SR, …): final state
        ``not_analyzed``; every image's reason is in the plan and the result record."""
        plan = json.loads(study.plan_json) if study.plan_json else {}
        not_analyzed: dict[str, str] = plan.get("not_analyzed", {})
        self.index.record_result(
            study.study_uid,
            study.version,
            json.dumps(
                {
                    "exam": None,
                    "breasts": {},
                    "model": None,
                    "not_analyzed": not_analyzed,
                }
            ),
        )
        self.index.transition(
            study.study_uid,
            StudyState.NOT_ANALYZED,
            expected=StudyState.READY,
            error=NO_PAIR,
        )
        metrics.study_finished(StudyState.NOT_ANALYZED)
        log.info(
            "study_not_analyzed",
            study_uid=study.study_uid,
            version=study.version,
            images=len(not_analyzed),
        )

    # -- internals ------------------------------------------------------------------------
    def _model(self) -> tuple[str, str]:
        version = self.settings.model_version or self.registry.active_version()
        if version is None:
            raise CheckpointError(
                f"no active model in {self.registry.root}; run `brgan models activate VERSION`"
            )
        entry = self.registry.get(version)
        return entry.version, entry.sha256

    def _error_once(self, study: StudyRow, message: str) -> None:
        """Record why a study is not queued, once per distinct reason (not every pass)."""
        self.errors.report("queue", "not_queued", message, study_uid=study.study_uid)

    def _collect(self, study: StudyRow) -> None:
        if not study.task_id:
            self.index.transition(study.study_uid, StudyState.READY, error="task id lost")
            return
        result = self.app.AsyncResult(study.task_id)
        state = result.state
        if state == "SUCCESS":
            self.errors.clear("worker", "disk_full", study.study_uid)
            self._record(study, result.result)
        elif state == "FAILURE" and RESULTS_DISK_FULL in str(result.result):
            # Not the study's fault: wait for space, then send it again (nothing was kept of
            # the attempt; the stale FAILURE is forgotten so the next run's state is read).
            message = _short(result.result)
            result.forget()
            self._retry_at[study.study_uid] = self.clock() + self.settings.disk_full_retry
            self.index.transition(
                study.study_uid,
                StudyState.READY,
                error=f"{message}; next try in {self.settings.disk_full_retry:.0f} s",
            )
            self.errors.report("worker", "disk_full", message, study_uid=study.study_uid)
            log.warning("results_disk_full_retry", study_uid=study.study_uid)
        elif state in ("FAILURE", "REVOKED"):
            error = f"analysis task failed: {_short(result.result)}"
            self.index.transition(study.study_uid, StudyState.FAILED, error=error)
            metrics.study_finished(StudyState.FAILED)
            self.index.record_error("worker", error, study_uid=study.study_uid)
        elif state in ("STARTED", "RETRY"):
            if study.state == StudyState.QUEUED:
                study = self.index.transition(
                    study.study_uid, StudyState.RUNNING, expected=StudyState.QUEUED
                )
            self._check_lease(study, result.info)
        elif state == "PENDING":
            self._maybe_requeue(study)

    def _check_lease(self, study: StudyRow, info: Any) -> None:
        """A started task whose worker stopped beating is lost (SIGKILL, power, OOM): the
        broker would redeliver it only after its visibility timeout (an hour), and kombu's
        filesystem transport never (it deletes a message when it is read). Re-send it under
        the same id; the result objects are deterministic and the outbox sends each once."""
        now = time.time()
        beat = info.get("heartbeat") if isinstance(info, dict) else None
        seen = self._started_seen.setdefault(study.study_uid, now)
        last = max(float(beat) if isinstance(beat, int | float) else seen, seen)
        last = max(last, self._requeued_at.get(study.study_uid, 0.0))
        if now - last < self.settings.worker_lease:
            return
        worker = info.get("hostname") if isinstance(info, dict) else None
        self.index.transition(
            study.study_uid,
            StudyState.READY,
            error=f"worker lost (no heartbeat for {now - last:.0f} s); re-queued",
        )
        self._requeued_at[study.study_uid] = now
        self._started_seen.pop(study.study_uid, None)
        self.index.record_error(
            "worker",
            f"task {study.task_id} lost with its worker {worker or '?'}; re-queued",
            study_uid=study.study_uid,
        )
        log.warning("task_lost_requeued", study_uid=study.study_uid, task_id=study.task_id)
        fresh = self.index.get_study(study.study_uid)
        if fresh is not None:
            self.on_study_ready(fresh.study_uid, fresh.version)

    def _maybe_requeue(self, study: StudyRow) -> None:
        since = self._queued_at.setdefault(study.study_uid, self.clock())
        if self.clock() - since < self.settings.requeue_after:
            return
        if queue_depth(self.settings) != 0:
            # Tasks are still waiting (a backlog), or the broker cannot be asked: ours may
            # simply not have started yet. Only an empty queue proves the message is gone.
            return
        # Unknown to the result backend for too long: the message may be gone. Send it again
        # under the same id; running it twice is harmless (idempotent task).
        self.index.transition(study.study_uid, StudyState.READY, error="task vanished; re-queued")
        self._queued_at.pop(study.study_uid, None)
        log.warning("task_requeued", study_uid=study.study_uid, task_id=study.task_id)
        fresh = self.index.get_study(study.study_uid)
        if fresh is not None:
            self.on_study_ready(fresh.study_uid, fresh.version)

    def _record(self, study: StudyRow, raw: Any) -> None:
        try:
            summary = StudySummary.from_json(raw)
        except ContractError as exc:
            self.index.transition(
                study.study_uid, StudyState.FAILED, error=f"malformed task result: {exc}"
            )
            return
        if summary.study_version != study.version or summary.study_uid != study.study_uid:
            self.index.transition(study.study_uid, StudyState.FAILED, error="stale task result")
            return
        try:  # the result backend is a trust boundary: only files in <results>/<task id>/
            check_result_files(summary.result_files, self.settings.results_path, study.task_id)
        except UntrustedMessageError as exc:
            self.index.transition(study.study_uid, StudyState.FAILED, error=str(exc))
            self.index.record_error("worker", str(exc), study_uid=study.study_uid)
            log.warning("task_result_refused", study_uid=study.study_uid, task_id=study.task_id)
            return
        model = summary.provenance.to_json()
        targets = {p.target_uid for p in self.index.pairs(study.study_uid, study.version)}
        scores: dict[str, str] = {}
        for image in summary.images:
            scores[image.sop_instance_uid] = json.dumps(
                {"status": "analyzed", **image.to_json(), "model": model}
            )
        failed_targets = 0
        for failure in summary.not_analyzed:
            if failure.sop_instance_uid in targets and failure.sop_instance_uid not in scores:
                failed_targets += 1
                scores[failure.sop_instance_uid] = json.dumps(
                    {"status": "not analyzed", "reason": failure.reason}
                )
        self.index.record_scores(study.study_uid, study.version, scores)
        self.index.record_result(
            study.study_uid,
            study.version,
            json.dumps(
                {
                    "exam": summary.exam,
                    "breasts": summary.breasts,
                    "model": model,
                    "timings": summary.timings,
                    "task_id": summary.task_id,
                    "not_analyzed": {n.sop_instance_uid: n.reason for n in summary.not_analyzed},
                    "result_files": [r.to_json() for r in summary.result_files],
                }
            ),
        )
        analyzed = len(summary.images)
        if not targets:  # a report-only task: nothing could be paired, every reason recorded
            target = StudyState.NOT_ANALYZED
        elif analyzed == 0:
            # Kept "failed" (its spool files stay for `brgan reprocess`): the worker cannot yet
            # tell an undecodable image from a spool it cannot read.
            target = StudyState.FAILED
        elif failed_targets:
            target = StudyState.PARTIALLY_ANALYZED
        else:
            target = StudyState.DONE
        error = None if targets else NO_PAIR
        if error is None and study.error and RESULTS_DISK_FULL in study.error:
            error = ""  # the wait is over: `brgan status` must not show it on a done study
        self.index.transition(study.study_uid, target, error=error)
        metrics.study_collected(study.queued_at, summary.timings, target)
        self._queued_at.pop(study.study_uid, None)
        self._started_seen.pop(study.study_uid, None)
        self._requeued_at.pop(study.study_uid, None)
        if self.outbox is not None:
            self.outbox.enqueue(study.study_uid, study.version, list(summary.result_files))
        log.info(
            "study_scored",
            study_uid=study.study_uid,
            version=study.version,
            state=str(target),
            images=analyzed,
            result_files=len(summary.result_files),
            exam=summary.exam,
            total_s=summary.timings.get("total_s"),
        )


def _has_unpaired(pairs: list[PairRow]) -> bool:
    return any(p.contralateral_uid == NO_CONTRALATERAL for p in pairs)


def _planned_uids(pairs: list[PairRow]) -> set[str]:
    """Every image the plan's pairs name (a target scored alone names no contralateral)."""
    uids = {p.target_uid for p in pairs}
    return uids | {p.contralateral_uid for p in pairs if p.contralateral_uid != NO_CONTRALATERAL}


def _short(value: Any) -> str:
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
    return text.splitlines()[0][:300] if text else "unknown error"


def _orientation(row: InstanceRow) -> tuple[str, str] | None:
    header = json.loads(row.header_json or "{}")
    values = header.get("patient_orientation") or []
    return (str(values[0]), str(values[1])) if len(values) == 2 else None


def _ref(row: InstanceRow, laterality: str | None, view: str | None) -> ImageRef:
    """An image as the study rules decided it (laterality/view of the plan, not re-read)."""
    return ImageRef(
        row.sop_instance_uid,
        row.path,
        laterality or row.laterality or "",
        view or row.view or "",
        _orientation(row),
    )


def build_task(
    study: StudyRow,
    pairs: list[PairRow],
    instances: dict[str, InstanceRow],
    model: ModelRef,
    queued_at: float,
) -> StudyTask:
    """The :class:`StudyTask` of a ready study: its pairs, every not-analyzed image of the plan
    with its reason, and the result objects of earlier versions it supersedes."""
    other = {"L": "R", "R": "L"}
    task_pairs = tuple(
        TaskPair(
            _ref(instances[p.target_uid], p.laterality, p.view),
            None
            if p.contralateral_uid == NO_CONTRALATERAL
            else _ref(instances[p.contralateral_uid], other.get(p.laterality or ""), p.view),
        )
        for p in pairs
    )
    plan = json.loads(study.plan_json) if study.plan_json else {}
    not_analyzed = tuple(
        NotAnalyzed(
            uid,
            reason,
            instances[uid].path if uid in instances else None,
            instances[uid].laterality if uid in instances else None,
            instances[uid].view if uid in instances else None,
        )
        for uid, reason in sorted((plan.get("not_analyzed") or {}).items())
        if reason != OWN_OBJECT_REASON  # our own results coming back are not "not analyzed"
    )
    supersedes = tuple(
        ResultFile.from_json(item, "superseded")
        for item in json.loads(study.superseded_json or "[]")
        if isinstance(item, dict) and "series_instance_uid" in item
    )
    return StudyTask(
        study_uid=study.study_uid,
        study_version=study.version,
        queued_at=queued_at,
        model=model,
        pairs=task_pairs,
        not_analyzed=not_analyzed,
        supersedes=supersedes,
    )
