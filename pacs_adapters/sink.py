"""The sink interface: "send these files there, tell me per file what happened".

A :class:`Sink` sends DICOM Part 10 files to one destination and answers one
:class:`FileResult` per file, in the order given. It never raises for a problem with a file or
with the connection: a file it cannot read is :attr:`Outcome.PERMANENT`, a destination it cannot
reach makes every file :attr:`Outcome.TRANSIENT` with the reason. Retrying is the caller's job
(the coordinator's outbox): a sink makes one attempt per call, bounded in time by the
destination's ``timeout``.

Outcomes follow the Storage service statuses (PS3.4 Annex B.2.3, and Annex GG.4.2 for the
non-patient objects): success and the warnings are :attr:`Outcome.DELIVERED`; "Refused: Out of
Resources" (A7xx) is :attr:`Outcome.TRANSIENT`; "Error: Data Set does not match SOP Class"
(A9xx), "Error: Cannot understand" (Cxxx) and the other failures are :attr:`Outcome.PERMANENT`.
STOW-RS (PS3.18 §10.5) answers the same codes per instance as Failure Reason (0008,1197) in its
Store Instances Response Module (PS3.18 §10.5.3, Table 10.5.3-2; see :mod:`pacs_adapters.stow`).

``detail`` is short and PHI-free: statuses, reasons, exception type names, never attribute
values from the files or text from the peer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

import pydicom
from pydicom.dataset import Dataset

from pacs_adapters.destination import DestinationConfig


class Outcome(StrEnum):
    """What happened to one file at one destination."""

    DELIVERED = "delivered"
    """Stored (possibly with a warning status): done."""
    TRANSIENT = "transient"
    """Not stored, for a reason that may go away (unreachable, busy, out of resources): retry."""
    PERMANENT = "permanent"
    """Not stored, and sending the same file again will not help (refused, unreadable)."""


@dataclass(frozen=True)
class FileResult:
    """The outcome of sending one file.

    ``status`` is the DIMSE status (C-STORE) or the HTTP status (STOW-RS), None when nothing
    answered. ``sop_instance_uid`` is None when the file could not be read.
    """

    path: Path
    sop_instance_uid: str | None
    outcome: Outcome
    status: int | None
    detail: str


@runtime_checkable
class Sink(Protocol):
    """Sends files to one destination."""

    @property
    def name(self) -> str:
        """The destination's unique label (:attr:`DestinationConfig.name`)."""
        ...

    def send(self, files: Sequence[Path]) -> list[FileResult]:
        """Send ``files``; one result per file, in order. Never raises for a per-file or a
        connection problem."""
        ...

    def close(self) -> None:
        """Release what the sink holds (sessions, sockets)."""
        ...


# PS3.4 Annex B.2.3 (Storage), GG.4.2 (Non-Patient Object Storage) and PS3.7 Annex C (the
# general statuses) → outcome. Ranges are checked after the exact codes.
_EXACT: dict[int, tuple[Outcome, str]] = {
    0x0000: (Outcome.DELIVERED, "success"),
    0xB000: (Outcome.DELIVERED, "warning: coercion of data elements"),
    0xB006: (Outcome.DELIVERED, "warning: elements discarded"),
    0xB007: (Outcome.DELIVERED, "warning: data set does not match SOP class"),
    0x0001: (Outcome.DELIVERED, "warning"),
    0x0107: (Outcome.DELIVERED, "warning: attribute list error"),
    0x0116: (Outcome.DELIVERED, "warning: attribute value out of range"),
    0x0110: (Outcome.PERMANENT, "failure: processing failure"),
    0x0117: (Outcome.PERMANENT, "failure: invalid SOP instance"),
    0x0122: (Outcome.PERMANENT, "failure: SOP class not supported"),
    0x0124: (Outcome.PERMANENT, "failure: not authorized"),
    0x0210: (Outcome.PERMANENT, "failure: duplicate invocation"),
    0x0211: (Outcome.PERMANENT, "failure: unrecognized operation"),
    0x0212: (Outcome.PERMANENT, "failure: mistyped argument"),
    0x0213: (Outcome.TRANSIENT, "failure: resource limitation"),
    0xFE00: (Outcome.TRANSIENT, "cancelled"),
}


