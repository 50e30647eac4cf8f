"""The coordinator loop: assemble studies outside the C-STORE handler (DESIGN.md step 2).

A background thread that, every ``coordinator_interval`` seconds:

1. plans every study in ``receiving`` (:func:`plan_study` on the stored headers) and asks
   :func:`readiness`; a ready study gets its plan and pairs recorded, goes to ``ready`` and is
   handed to the **queueing hook** ``on_study_ready(study_uid, version)``;
2. re-plans ``ready`` and finished studies that received an instance after their plan: a
   changed set of pairs re-opens the study (a finished one as a new version, see
   :func:`needs_new_version`); anything else only updates the stored plan;
3. calls the optional ``reconcile()`` hook (the queue step's re-queue of vanished tasks);
4. purges the spool files of studies done more than ``retention_days`` ago.

Restart recovery (:meth:`Coordinator.recover`, before the listener starts): stale temp files
go, spool files the index lacks are indexed (unless the index holds the same SOP Instance UID
from a later arrival: the latest arrival wins, and the earlier file is set aside in
``.superseded`` instead, so a restart never moves an instance back), and every study not
finished is picked up again
from the index: ``receiving`` ones by the loop, ``ready`` ones by calling the hook again (the
hook must be idempotent; the queue step's task ids are).

The hook is where the Celery queueing step plugs in; until then the default only logs, and a
ready study stays ``ready``. No scores are ever made up here.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plugin.errors import PluginError
from plugin.index import (
    FINAL_STATES,
    Index,
    PairRow,
    StudyRow,
    StudyState,
)
from plugin.index.once import ErrorOnce
from plugin.listener.receive import instance_record, set_aside_earlier
from plugin.logging import get_logger
from plugin.spool import Spool, StoredFile
from plugin.study import (
    InstanceHeader,
    Ready,
    StudyPlan,
    classify,
    needs_new_version,
    plan_study,
    read_header,
    readiness,
)

log = get_logger(__name__)

StudyReadyHook = Callable[[str, int], None]

EMPTIED_STUDY = (
    "no instances left: every instance of this study arrived again under another "
    "StudyInstanceUID (the latest arrival wins)"
)


def log_only_hook(study_uid: str, version: int) -> None:
    """Default ``on_study_ready``: no queue is plugged in yet; the study stays ``ready``."""
    log.info("study_ready_not_queued", study_uid=study_uid, version=version)


_TASK_FOLDER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _purge_result_folders(study: StudyRow) -> int:
    """Delete the ``<results>/<task id>/`` folders of every version of the study (only folders
    named like a task id, holding the files its result records list)."""
    paths: list[str] = []
    for text in (study.result_json, study.superseded_json):
        data = json.loads(text) if text else None
        items = data.get("result_files", []) if isinstance(data, dict) else data or []
        paths += [str(item.get("path")) for item in items if isinstance(item, dict)]
    folders = {Path(p).parent for p in paths if p}
    removed = 0
    for folder in folders:
        if _TASK_FOLDER.match(folder.name) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@dataclass
class RecoveryReport:
    """What :meth:`Coordinator.recover` found at start."""

    stale_temp_files: int = 0
    reindexed_files: int = 0
    superseded_files: int = 0
    unreadable_files: int = 0
    studies_by_state: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CoordinatorTiming:
    complete_grace: float
    stable_age: float
    retention_days: float
    interval: float = 1.0


class Coordinator:
    """Assembles studies from the index and hands ready ones to ``on_study_ready``."""

    def __init__(
        self,
        index: Index,
        spool: Spool,
        timing: CoordinatorTiming,
        *,
        on_study_ready: StudyReadyHook = log_only_hook,
        reconcile: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        score_unpaired: Callable[[], bool] = lambda: False,
    ) -> None:
        self.index = index
        #: Whether the model that will analyze may score an image without a contralateral
        #: (its card, :func:`plugin.coordinator.unpaired.scores_unpaired`), asked at each plan.
        self.score_unpaired = score_unpaired
        self.spool = spool
        self.timing = timing
        self.on_study_ready = on_study_ready
        self.reconcile = reconcile
        self.clock = clock
        self.errors = ErrorOnce(index)
        self._announced: set[tuple[str, int]] = set()
        # study uid → (last_instance_at, instance_count, version, plan complete): skip re-planning
        # a receiving study that got nothing new since the last pass.
        self._complete: dict[str, tuple[float, int, int, bool]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="brgan-coordinator", daemon=True)
        self._thread.start()
        log.info("coordinator_started", interval=self.timing.interval)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        log.info("coordinator_stopped")

    def wake(self) -> None:
        """Run the next pass now (e.g. after an association was released)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the loop must outlive any bug in one pass
                log.error("coordinator_pass_failed", error=f"{type(exc).__name__}: {exc}")
            self._wake.wait(self.timing.interval)
            self._wake.clear()

    # -- one pass ---------------------------------------------------------------------------
    def run_once(self) -> None:
        """One pass over the index; never raises (errors are logged and recorded)."""
        for study in self._safe(self.index.studies, [StudyState.RECEIVING]) or []:
            self._guarded(study.study_uid, self._assemble, study)
        for study in self._safe(self.index.studies_with_new_instances) or []:
            self._guarded(study.study_uid, self._replan, study)
        ready = self._safe(self.index.studies, [StudyState.READY]) or []
        self._announced &= {(s.study_uid, s.version) for s in ready}
        for study in ready:
            if (study.study_uid, study.version) not in self._announced:
                self._guarded(study.study_uid, self._announce, study)
        if self.reconcile is not None:
            self._guarded(None, self.reconcile)
        self._guarded(None, self.purge_expired)

    def _safe(self, fn: Callable[..., list[StudyRow]], *args: object) -> list[StudyRow] | None:
        try:
            return fn(*args)
        except PluginError as exc:
            log.error("coordinator_index_error", error=str(exc))
            return None

    def _guarded(self, study_uid: str | None, fn: Callable[..., object], *args: object) -> None:
        """Run one step for one study; a failure is logged and recorded once (not every pass)
        and never stops the pass for the other studies."""
        step = getattr(fn, "__name__", "?")
        try:
            fn(*args)
        except Exception as exc:  # one bad study must not stop the loop
            self.errors.report(
                "coordinator", step, f"{type(exc).__name__}: {exc}", study_uid=study_uid
            )
        else:
            self.errors.clear("coordinator", step, study_uid)

    def _plan(self, study: StudyRow, unpaired: bool | None = None) -> tuple[StudyPlan, float]:
        """The study's plan now; ``unpaired``: plan with that rule instead of asking the model's
        card (an unreadable registry raises: the step is retried next pass, never planned
        with a guess)."""
        rows = self.index.instances(study.study_uid)
        headers = [InstanceHeader.from_json(json.loads(r.header_json)) for r in rows]
        if unpaired is None:
            unpaired = bool(self.score_unpaired())
        return plan_study(headers, score_unpaired=unpaired), max(r.received_at for r in rows)

    def _record(self, study: StudyRow, plan: StudyPlan, as_of: float) -> StudyRow:
        pairs = [
            PairRow(
                study.study_uid,
                study.version,
                p.target_uid,
                p.contralateral_uid,
                p.laterality,
                p.view,
            )
            for p in plan.pairs
        ]
        return self.index.record_plan(
            study.study_uid,
            study.version,
            pairs_key=plan.pairs_key(),
            plan_json=json.dumps(plan.to_json(), sort_keys=True),
            pairs=pairs,
            as_of=as_of,
        )

    def _close_emptied(self, study: StudyRow) -> None:
        """Every instance of the study arrived again under another StudyInstanceUID (the
        latest arrival wins, see :meth:`plugin.index.Index.record_instance`): nothing is left
        to plan, so the study is closed with the reason instead of failing every pass."""
        self._complete.pop(study.study_uid, None)
        self.index.transition(
            study.study_uid,
            StudyState.NOT_ANALYZED,
            expected=study.state,
            error=EMPTIED_STUDY,
        )
        log.warning("study_emptied", study_uid=study.study_uid, version=study.version)

    def _assemble(self, study: StudyRow) -> None:
        if study.instance_count == 0:
            self._close_emptied(study)
            return
        key = (study.last_instance_at, study.instance_count, study.version)
        cached = self._complete.get(study.study_uid)
        plan: StudyPlan | None = None
        if cached is not None and cached[:3] == key:
            complete = cached[3]
        else:
            plan, as_of = self._plan(study)
            complete = plan.complete
            self._complete[study.study_uid] = (*key, complete)
        verdict = readiness(
            self.clock(),
            study.first_instance_at,
            study.last_instance_at,
            complete,
            self.timing.complete_grace,
            self.timing.stable_age,
        )
        if not isinstance(verdict, Ready):
            return
        if plan is None:
            plan, as_of = self._plan(study)
        self._complete.pop(study.study_uid, None)
        self._record(study, plan, as_of)
        study = self.index.transition(study.study_uid, StudyState.READY, expected=study.state)
        log.info(
            "study_ready",
            study_uid=study.study_uid,
            version=study.version,
            why=verdict.why,
            pairs=len(plan.pairs),
            not_analyzed=len(plan.not_analyzed),
        )
        self._announce(study)

    def _announce(self, study: StudyRow) -> None:
        self.on_study_ready(study.study_uid, study.version)
        self._announced.add((study.study_uid, study.version))

    def _replan(self, study: StudyRow) -> None:
        if study.instance_count == 0:
            if study.state == StudyState.READY:
                self._announced.discard((study.study_uid, study.version))
                self._close_emptied(study)
            return  # a finished study keeps its plan and results as history
        # Compared under the rule the recorded plan was made with: a model switched since then
        # must not turn a late SR or spot view into a new version.
        recorded = json.loads(study.plan_json) if study.plan_json else {}
        plan, as_of = self._plan(study, bool(recorded.get("score_unpaired", False)))
        if not needs_new_version(study.pairs_key, plan):
            self.index.update_plan_json(
                study.study_uid, json.dumps(plan.to_json(), sort_keys=True), as_of
            )
            log.info("late_instance_recorded", study_uid=study.study_uid, pairs_changed=False)
            return
        if study.state == StudyState.READY:
            self.index.transition(study.study_uid, StudyState.RECEIVING, expected=study.state)
            self._announced.discard((study.study_uid, study.version))
            log.info("study_reopened", study_uid=study.study_uid, version=study.version)
        elif study.state in FINAL_STATES:
            reopened = self.index.open_new_version(study.study_uid)
            log.info("study_new_version", study_uid=study.study_uid, version=reopened.version)

    # -- retention --------------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete the spool files and result folders of studies finished ``retention_days``
        ago whose result objects every destination acknowledged (or an admin abandoned);
        returns how many studies were purged."""
        cutoff = self.clock() - self.timing.retention_days * 86400.0
        purged = 0
        for study in self.index.due_for_purge(cutoff):
            files = self.spool.purge_study(study.study_uid)
            # Result folders go only once a destination holds the objects; without any
            # destination they are the only copy and stay.
            delivered = bool(self.index.outbox_rows(study_uid=study.study_uid, limit=1))
            results = _purge_result_folders(study) if delivered else 0
            self.index.mark_purged(study.study_uid)
            purged += 1
            log.info("study_purged", study_uid=study.study_uid, files=files, results=results)
        superseded = self.spool.purge_superseded(cutoff)
        if superseded:
            log.info("superseded_files_purged", files=superseded)
        return purged

    # -- restart recovery -------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Run before the listener starts: clean temp files, index orphan files, count work."""
        report = RecoveryReport(stale_temp_files=self.spool.remove_stale_temp())
        known = self.index.known_paths()
        for path in self.spool.instance_files():
            if str(path) in known:
                continue
            try:
                header = read_header(path)
                stat = path.stat()
                indexed = self.index.instance(header.sop_instance_uid)
                if (
                    indexed is not None
                    and indexed.study_uid != header.study_uid
                    and indexed.received_at >= stat.st_mtime
                ):
                    # The same SOP Instance UID is indexed from a later arrival (in another
                    # study): the latest arrival wins, so this earlier file is set aside.
                    self.spool.set_aside(path)
                    report.superseded_files += 1
                    continue
                row = self.index.record_instance(
                    instance_record(
                        header,
                        classify(header),
                        StoredFile(path, stat.st_size),
                        received_at=stat.st_mtime,
                    )
                )
                set_aside_earlier(self.spool, self.index, row)
                report.reindexed_files += 1
            except Exception as exc:
                report.unreadable_files += 1
                log.error(
                    "recovery_file_unreadable",
                    study_uid=path.parent.name,
                    sop_uid=path.stem,
                    error=type(exc).__name__,
                )
        counts = self.index.study_counts()
        report.studies_by_state = {str(k): v for k, v in counts.items() if v}
        log.info(
            "recovered",
            stale_temp_files=report.stale_temp_files,
            reindexed_files=report.reindexed_files,
            superseded_files=report.superseded_files,
            unreadable_files=report.unreadable_files,
            **{f"studies_{k}": v for k, v in report.studies_by_state.items()},
        )
        return report
