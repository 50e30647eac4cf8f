"""Records and the study state machine of the index (no storage code here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from plugin.errors import PluginError


class StudyIndexError(PluginError):
    """The index cannot be opened or a write failed; the message names the database."""


class UnknownStudy(StudyIndexError):  # noqa: N818
    """No study with that StudyInstanceUID is in the index."""


class IllegalTransition(StudyIndexError):  # noqa: N818
    """A study state change that the state machine does not allow."""


class StudyState(StrEnum):
    """Where a study is in the data flow (DESIGN.md steps 1–6)."""

    RECEIVING = "receiving"  # instances arriving; not yet complete or stable
    READY = "ready"  # assembled and paired; waiting to be queued
    QUEUED = "queued"  # a Celery task id is recorded
    RUNNING = "running"  # a worker picked it up
    DONE = "done"  # every pair scored
    FAILED = "failed"  # the task failed; error recorded
    PARTIALLY_ANALYZED = "partially_analyzed"  # some pairs scored, some not
    NOT_ANALYZED = "not_analyzed"  # nothing could be analyzed; every image's reason recorded

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {
        StudyState.DONE,
        StudyState.FAILED,
        StudyState.PARTIALLY_ANALYZED,
        StudyState.NOT_ANALYZED,
    }
)

S = StudyState
#: Allowed transitions. ``→ receiving`` from a later state opens a new version of the study
#: (see :meth:`plugin.index.Index.open_new_version`); ``queued → ready`` lets a reconciler
#: re-queue a study whose task vanished; ``queued → done|…`` covers a result collected without
#: ever seeing the task start. ``ready → not_analyzed``: the plan has no pair to score (a
#: unilateral study, a lone SR, …); ``receiving → not_analyzed``: every instance of the study
#: arrived again under another StudyInstanceUID (latest arrival wins), so nothing is left.
TRANSITIONS: dict[StudyState, frozenset[StudyState]] = {
    S.RECEIVING: frozenset({S.READY, S.FAILED, S.NOT_ANALYZED}),
    S.READY: frozenset({S.QUEUED, S.RECEIVING, S.FAILED, S.NOT_ANALYZED}),
    S.QUEUED: frozenset({S.RUNNING, S.READY, *FINAL_STATES}),
    S.RUNNING: frozenset({S.QUEUED, S.READY, *FINAL_STATES}),
    S.DONE: frozenset({S.RECEIVING, S.QUEUED}),
    S.FAILED: frozenset({S.RECEIVING, S.READY, S.QUEUED}),
    S.PARTIALLY_ANALYZED: frozenset({S.RECEIVING, S.QUEUED}),
    S.NOT_ANALYZED: frozenset({S.RECEIVING, S.QUEUED}),
}


def check_transition(study_uid: str, current: StudyState, target: StudyState) -> None:
    """Raise :class:`IllegalTransition` unless ``current → target`` is allowed."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        raise IllegalTransition(
            f"study {study_uid}: cannot go from {current} to {target} (allowed: {allowed})"
        )


@dataclass(frozen=True)
class InstanceRecord:
    """What the listener records for one stored instance (no PHI columns; PHI stays in
    ``header_json``, which is never logged)."""

    sop_instance_uid: str
    study_uid: str
    series_uid: str | None
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    size: int
    header_json: str
    laterality: str | None
    view: str | None
    usable: bool
    reason: str | None
    received_at: float
    association_id: int | None = None
    presentation_intent: str | None = None
    image_type: str | None = None  # backslash-joined, as in DICOM
    view_modifiers: str | None = None  # "code^scheme" items joined by backslashes
    acquisition_datetime: str | None = None  # ISO 8601, no time zone


@dataclass(frozen=True)
class InstanceRow(InstanceRecord):
    """An instance as stored: plus the study version it arrived in and how often it came.

    ``moved_from_study`` / ``moved_from_path`` are set only on the row
    :meth:`~plugin.index.Index.record_instance` returns when this SOP Instance UID was indexed
    under another study before (not stored columns)."""

    study_version: int = 1
    receive_count: int = 1
    moved_from_study: str | None = None
    moved_from_path: str | None = None


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    state: StudyState
    version: int
    instance_count: int
    first_instance_at: float
    last_instance_at: float
    created_at: float
    updated_at: float
    state_changed_at: float
    planned_at: float | None = None
    pairs_key: str | None = None
    plan_json: str | None = None
    task_id: str | None = None
    model_version: str | None = None
    error: str | None = None
    finished_at: float | None = None
    purged_at: float | None = None
    result_json: str | None = None
    #: JSON list of the result files (contract ``ResultFile``) of earlier versions.
    superseded_json: str | None = None
    #: When this version was first queued (the result objects' Content Date/Time).
    queued_at: float | None = None


@dataclass(frozen=True)
class PairRow:
    """One target image and its contralateral; ``score_json`` is filled by the worker step."""

    study_uid: str
    version: int
    target_uid: str
    contralateral_uid: str
    laterality: str | None
    view: str | None
    score_json: str | None = None
    scored_at: float | None = None


@dataclass(frozen=True)
class AssociationRow:
    """Audit log entry of one association (no PHI)."""

    id: int
    calling_ae: str
    called_ae: str
    peer_address: str
    peer_port: int | None
    tls: bool
    started_at: float
    ended_at: float | None
    outcome: str  # open | released | aborted | rejected
    instances_ok: int
    instances_failed: int
    last_failure: str | None


@dataclass(frozen=True)
class ErrorRow:
    at: float
    source: str  # store | coordinator | worker | spool
    message: str
    study_uid: str | None = None
    sop_uid: str | None = None
    status: int | None = None


class OutboxState(StrEnum):
    """Where one result object is on its way to one destination (DESIGN.md step 8)."""

    PENDING = "pending"  # to be sent (again) at next_attempt_at
    DELIVERED = "delivered"  # the destination acknowledged it
    FAILED = "failed"  # refused for good, or still failing when the retry window closed
    ABANDONED = "abandoned"  # an admin gave up on it (`brgan outbox abandon`)


#: States that no longer hold the study's files back from the retention purge.
OUTBOX_SETTLED = frozenset({OutboxState.DELIVERED, OutboxState.ABANDONED})


@dataclass(frozen=True)
class OutboxItem:
    """What to enqueue: one result object (the contract's ResultFile, flattened)."""

    study_uid: str
    study_version: int
    kind: str
    path: str
    sop_instance_uid: str
    sop_class_uid: str
    sha256: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    """One result object for one destination (unique per SOP Instance UID and destination:
    a redelivered task's byte-identical object is never queued twice)."""

    id: int
    study_uid: str
    study_version: int
    kind: str
    path: str
    sop_instance_uid: str
    sop_class_uid: str
    sha256: str | None
    destination: str
    state: OutboxState
    attempts: int
    created_at: float
    next_attempt_at: float
    last_attempt_at: float | None
    settled_at: float | None
    last_status: int | None
    last_detail: str | None