def storage_status(status: int) -> tuple[Outcome, str]:
    """The outcome of a Storage service status (a C-STORE response's Status, or a STOW-RS
    Failure Reason), and its short name.

    ===================================  =============  =======================================
    Status                               Outcome        PS3.4 / PS3.7 meaning
    ===================================  =============  =======================================
    0x0000                               DELIVERED      Success
    0xB000, 0xB006, 0xB007               DELIVERED      Warning (Annex B.2.3): stored
    0x0001, 0x0107, 0x0116, other Bxxx   DELIVERED      Warning (PS3.7 C.4): stored
    0xA700-0xA7FF                        TRANSIENT      Refused: Out of Resources
    0x0213                               TRANSIENT      Resource limitation (PS3.7 C.5.x)
    0xFE00                               TRANSIENT      Cancel: not stored, may be retried
    0xA900-0xA9FF                        PERMANENT      Error: Data Set does not match SOP Class
    0xC000-0xCFFF                        PERMANENT      Error: Cannot understand
    0x0110, 0x0117, 0x0122, 0x0124, ...  PERMANENT      General failures (PS3.7 C.5)
    anything else (e.g. Pending 0xFFxx)  PERMANENT      not a valid C-STORE status
    ===================================  =============  =======================================
    """
    if status in _EXACT:
        outcome, name = _EXACT[status]
    elif 0xA700 <= status <= 0xA7FF:
        outcome, name = Outcome.TRANSIENT, "refused: out of resources"
    elif 0xA900 <= status <= 0xA9FF:
        outcome, name = Outcome.PERMANENT, "error: data set does not match SOP class"
    elif 0xC000 <= status <= 0xCFFF:
        outcome, name = Outcome.PERMANENT, "error: cannot understand"
    elif 0xB000 <= status <= 0xBFFF:
        outcome, name = Outcome.DELIVERED, "warning"
    else:
        outcome, name = Outcome.PERMANENT, "failure: unexpected status"
    return outcome, f"{name} (0x{status:04X})"


@dataclass(frozen=True)
class LoadedFile:
    """A file read for sending: its data set, or why it could not be used."""

    path: Path
    dataset: Dataset | None
    sop_instance_uid: str | None
    sop_class_uid: str | None
    transfer_syntax: str | None
    problem: str | None = None

    def unusable(self) -> FileResult:
        assert self.problem is not None
        return FileResult(self.path, self.sop_instance_uid, Outcome.PERMANENT, None, self.problem)


def load_file(path: Path) -> LoadedFile:
    """Read one Part 10 file with pydicom; a file without File Meta, SOP Class UID or SOP
    Instance UID, or that does not parse, is unusable (sending it again cannot help)."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        return LoadedFile(path, None, None, None, None, f"cannot read file: {type(exc).__name__}")
    except Exception as exc:  # pydicom raises many kinds on corrupt data
        return LoadedFile(path, None, None, None, None, f"cannot parse file: {type(exc).__name__}")
    meta = getattr(ds, "file_meta", None)
    tsyntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    sop_uid = ds.get("SOPInstanceUID") or (meta.get("MediaStorageSOPInstanceUID") if meta else None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    sop_uid = str(sop_uid) if sop_uid else None
    sop_class = str(sop_class) if sop_class else None
    missing = [
        name
        for name, value in (
            ("Transfer Syntax UID (0002,0010)", tsyntax),
            ("SOP Class UID (0008,0016)", sop_class),
            ("SOP Instance UID (0008,0018)", sop_uid),
        )
        if not value
    ]
    if missing:
        problem = "not a sendable DICOM file: no " + ", ".join(missing)
        return LoadedFile(path, None, sop_uid, sop_class, None, problem)
    return LoadedFile(path, ds, sop_uid, sop_class, str(tsyntax))


def make_sink(config: DestinationConfig) -> Sink:
    """The sink for ``config``: a C-STORE SCU for ``dimse``, a STOW-RS client for ``stow``."""
    if config.kind == "dimse":
        from pacs_adapters.dimse import DimseSink

        return DimseSink(config)
    if config.kind == "stow":
        from pacs_adapters.stow import StowSink

        return StowSink(config)
    raise ValueError(f"unknown destination kind {config.kind!r}")  # pragma: no cover
