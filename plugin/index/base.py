"""The index interface: everything the listener, coordinator and CLI need, nothing more.

:class:`plugin.index.sqlite.SqliteIndex` implements it on SQLite (WAL); a PostgreSQL version
would implement the same methods. Implementations are safe to call from pynetdicom's
per-association threads. Times are POSIX seconds (``time.time()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from plugin.index.model import (
    AssociationRow,
    ErrorRow,
    InstanceRecord,
    InstanceRow,
    OutboxItem,
    OutboxRow,
    OutboxState,
    PairRow,
    StudyRow,
    StudyState,
)


class Index(ABC):
    """Source of truth for instances, studies, pairs/scores and the association audit log."""

    # -- instances (listener) ---------------------------------------------------------------
    @abstractmethod
    def record_instance(self, record: InstanceRecord) -> InstanceRow:
        """Insert or replace an instance; create its study in ``receiving`` if new.

        A re-sent SOP instance replaces the earlier row (``receive_count`` goes up). The study's
        ``last_instance_at`` moves on; its state is *not* changed here: re-opening a finished
        study is the coordinator's decision (:meth:`open_new_version`).

        The same SOP Instance UID arriving under another StudyInstanceUID: the latest arrival
        wins. The row moves to the new study and the returned row names the study and spool
        path it came from (``moved_from_study`` / ``moved_from_path``) so the caller can take
        the earlier file out of the spool. An old study that was ``ready`` goes back to
        ``receiving`` (its plan named the instance); a queued, running or finished one keeps
        its plan and results as history.
        """

    @abstractmethod
    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        """One instance by SOP Instance UID, or None."""

    @abstractmethod
    def instances(self, study_uid: str) -> list[InstanceRow]:
        """The study's instances, oldest first."""

    @abstractmethod
    def known_paths(self) -> set[str]:
        """Spool paths of every indexed instance (for recovery of unindexed files)."""

    # -- studies (coordinator) --------------------------------------------------------------
    @abstractmethod
    def get_study(self, study_uid: str) -> StudyRow | None: ...

    @abstractmethod
    def studies(
        self, states: Iterable[StudyState] | None = None, limit: int | None = None
    ) -> list[StudyRow]:
        """Studies in the given states (all when None), most recently updated first."""

    @abstractmethod
    def study_counts(self) -> dict[StudyState, int]:
        """How many studies are in each state (every state present, zero included)."""

    @abstractmethod
    def transition(
        self,
        study_uid: str,
        target: StudyState,
        *,
        expected: StudyState | None = None,
        task_id: str | None = None,
        model_version: str | None = None,
        error: str | None = None,
        queued_at: float | None = None,
    ) -> StudyRow:
        """Move a study to ``target``; raise ``IllegalTransition`` if not allowed (or if it is
        not in ``expected``), ``UnknownStudy`` if absent. ``task_id``/``model_version``/``error``
        are stored when given; entering a final state stamps ``finished_at``."""

    @abstractmethod
    def set_task_id(self, study_uid: str, task_id: str) -> StudyRow:
        """Record a (new) Celery task id for a queued or running study (re-queue)."""

    @abstractmethod
    def open_new_version(self, study_uid: str) -> StudyRow:
        """A finished (or ready) study whose pairs changed: ``version + 1``, back to
        ``receiving``, task id and error cleared; older versions' pairs and scores stay."""

    @abstractmethod
    def record_plan(
        self,
        study_uid: str,
        version: int,
        *,
        pairs_key: str,
        plan_json: str,
        pairs: Sequence[PairRow],
        as_of: float,
    ) -> StudyRow:
        """Store the assembled plan of ``version`` (its pairs, without scores). ``as_of`` is
        the latest ``received_at`` among the instances planned: anything received later shows
        up in :meth:`studies_with_new_instances`."""

    @abstractmethod
    def update_plan_json(self, study_uid: str, plan_json: str, as_of: float) -> StudyRow:
        """Re-planned after a late instance that did not change the pairs: keep the pairs and
        their scores, store the new plan (its not-analyzed reasons) and its time."""

    @abstractmethod
    def record_scores(
        self, study_uid: str, version: int, scores: Mapping[str, str]
    ) -> list[PairRow]:
        """Store score JSON per target SOP instance UID for ``version``."""

    @abstractmethod
    def record_result(self, study_uid: str, version: int, result_json: str) -> StudyRow:
        """Store the study-level result summary of ``version`` (breast and exam scores,
        timings, model); cleared when a new version opens."""

    @abstractmethod
    def pairs(self, study_uid: str, version: int | None = None) -> list[PairRow]:
        """Pairs of ``version`` (default: the study's current version)."""

    @abstractmethod
    def studies_with_new_instances(self) -> list[StudyRow]:
        """Finished studies that received an instance after their last plan."""

    @abstractmethod
    def due_for_purge(self, finished_before: float) -> list[StudyRow]:
        """Done / partially analyzed studies finished before the cut-off, not yet purged."""

    @abstractmethod
    def mark_purged(self, study_uid: str) -> None: ...

    # -- audit and errors -------------------------------------------------------------------
    @abstractmethod
    def open_association(
        self,
        calling_ae: str,
        called_ae: str,
        peer_address: str,
        peer_port: int | None,
        tls: bool,
        *,
        outcome: str = "open",
        failure: str | None = None,
    ) -> int:
        """Start an audit entry; returns its id. ``outcome='rejected'`` closes it at once."""

    @abstractmethod
    def count_association_instance(
        self, association_id: int, ok: bool, failure: str | None = None
    ) -> None: ...

    @abstractmethod
    def close_association(self, association_id: int, outcome: str) -> None: ...

    @abstractmethod
    def associations(self, limit: int = 20) -> list[AssociationRow]: ...

    @abstractmethod
    def record_error(
        self,
        source: str,
        message: str,
        *,
        study_uid: str | None = None,
        sop_uid: str | None = None,
        status: int | None = None,
    ) -> None:
        """Keep an operational error (no PHI) for ``brgan status``."""

    # -- outbox (coordinator; DESIGN.md step 8) ----------------------------------------------
    @abstractmethod
    def enqueue_outbox(self, items: Sequence[OutboxItem], destinations: Sequence[str]) -> int:
        """One pending row per item and destination; an item already queued for a destination
        (same SOP Instance UID) is not queued again. Returns how many rows were added."""

    @abstractmethod
    def outbox_due(self, destination: str, now: float, limit: int = 50) -> list[OutboxRow]:
        """Pending rows of a destination whose next attempt is due, oldest first."""

    @abstractmethod
    def record_send(
        self,
        row_id: int,
        state: OutboxState,
        *,
        status: int | None,
        detail: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        """The outcome of one attempt (attempts + 1)."""

    @abstractmethod
    def outbox_rows(
        self,
        *,
        states: Iterable[OutboxState] | None = None,
        destination: str | None = None,
        study_uid: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRow]: ...

    @abstractmethod
    def set_outbox_state(
        self,
        state: OutboxState,
        *,
        states: Iterable[OutboxState] | None = None,
        destination: str | None = None,
        study_uid: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> int:
        """Resend (``PENDING``: due now, attempts and retry window reset) or abandon rows that
        match every given filter; returns how many changed."""

    @abstractmethod
    def outbox_summary(self) -> dict[str, dict[str, Any]]:
        """Per destination: the count of each state and the oldest pending row's creation."""

    @abstractmethod
    def outbox_holds(self, study_uid: str) -> bool:
        """Whether a row of the study is still pending or failed (its files must stay)."""

    @abstractmethod
    def errors(self, limit: int = 10) -> list[ErrorRow]: ...

    @abstractmethod
    def close(self) -> None: ...
