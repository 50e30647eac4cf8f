"""pynetdicom event handlers: plain functions, dependencies passed in when bound.

``handle_store`` is the C-STORE handler of DESIGN.md step 1: it hands the received data set
(a chunked temp file or the encoded bytes) to :func:`receive_instance` and returns the status.
The association handlers keep the audit log (calling/called AE, peer address, counts; no PHI).
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event

from plugin.errors import PluginError
from plugin.index import Index
from plugin.listener import incoming
from plugin.listener.receive import StoreLimits, receive_instance, refuse_unwritten
from plugin.logging import get_logger
from plugin.spool import Spool

log = get_logger(__name__)

#: (result source, diagnostic) of an A-ASSOCIATE-RJ → why, for the audit log (PS3.8 9.3.4).
REJECT_REASONS = {
    (1, 2): "application context not supported",
    (1, 3): "calling AE title not allowed",
    (1, 7): "called AE title not recognised",
    (2, 1): "user identity refused",
    (3, 2): "too many associations",
}


class AuditTrail:
    """Maps associations to their audit rows in the index (per-association threads).

    The mapping outlives the close event: when a peer aborts right after sending a data set,
    pynetdicom fires ``EVT_ABORTED`` while the C-STORE handler is still writing that complete
    instance, and the instance must still be counted on the association's row. Entries go
    when the association object itself is garbage (weak keys), never on close.
    """

    def __init__(self, index: Index, *, tls: bool) -> None:
        self.index = index
        self.tls = tls
        self._ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._closed: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def association_id(self, assoc: Any) -> int | None:
        with self._lock:
            return self._ids.get(assoc)

    def _peer(self, assoc: Any) -> tuple[str, str, str, int | None]:
        requestor = assoc.requestor
        called = getattr(requestor.primitive, "called_ae_title", None) or ""
        return (
            str(requestor.ae_title).strip(),
            str(called).strip(),
            str(requestor.address),
            requestor.port,
        )

    def opened(self, assoc: Any) -> None:
        calling, called, address, port = self._peer(assoc)
        try:
            row = self.index.open_association(calling, called, address, port, self.tls)
        except PluginError as exc:
            log.error("audit_failed", error=str(exc))
            return
        with self._lock:
            self._ids[assoc] = row
        log.info("association_accepted", calling_ae=calling, called_ae=called, peer=address)

    def rejected(self, assoc: Any) -> None:
        calling, called, address, port = self._peer(assoc)
        rj = assoc.acceptor.primitive
        reason = REJECT_REASONS.get(
            (getattr(rj, "result_source", None), getattr(rj, "diagnostic", None)), "rejected"
        )
        log.warning(
            "association_rejected", calling_ae=calling, called_ae=called, peer=address, why=reason
        )
        try:
            self.index.open_association(
                calling, called, address, port, self.tls, outcome="rejected", failure=reason
            )
            self.index.record_error("association", f"rejected {calling}@{address}: {reason}")
        except PluginError as exc:
            log.error("audit_failed", error=str(exc))

    def counted(self, assoc: Any, ok: bool, failure: str | None) -> None:
        row = self.association_id(assoc)
        if row is None:
            return
        try:
            self.index.count_association_instance(row, ok, failure)
        except PluginError as exc:
            log.error("audit_failed", error=str(exc))

    def closed(self, assoc: Any, outcome: str) -> None:
        """Record the end (the first of released / aborted / closed wins; the index ignores
        later ones). Instances still being stored are counted afterwards (:meth:`counted`)."""
        with self._lock:
            row = self._ids.get(assoc)
            if row is None or assoc in self._closed:
                return
            self._closed.add(assoc)
        try:
            self.index.close_association(row, outcome)
        except PluginError as exc:
            log.error("audit_failed", error=str(exc))
        log.info("association_closed", outcome=outcome, association=row)


def handle_store(
    event: Event, spool: Spool, index: Index, limits: StoreLimits, audit: AuditTrail
) -> Dataset:
    """C-STORE: store the data set as received, record it, answer with the status."""
    try:
        chunked = event.dataset_path  # chunked receive: a complete temp file, else None
    except AttributeError:
        chunked = None
    unwritten = incoming.failure_of(event) if chunked else None
    if unwritten is not None:
        outcome = refuse_unwritten(index, unwritten)
        audit.counted(event.assoc, False, outcome.comment)
        return outcome.as_dataset()
    source = Path(chunked) if chunked else event.encoded_dataset(include_meta=True)
    outcome = receive_instance(
        source, spool, index, limits, association_id=audit.association_id(event.assoc)
    )
    audit.counted(event.assoc, outcome.ok, None if outcome.ok else outcome.comment)
    return outcome.as_dataset()


def handle_echo(event: Event) -> int:
    """C-ECHO: always success while the service runs."""
    return 0x0000


def build_handlers(
    spool: Spool, index: Index, limits: StoreLimits, audit: AuditTrail
) -> list[tuple[Any, ...]]:
    """The ``evt_handlers`` list for ``AE.start_server``."""
    return [
        (evt.EVT_C_STORE, handle_store, [spool, index, limits, audit]),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_ACCEPTED, lambda e: audit.opened(e.assoc)),
        (evt.EVT_REJECTED, lambda e: audit.rejected(e.assoc)),
        (evt.EVT_RELEASED, lambda e: audit.closed(e.assoc, "released")),
        (evt.EVT_ABORTED, lambda e: audit.closed(e.assoc, "aborted")),
        (evt.EVT_CONN_CLOSE, lambda e: audit.closed(e.assoc, "closed")),
    ]
