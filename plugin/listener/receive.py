"""One received instance → spool file + index row → a DICOM status (DESIGN.md step 1).

:func:`receive_instance` is the whole C-STORE policy, independent of pynetdicom so it can be
tested on its own; the handler in :mod:`plugin.listener.handlers` only feeds it.

Status policy (also in ``docs/conformance.md``):

=========  =====================================================================
0x0000     stored and indexed (whatever the object is; usability is decided later)
0xA700     out of resources: the spool or index write failed (the sender may retry)
0xA701     out of resources: the data set is larger than ``max_dataset_bytes`` (a deflated
           one: once inflated; inflation stops at the limit)
0xC000     cannot understand: the header is not readable as DICOM (also: empty or random
           bytes, i.e. no SOPClassUID, SOPInstanceUID or StudyInstanceUID at all)
0xC001     cannot understand: SOP Instance UID or Study Instance UID missing, or one of
           those, SeriesInstanceUID or SOPClassUID not a valid UID (VR UI, digits and dots,
           at most 64 characters); the comment names the attribute
=========  =====================================================================

Only the header is read (``stop_before_pixels``); pixel data is never decoded here. A Deflated
Explicit VR Little Endian data set is inflated as a stream: the header is kept, the rest only
counted (:mod:`plugin.study.deflate`), so a small deflate bomb cannot exhaust memory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from plugin import metrics
from plugin.errors import PluginError
from plugin.index import Index, InstanceRecord, InstanceRow, StudyIndexError, StudyState
from plugin.logging import get_logger
from plugin.spool import Spool, SpoolError, StoredFile
from plugin.study.classify import Classification, classify
from plugin.study.deflate import DeflatedTooLargeError
from plugin.study.header import BadUID, InstanceHeader, NotADataSet, read_header

log = get_logger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
TOO_LARGE = 0xA701
CANNOT_UNDERSTAND = 0xC000
MISSING_UIDS = 0xC001


@dataclass(frozen=True)
class StoreLimits:
    """Per-instance limits and identity the receive step needs from the settings."""

    max_dataset_bytes: int


@dataclass(frozen=True)
class StoreOutcome:
    """The answer to one C-STORE: status, a short PHI-free comment, and what was stored."""

    status: int
    comment: str | None = None
    study_uid: str | None = None
    sop_uid: str | None = None
    path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    def as_dataset(self) -> Dataset:
        """The status as pynetdicom expects it from a handler (Status + Error Comment)."""
        ds = Dataset()
        ds.Status = self.status
        if self.comment:
            ds.ErrorComment = self.comment[:64]
        return ds


def _header_failure(exc: Exception) -> StoreOutcome:
    if isinstance(exc, BadUID):  # names the attribute, never its value
        return StoreOutcome(MISSING_UIDS, f"{exc.attribute} {exc.problem}")
    if isinstance(exc, NotADataSet):  # empty, or random bytes that parse to nothing
        return StoreOutcome(CANNOT_UNDERSTAND, "not a DICOM data set")
    # Never echo the parser's message: it may quote attribute values.
    return StoreOutcome(CANNOT_UNDERSTAND, "header not readable as DICOM")


def _classify(header: InstanceHeader) -> Classification:
    try:
        return classify(header)
    except Exception as exc:  # a parseable object is always stored; usability comes later
        log.warning(
            "classify_failed",
            sop_uid=header.sop_instance_uid,
            error=type(exc).__name__,
        )
        return Classification(None, None, False, f"classification failed ({type(exc).__name__})")


def refuse_unwritten(index: Index, reason: str, *, sop_uid: str | None = None) -> StoreOutcome:
    """0xA700 for a data set whose temporary file could not be written (a full spool disk,
    :mod:`plugin.listener.incoming`): nothing was stored, the sender keeps it and retries."""
    return _failed(index, StoreOutcome(OUT_OF_RESOURCES, reason, None, sop_uid), size=0)


def receive_instance(
    source: Path | bytes,
    spool: Spool,
    index: Index,
    limits: StoreLimits,
    *,
    association_id: int | None = None,
) -> StoreOutcome:
    """Store one received data set given as a complete DICOM file (``Path``: chunked receive;
    the file is *moved* into the spool) or its encoded bytes (with file meta)."""
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    if size > limits.max_dataset_bytes:
        outcome = StoreOutcome(TOO_LARGE, f"data set over {limits.max_dataset_bytes} bytes")
        return _failed(index, outcome, size=size)
    try:
        header = read_header(source, strict_uids=True, max_inflated_bytes=limits.max_dataset_bytes)
    except DeflatedTooLargeError:
        # A deflated data set inflating past the limit (a "zip bomb"); inflation stopped there.
        outcome = StoreOutcome(
            TOO_LARGE, f"inflated data set over {limits.max_dataset_bytes} bytes"
        )
        return _failed(index, outcome, size=size, error="DeflatedTooLargeError")
    except Exception as exc:  # any parser failure is the sender's data, not our crash
        return _failed(index, _header_failure(exc), size=size, error=type(exc).__name__)
    study_uid, sop_uid = header.study_uid, header.sop_instance_uid
    classification = _classify(header)
    try:
        stored: StoredFile = (
            spool.move_in(study_uid, sop_uid, source)
            if isinstance(source, Path)
            else spool.write_bytes(study_uid, sop_uid, source)
        )
    except SpoolError as exc:
        outcome = StoreOutcome(OUT_OF_RESOURCES, "spool write failed", study_uid, sop_uid)
        return _failed(index, outcome, size=size, error=_os_reason(exc))
    try:
        row = index.record_instance(
            instance_record(
                header,
                classification,
                stored,
                received_at=time.time(),
                association_id=association_id,
            )
        )
    except StudyIndexError as exc:
        # The file is safe in the spool; start-up recovery indexes it. The sender retries.
        outcome = StoreOutcome(OUT_OF_RESOURCES, "index write failed", study_uid, sop_uid)
        return _failed(index, outcome, size=size, error=str(exc))
    set_aside_earlier(spool, index, row)
    log.info(
        "instance_stored",
        study_uid=study_uid,
        sop_uid=sop_uid,
        sop_class_uid=header.sop_class_uid,
        size=stored.size,
        laterality=classification.laterality,
        view=classification.view,
        usable=classification.usable,
        reason=classification.reason,
    )
    metrics.instance_received()
    return StoreOutcome(SUCCESS, None, study_uid, sop_uid, stored.path)


def set_aside_earlier(spool: Spool, index: Index, row: InstanceRow) -> None:
    """The same SOP Instance UID arrived under another study: the latest arrival wins (its row
    moved to the new study), so the earlier file leaves the old study's spool folder for
    ``.superseded`` (kept for the retention period, never re-indexed). Never raises: the new
    instance is already safe; a file that cannot be moved is retried by start-up recovery.

    The file stays where it is while the old study's analysis is queued or running (its task
    names that path); it goes with that study's spool purge, or to ``.superseded`` at the next
    start-up recovery.
    """
    if not row.moved_from_path or row.moved_from_path == row.path:
        return
    message = (
        "SOP Instance UID arrived again under another StudyInstanceUID "
        f"({row.study_uid}); the latest arrival wins"
    )
    try:
        old = index.get_study(row.moved_from_study or "")
        current = index.instance(row.sop_instance_uid)
        if current is not None and current.path == row.moved_from_path:
            return  # it moved back meanwhile (another association): that file is current
        if old is not None and old.state in (StudyState.QUEUED, StudyState.RUNNING):
            message += "; the earlier file is kept until that study's analysis ends"
        else:
            spool.set_aside(Path(row.moved_from_path))
            message += ", the earlier file was set aside"
    except (SpoolError, StudyIndexError) as exc:
        message += (
            f"; setting the earlier file aside failed ({type(exc).__name__}), recovery retries"
        )
    log.warning(
        "instance_moved_study",
        sop_uid=row.sop_instance_uid,
        study_uid=row.study_uid,
        previous_study_uid=row.moved_from_study,
    )
    try:
        index.record_error(
            "store", message, study_uid=row.moved_from_study, sop_uid=row.sop_instance_uid
        )
    except PluginError as exc:
        log.error("error_not_recorded", error=str(exc))


def instance_record(
    header: InstanceHeader,
    classification: Classification,
    stored: StoredFile,
    *,
    received_at: float,
    association_id: int | None = None,
) -> InstanceRecord:
    """The index row of a stored instance (header fields, classification, file)."""
    return InstanceRecord(
        sop_instance_uid=header.sop_instance_uid,
        study_uid=header.study_uid,
        series_uid=header.series_uid or None,
        sop_class_uid=header.sop_class_uid,
        transfer_syntax_uid=header.transfer_syntax_uid or "",
        path=str(stored.path),
        size=stored.size,
        header_json=json.dumps(header.to_json(), sort_keys=True, separators=(",", ":")),
        laterality=classification.laterality,
        view=classification.view,
        usable=classification.usable,
        reason=classification.reason,
        received_at=received_at,
        association_id=association_id,
        presentation_intent=header.presentation_intent,
        image_type="\\".join(header.image_type) or None,
        view_modifiers="\\".join(f"{v}^{s}" for v, s in header.view_modifier_codes) or None,
        acquisition_datetime=header.acquisition_datetime,
    )


def _os_reason(exc: BaseException) -> str:
    """The OS reason of a spool failure without the path (paths hold UIDs, maybe hashed)."""
    cause = exc.__cause__
    return getattr(cause, "strerror", None) or type(cause or exc).__name__


def _failed(
    index: Index, outcome: StoreOutcome, *, size: int, error: str | None = None
) -> StoreOutcome:
    """Log and record a refused instance; never raises (the service keeps running)."""
    metrics.instance_refused(outcome.status)
    log.warning(
        "instance_refused",
        status=f"0x{outcome.status:04X}",
        comment=outcome.comment,
        study_uid=outcome.study_uid,
        sop_uid=outcome.sop_uid,
        size=size,
        error=error,
    )
    try:
        index.record_error(
            "store",
            f"0x{outcome.status:04X} {outcome.comment}" + (f": {error}" if error else ""),
            study_uid=outcome.study_uid,
            sop_uid=outcome.sop_uid,
            status=outcome.status,
        )
    except PluginError as exc:
        log.error("error_not_recorded", error=str(exc))
    return outcome
